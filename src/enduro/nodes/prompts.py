"""Prompt text.

The act and reflect prompts carry a `Current step [id]: title` line that progress, logs and the test
suite's scripted model rely on.
"""

from __future__ import annotations

from enduro.records import MAX_PLAN_STEPS, MIN_PLAN_STEPS, Archive, PlanStep

PLAN_SYSTEM = (
    "You are the planner of a long-running autonomous agent. Turn the user's goal into a "
    f"short ordered list of concrete steps ({MIN_PLAN_STEPS} to {MAX_PLAN_STEPS}). Each step "
    "must be something the agent "
    "can finish on its own with the tools it has (files in its workspace, fetching URLs). "
    "Answer with the Plan tool."
)

ACT_SYSTEM = (
    "You are a diligent autonomous agent working through a plan, one step at a time.\n"
    "Goal: {goal}\n\nPlan so far:\n{plan}\n\nCurrent step [{step_id}]: {title}\n{detail}\n\n"
    "Use tools when they help. Save anything long to files in your workspace and mention "
    "the path. When the step is done, answer with a concise account of its result."
)

REFLECT_SYSTEM = (
    "You review one step of an autonomous agent's plan.\nGoal: {goal}\n\n"
    "Current step [{step_id}]: {title}\n{detail}\n\n"
    "Judge the work below. verdict: done (the step achieved its aim), retry (another attempt "
    "would likely succeed), replan (the remaining steps are wrong; give new_steps), give_up "
    "(the step cannot be done). Write a summary of at most three sentences with the concrete "
    "result (facts found, files written). Answer with the StepReview tool."
)

FINAL_SYSTEM = (
    "Write the final report of an autonomous agent's run for the person who set the goal. "
    "Goal: {goal}\nOutcome: {outcome}\n\nStep results:\n{results}\n\n"
    "Write the final report in plain text: what was achieved, key findings, where the files "
    "are, and what remains if anything. Be concise."
)


def render_plan(plan: list[PlanStep], archive: Archive | None = None) -> str:
    """The plan as the prompts show it: one `[mark] id. title — summary` line per step.

    Marks: x done, > active, ! failed, - skipped; archived steps come first, as a count.
    """
    marks = {"done": "x", "active": ">", "failed": "!", "skipped": "-", "pending": " "}
    lines = []
    if archive and archive["steps"]:
        lines.append(
            f"({archive['steps']} earlier steps finished; their results are in the workspace "
            "files .history/steps/<id>.json)"
        )
    for step in plan:
        line = f"[{marks.get(step['status'], ' ')}] {step['id']}. {step['title']}"
        if step.get("summary"):
            line += f" — {step['summary']}"
        lines.append(line)
    return "\n".join(lines) or "(no plan yet)"
