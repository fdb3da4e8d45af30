// Shared helpers. Every string from the API reaches the DOM through textContent (never
// innerHTML), so goals, plans, summaries and reports written by models or users stay text.
"use strict";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function cookie(name) {
  const found = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
  return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
}

async function api(path, options) {
  const opts = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
  if (opts.method && opts.method !== "GET") {
    opts.headers["X-CSRF-Token"] = cookie("enduro_csrf");
    if (opts.body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(opts.body);
    }
  }
  const response = await fetch(path, opts);
  if (response.status === 401) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    throw new Error("login required");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (data.error && data.error.message) || JSON.stringify(data.detail || data);
    throw new Error(message);
  }
  return data;
}

function money(usd) {
  if (usd === null || usd === undefined) return "–";
  return usd >= 0.1 ? "$" + usd.toFixed(2) : "$" + usd.toFixed(4);
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 90) return seconds.toFixed(0) + " s";
  if (seconds < 5400) return (seconds / 60).toFixed(1) + " min";
  return (seconds / 3600).toFixed(1) + " h";
}

function ago(epoch) {
  if (!epoch) return null;
  const seconds = Math.max(0, Date.now() / 1000 - epoch);
  return duration(seconds) + " ago";
}

function bar(fraction, kind) {
  const clamped = Math.max(0, Math.min(1, fraction || 0));
  const fill = el("span");
  fill.style.width = (clamped * 100).toFixed(1) + "%";
  const classes = ["bar", kind || "", fraction > 1 ? "over" : ""].join(" ").trim();
  return el("div", { class: classes, role: "progressbar", "aria-valuenow": (clamped * 100).toFixed(0) }, fill);
}

function badge(status) {
  return el("span", { class: "badge " + status, text: status.replace("_", " ") });
}

function against(used, limit, fmt) {
  const text = limit === null || limit === undefined ? fmt(used) : fmt(used) + " of " + fmt(limit);
  return text;
}

function heartbeat(lease) {
  if (!lease || !lease.heartbeat_at) return "no process holds it";
  return "heartbeat " + ago(lease.heartbeat_at) + (lease.owner ? " · " + lease.owner : "");
}

function warningsOf(status) {
  const out = [];
  if (status.forecast && status.forecast.warning) out.push(status.forecast.warning);
  for (const w of status.warnings || []) out.push(budgetWarning(w));
  return out;
}

// The state's warning codes, e.g. `max_usd:80`, as words.
function budgetWarning(code) {
  const m = /^(\w+):(\d+(?:\.\d+)?)$/.exec(code);
  return m ? m[1] + " reached " + m[2] + " % of its limit" : code;
}

// The log-out button only means something when the dashboard asks for a token.
document.addEventListener("DOMContentLoaded", async () => {
  const form = document.getElementById("logout");
  if (!form) return;
  try { form.hidden = !(await api("/api/session")).token_required; } catch (err) { /* shown on 401 */ }
});
