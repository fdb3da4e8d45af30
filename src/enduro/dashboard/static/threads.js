// The threads page: one keyset page of /api/threads, refreshed every few seconds.
"use strict";

const params = new URLSearchParams(location.search);
const statusFilter = params.get("status") || "";
const cursor = params.get("cursor") || "";

function row(t) {
  const p = t.progress;
  const u = t.usage;
  const l = t.limits;
  const activeLimit = l.max_minutes ? l.max_minutes * 60 : null;
  const warnings = warningsOf(t);
  return el("tr", { "data-thread": t.thread_id },
    el("td", { class: "id" }, el("a", { href: "/threads/" + encodeURIComponent(t.thread_id), text: t.thread_id.slice(0, 13) })),
    el("td", { class: "goal", text: t.goal }),
    el("td", {}, badge(t.status), t.stop_reason ? el("div", { class: "small muted", text: t.stop_reason }) : null),
    el("td", {}, el("div", { class: "small", text: p.steps_done + " / " + p.steps_total + " steps" }),
      bar(p.steps_total ? p.steps_done / p.steps_total : 0)),
    el("td", {}, el("div", { class: "small", text: against(u.usd, l.max_usd, money) }),
      l.max_usd ? bar(u.usd / l.max_usd, "money") : null),
    el("td", {}, el("div", { class: "small", text: against(u.active_seconds, activeLimit, duration) }),
      activeLimit ? bar(u.active_seconds / activeLimit) : null),
    el("td", { class: "small", text: t.status === "running" ? heartbeat(t.lease) : "–" }),
    el("td", { class: "small warn" }, warnings.map((w) => el("div", { text: w }))),
  );
}

async function load() {
  const query = new URLSearchParams({ limit: "50" });
  if (statusFilter) query.set("status", statusFilter);
  if (cursor) query.set("cursor", cursor);
  const flash = document.getElementById("flash");
  try {
    const page = await api("/api/threads?" + query);
    const rows = document.getElementById("rows");
    rows.replaceChildren(...page.items.map(row));
    if (!page.items.length) {
      rows.append(el("tr", {}, el("td", { colspan: "8", class: "muted", text: "No threads." })));
    }
    const older = document.getElementById("older");
    older.hidden = !page.next_cursor;
    if (page.next_cursor) {
      const next = new URLSearchParams({ cursor: page.next_cursor });
      if (statusFilter) next.set("status", statusFilter);
      older.href = "/?" + next;
    }
    flash.replaceChildren();
    document.getElementById("live").className = "live on";
    document.getElementById("live").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    flash.replaceChildren(el("div", { class: "flash error", text: String(err.message || err) }));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const select = document.getElementById("status");
  select.value = statusFilter;
  select.addEventListener("change", () => {
    location.href = select.value ? "/?status=" + encodeURIComponent(select.value) : "/";
  });
  document.getElementById("newest").href = statusFilter ? "/?status=" + encodeURIComponent(statusFilter) : "/";
  load();
  setInterval(load, 5000);
});
