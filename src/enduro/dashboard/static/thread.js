// One thread, live: the status and the timeline arrive over Server-Sent Events
// (/api/threads/{id}/events), the spend series is refetched when the spend changes.
"use strict";

const threadId = decodeURIComponent(location.pathname.split("/").pop());
const base = "/api/threads/" + encodeURIComponent(threadId);
const MARKS = { done: "✓", failed: "✗", active: "▶", pending: "·", skipped: "–" };
const LIMIT_INPUTS = ["max_usd", "max_minutes", "max_iterations", "max_llm_calls", "max_tool_calls"];
let current = null;
let spendShown = null;
let spendData = null;
let formTouched = false;

function setText(id, text) { document.getElementById(id).textContent = text; }
function setNode(id, ...nodes) { document.getElementById(id).replaceChildren(...nodes.filter(Boolean)); }

function flash(message, error) {
  setNode("flash", message ? el("div", { class: "flash" + (error ? " error" : ""), text: message }) : null);
}

function renderStatus(s) {
  current = s;
  document.title = "enduro · " + s.goal.slice(0, 60);
  setText("goal", s.goal);
  setNode("status", badge(s.status));
  setText("stop", s.stop_reason ? "(" + s.stop_reason + ")" : "");
  setText("tid", s.thread_id + " · segment " + s.segments);
  const p = s.progress, u = s.usage, l = s.limits;
  setText("steps", p.steps_done + " of " + p.steps_total + " steps (" + p.percent + "%)");
  setNode("steps-bar", bar(p.steps_total ? p.steps_done / p.steps_total : 0));
  setText("money", against(u.usd, l.max_usd, money) + " spent · " + u.llm_calls + " model calls");
  setNode("money-bar", l.max_usd ? bar(u.usd / l.max_usd, "money") : null);
  const cap = l.max_minutes ? l.max_minutes * 60 : null;
  setText("time", against(u.active_seconds, cap, duration) + " active · " + u.tool_calls + " tool calls");
  setNode("time-bar", cap ? bar(u.active_seconds / cap) : null);
  const step = (s.plan_detail || []).find((x) => x.id === s.current_step);
  setText("current", step ? "working on " + step.id + ": " + step.title : "");
  setText("heartbeat", s.status === "running" ? heartbeat(s.lease) : "no process holds it");
  renderForecast(s.forecast);
  renderPlan(s.plan_detail || []);
  renderWarnings(s);
  renderActions(s);
  setText("report", s.report || "(no report yet)");
  if (spendShown !== u.usd) { spendShown = u.usd; loadSpend(); }
}

function renderForecast(f) {
  const rows = [];
  const add = (k, v) => rows.push(el("dt", { text: k }), el("dd", { text: v }));
  if (!f || f.basis === "none") {
    add("basis", "nothing projected until a step has finished");
  } else {
    add("spend", money(f.usd.projected) + "  (" + money(f.usd.low) + " – " + money(f.usd.high) + ")");
    add("active time", duration(f.active_seconds.projected) + "  (" + duration(f.active_seconds.low) +
      " – " + duration(f.active_seconds.high) + ")");
    add("per step", money(f.usd.per_step) + " · " + duration(f.active_seconds.per_step));
    add("from", f.steps_done + " of " + f.steps_total + " steps, " + f.samples + " step samples");
  }
  setNode("forecast", ...rows);
  setNode("forecast-warning", f && f.warning ? el("div", { class: "warnbox", text: f.warning }) : null);
}

function renderPlan(plan) {
  setNode("plan", ...plan.map((step) => el("li", { "data-step": step.id, "data-status": step.status },
    el("span", { class: "mark " + step.status, text: MARKS[step.status] || "?", title: step.status }),
    el("strong", { text: step.id }), " ", step.title,
    step.summary ? el("div", { class: "summary", text: step.summary }) : null)));
  if (!plan.length) setNode("plan", el("li", { class: "muted", text: "no plan yet" }));
}

function renderWarnings(s) {
  // The forecast's own warning sits in the forecast panel; these are the budget's.
  const list = (s.warnings || []).map(budgetWarning);
  document.getElementById("warnings-panel").hidden = !list.length;
  setNode("warnings", ...list.map((w) => el("div", { class: "warnbox", text: w })));
}

function renderActions(s) {
  document.getElementById("cancel").disabled = s.status === "completed" || s.status === "cancelled";
  const form = document.getElementById("resume");
  document.getElementById("resume-button").disabled = !s.resumable;
  if (!formTouched) {
    for (const name of LIMIT_INPUTS) form.elements[name].value = s.limits[name] ?? "";
    const stop = s.forecast && s.forecast.stops && s.forecast.stops[0];
    if (stop && stop.limit === "max_usd" && s.forecast.usd.high) {
      form.elements.max_usd.value = (Math.ceil(s.forecast.usd.high * 1.1 * 100) / 100).toFixed(2);
    }
  }
  renderInterrupts(s.interrupts || []);
}

