"""The dashboard in a real browser: Playwright driving Debian's Chromium (/usr/bin/chromium,
installed by .ci/run; no browser is ever downloaded).

A real run against the scripted model with latency, watched live; the cancel button; a goal
full of markup that must stay text; the login form when bound beyond loopback. Screenshots
of each page go to .artifacts/dashboard/ (the path is printed).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright

from clikit import ENDURO, cli_env, run_cli
from dashkit import Dashboard, artifact, seed_sync
from fakellm import ScriptedLLM
from receiver import Receiver

CHROMIUM = os.environ.get("ENDURO_CHROMIUM", "/usr/bin/chromium")
STEPS = [f"Step number {n}" for n in range(1, 9)]
# The scripted model takes 2 iterations a step: 12 last 6 of the 8 steps, so the forecast
# warns from the first finished step on (the test cancels long before step 6).
LIMITS = ["--max-iterations", "12", "--max-usd", "0.5"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (.ci/run does), or set "
            "ENDURO_CHROMIUM. Browser tests are never skipped.",
            pytrace=False,
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors


def _wait_for_thread(base: str, tid: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{base}api/threads/{tid}").status_code != 200:
        assert time.monotonic() < deadline, "the run never created its thread"
        time.sleep(0.1)


def test_a_run_progresses_live_on_the_page_and_the_cancel_button_cancels_it(
    page: Page, tmp_path: Path
) -> None:
    db = str(tmp_path / "e.sqlite")
    with ScriptedLLM(steps=STEPS, tool_use=True, latency=0.4) as llm, Receiver() as rec:
        env = cli_env(llm, tmp_path)
        tid = str(uuid.uuid4())
        with Dashboard(db, env) as dash:
            run = subprocess.Popen(
                [
                    ENDURO,
                    "run",
                    "Survey durable agents",
                    "--thread-id",
                    tid,
                    "--db",
                    db,
                    *LIMITS,
                    "--webhook-url",
                    rec.url,
                    "--quiet",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                _wait_for_thread(dash.url, tid)
                page.goto(f"{dash.url}threads/{tid}")
                expect(page.locator("#live")).to_have_text("live", timeout=15_000)
                seen = _watch_progress(page, distinct=3, timeout=60)
                assert [done for done, _ in seen] == sorted(done for done, _ in seen)
                expect(page.locator("#timeline li").first).to_be_visible()
                expect(page.locator("#chart svg path").first).to_be_attached()
                expect(page.locator("#forecast-warning")).to_contain_text(
                    "at this rate max_iterations runs out around step"
                )
                page.screenshot(path=str(artifact("thread-running.png")), full_page=True)
                listing = page.context.new_page()
                listing.goto(dash.url)
                expect(listing.locator(f"tr[data-thread='{tid}']")).to_contain_text("heartbeat")
                listing.screenshot(path=str(artifact("threads.png")), full_page=True)
                listing.close()

                page.click("#cancel")
                expect(page.locator("#status .badge")).to_have_text("cancelled", timeout=60_000)
                assert run.wait(60) == 5, run.stderr.read() if run.stderr else ""
                final_done = int(page.text_content("#steps").split(" of ")[0])  # type: ignore[union-attr]
                assert final_done < len(STEPS)  # stopped before the plan was done
                expect(page.locator("#timeline")).to_contain_text("run.cancelled")
                expect(page.locator("#report")).to_contain_text("Outcome: cancelled")
                page.screenshot(path=str(artifact("thread-cancelled.png")), full_page=True)

                page.goto(dash.url)
                expect(page.locator(f"tr[data-thread='{tid}']")).to_contain_text("cancelled")
            finally:
                if run.poll() is None:
                    run.kill()
                run.wait(30)


def _watch_progress(page: Page, distinct: int, timeout: float) -> list[tuple[int, str]]:
    """Read the step counter as the page updates it (no reload) until it has shown
    `distinct` different values, each with the spend shown at that moment."""
    seen: list[tuple[int, str]] = []
    deadline = time.monotonic() + timeout
    while len({done for done, _ in seen}) < distinct:
        assert time.monotonic() < deadline, f"the page did not progress: {seen}"
        text = page.text_content("#steps") or ""
        if " of " in text:
            done = int(text.split(" of ")[0])
            if not seen or seen[-1][0] != done:
                seen.append((done, page.text_content("#money") or ""))
        time.sleep(0.1)
    assert len({money for _, money in seen}) > 1, seen  # the spend moved too
    return seen


def test_a_goal_full_of_markup_stays_text(page: Page, llm: ScriptedLLM, tmp_path: Path) -> None:
    goal = """<script>window.__xss=1</script><img src=x onerror="window.__xss=2"> & "q" 'a'"""
    db = str(tmp_path / "e.sqlite")
    env = cli_env(llm, tmp_path)
    tid = str(uuid.uuid4())
    done = run_cli(["run", goal, "--thread-id", tid, "--db", db, "--quiet"], env)
    assert done.returncode == 0, done.stderr
    dialogs: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    with Dashboard(db, env) as dash:
        page.goto(dash.url)
        expect(page.locator(f"tr[data-thread='{tid}'] td.goal")).to_have_text(goal)
        page.goto(f"{dash.url}threads/{tid}")
        expect(page.locator("#goal")).to_have_text(goal)
        expect(page.locator("#report")).to_contain_text(f"Goal: {goal}")
        page.wait_for_timeout(500)
        assert page.evaluate("window.__xss") is None
        assert page.locator("main script, main img").count() == 0
        assert not dialogs
        page.screenshot(path=str(artifact("thread-xss-goal.png")), full_page=True)


def test_bound_beyond_loopback_the_page_asks_for_the_token(
    page: Page, llm: ScriptedLLM, tmp_path: Path
) -> None:
    token = secrets.token_urlsafe(24)
    db = str(tmp_path / "e.sqlite")
    seed_sync(db, 3, goal="Seeded thread")
    env = {**cli_env(llm, tmp_path), "ENDURO_DASHBOARD_TOKEN": token}
    with Dashboard(db, env, "--host", "0.0.0.0") as dash:
        base = "http://127.0.0.1:" + dash.url.rsplit(":", 1)[1]
        refused = page.request.get(base + "api/threads")
        assert refused.status == 401
        page.goto(base)
        expect(page).to_have_url(base + "login?next=/")
        page.screenshot(path=str(artifact("login.png")), full_page=True)
        page.fill("#token", "not-the-token-at-all")
        page.click("button[type=submit]")
        expect(page.locator("#error")).to_have_text("Wrong token.")
        page.fill("#token", token)
        page.click("button[type=submit]")
        expect(page).to_have_url(base)
        expect(page.locator("tr[data-thread]")).to_have_count(3)
        expect(page.locator("#logout")).to_be_visible()
        assert token not in page.content()
        assert page.request.get(base + "api/threads").status == 200  # the session cookie
        page.click("#logout button")
        expect(page).to_have_url(base + "login")


def test_a_waiting_tool_call_is_approved_with_the_button(page: Page, tmp_path: Path) -> None:
    write = ("write_file", {"path": "notes.md", "content": "<b>approved</b>"})
    db = str(tmp_path / "e.sqlite")
    with ScriptedLLM(steps=["Write the notes"], act_script={"s1": [[write]]}) as llm:
        env = cli_env(llm, tmp_path)
        tid = str(uuid.uuid4())
        done = run_cli(
            ["run", "Tidy the notes", "--thread-id", tid, "--db", db, "--approve", "write_file"],
            env,
        )
        assert done.returncode == 6, done.stderr
        with Dashboard(db, env) as dash:
            page.goto(f"{dash.url}threads/{tid}")
            card = page.locator("[data-interrupt]")
            expect(card).to_contain_text("Approve tool call: write_file")
            expect(card.locator("pre")).to_contain_text('"content": "<b>approved</b>"')
            expect(page.locator("#status .badge")).to_have_text("waiting")
            page.screenshot(path=str(artifact("thread-waiting.png")), full_page=True)
            card.get_by_role("button", name="Approve").click()
            expect(page.locator("#status .badge")).to_have_text("completed", timeout=60_000)
            expect(page.locator("#interrupts")).to_be_hidden()
        assert (tmp_path / "ws" / tid / "notes.md").read_text() == "<b>approved</b>"
