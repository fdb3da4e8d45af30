// Cumulative spend over time as a small inline SVG: one line per model or per node, and the
// dollar cap as a dashed line. Built with createElementNS; labels are text nodes.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#2f6fed", "#1f9d55", "#c27c0e", "#9f3fbf", "#c53030", "#0f8b8d", "#6a7285"];

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawSpend(container, legend, series, cap) {
  const W = 600, H = 220, L = 54, R = 10, T = 10, B = 24;
  const keys = Object.keys(series);
  const points = keys.flatMap((k) => series[k]);
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": "cumulative spend over time" });
  container.replaceChildren(root);
  legend.replaceChildren();
  if (!points.length) {
    root.append(svg("text", { x: L, y: H / 2 }, "no model calls yet"));
    return;
  }
  const t0 = Math.min(...points.map((p) => p[0]));
  const t1 = Math.max(...points.map((p) => p[0]), t0 + 1);
  const spent = Math.max(...points.map((p) => p[1]), 1e-6);
  // The cap sets the scale only when the spend is near it; else the lines would lie flat.
  const showCap = cap && cap <= spent * 4;
  const top = showCap ? Math.max(cap, spent) : spent * 1.1;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => H - B - (v / top) * (H - T - B);
  root.append(svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
  root.append(svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
  root.append(svg("text", { x: 2, y: T + 10 }, money(top)));
  root.append(svg("text", { x: 2, y: H - B }, "$0"));
  root.append(svg("text", { x: L, y: H - 6 }, new Date(t0 * 1000).toLocaleTimeString()));
  root.append(svg("text", { x: W - R - 60, y: H - 6 }, new Date(t1 * 1000).toLocaleTimeString()));
  if (showCap) {
    root.append(svg("line", { class: "cap", x1: L, y1: y(cap), x2: W - R, y2: y(cap) }));
    root.append(svg("text", { x: W - R - 70, y: y(cap) - 4 }, "cap " + money(cap)));
  }
  keys.forEach((key, i) => {
    const color = COLORS[i % COLORS.length];
    let d = `M ${x(t0)} ${y(0)}`;
    for (const [t, v] of series[key]) d += ` L ${x(t)} ${y(v)}`;
    d += ` L ${x(t1)} ${y(series[key][series[key].length - 1][1])}`;
    root.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 2 }));
    const swatch = el("i");
    swatch.style.background = color;
    const last = series[key][series[key].length - 1][1];
    legend.append(el("span", {}, swatch, key + " " + money(last)));
  });
  if (cap && !showCap) legend.append(el("span", { class: "muted", text: "cap " + money(cap) + " (off the scale)" }));
}