// What a waiting thread asks: approve or reject a tool call, or answer a question. Each
// button POSTs the answer; the run continues in a process of its own.
function renderInterrupts(interrupts) {
  const box = document.getElementById("interrupts");
  const ids = interrupts.map((i) => i.id).join(",");
  if (box.dataset.ids === ids) return;  // keep what the person is typing
  box.dataset.ids = ids;
  box.hidden = !interrupts.length;
  box.replaceChildren(...interrupts.map(interruptCard));
}

function interruptCard(i) {
  const card = el("div", { class: "warnbox interrupt", "data-interrupt": i.id });
  const approval = i.kind === "approval";
  const text = el("input", { type: "text", class: "reply",
    placeholder: approval ? "reason (optional)" : "your answer" });
  const send = (path, body, done) => act(path, Object.assign({ interrupt_id: i.id }, body), () => done);
  const heading = { approval: "Approve tool call: ", question: "Question: ",
    unknown_outcome: "Did this call happen? " }[i.kind] || "Waiting: ";
  card.append(el("div", {}, el("strong", { text: heading }), i.question || i.tool || ""));
  if (i.args) card.append(el("pre", { class: "report small", text: JSON.stringify(i.args, null, 2) }));
  card.append(text);
  if (approval) {
    card.append(el("div", {},
      el("button", { class: "primary", type: "button", onclick: () =>
        send("/approve", {}, "Approved: the run continues.") }, "Approve"), " ",
      el("button", { class: "danger", type: "button", onclick: () =>
        send("/reject", { reason: text.value || null }, "Rejected: the run continues.") }, "Reject")));
  } else {
    card.append(el("div", {}, el("button", { class: "primary", type: "button", onclick: () =>
      send("/answer", { text: text.value }, "Answered: the run continues.") }, "Answer")));
  }
  return card;
}

function eventDetail(e) {
  const d = e.data || {};
  if (d.step) return d.step.id + " " + d.step.title + (d.step.status ? " (" + d.step.status + ")" : "");
  if (d.tool) return d.tool.name + " " + d.tool.duration_ms + " ms" + (d.tool.ok ? "" : " failed");
  if (d.warning) return d.warning.code;
  if (d.in_flight) return d.in_flight.node + " for " + duration(d.in_flight.seconds);
  if (d.plan) return d.plan.length + " steps";
  return d.status + (d.stop_reason ? " (" + d.stop_reason + ")" : "");
}

function addEvent(e) {
  const list = document.getElementById("timeline");
  if (list.querySelector(`[data-seq="${e.seq}"]`)) return;
  const when = new Date(e.timestamp).toLocaleTimeString();
  const item = el("li", { "data-seq": String(e.seq) },
    el("span", { class: "seq", text: "#" + e.seq }), el("span", { class: "muted", text: when + " " }),
    el("span", { class: "type", text: e.type }), eventDetail(e));
  list.prepend(item);
  const empty = document.getElementById("timeline-empty");
  if (empty) empty.remove();
}

async function loadSpend() {
  try {
    spendData = await api(base + "/spend");
    drawCurrentSpend();
  } catch (err) { flash(String(err.message || err), true); }
}

function drawCurrentSpend() {
  if (!spendData) return;
  const by = document.querySelector("input[name=by]:checked").value;
  drawSpend(document.getElementById("chart"), document.getElementById("legend"), spendData[by], spendData.max_usd);
  setText("spend-total", money(spendData.usd) + " from the ledger");
}

async function act(path, body, done) {
  try {
    const result = await api(base + path, { method: "POST", body });
    flash(done(result));
  } catch (err) { flash(String(err.message || err), true); }
}

function connect() {
  const live = document.getElementById("live");
  const source = new EventSource(base + "/events?since=0");
  source.addEventListener("open", () => { live.className = "live on"; live.textContent = "live"; });
  source.addEventListener("error", () => { live.className = "live"; live.textContent = "reconnecting…"; });
  source.addEventListener("status", (m) => renderStatus(JSON.parse(m.data)));
  source.addEventListener("event", (m) => addEvent(JSON.parse(m.data)));
}

document.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("cancel").addEventListener("click", () =>
    act("/cancel", undefined, (r) => r.outcome === "requested"
      ? "Cancel requested: the run stops at its next step." : "Cancelled."));
  const form = document.getElementById("resume");
  form.addEventListener("input", () => { formTouched = true; });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const body = {};
    for (const name of LIMIT_INPUTS) {
      const v = form.elements[name].value;
      if (v !== "") body[name] = Number(v);
    }
    formTouched = false;
    act("/resume", body, () => "Resumed: a new segment is starting.");
  });
  for (const radio of document.querySelectorAll("input[name=by]")) radio.addEventListener("change", drawCurrentSpend);
  try {
    renderStatus(await api(base));
  } catch (err) { flash(String(err.message || err), true); return; }
  setInterval(() => { if (current) setText("heartbeat", current.status === "running" ? heartbeat(current.lease) : "no process holds it"); }, 1000);
  connect();
});
