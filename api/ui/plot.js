// Line plots as hand-written SVG: series of [x, y] points on shared axes, optional horizontal
// reference lines (a teacher's AP), a legend, and an accessible name.

const NS = "http://www.w3.org/2000/svg";
const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf"];
const MARGIN = { left: 56, right: 12, top: 10, bottom: 34 };

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

/** `count` ticks over [lo, hi]; whole numbers only when `integers` (steps). */
function ticks(lo, hi, integers, count = 5) {
  const all = Array.from({ length: count }, (_, i) => lo + ((hi - lo) * i) / (count - 1));
  return integers ? [...new Set(all.map(Math.round))].filter((t) => t >= lo && t <= hi) : all;
}

/** A tick label with as many decimals as the axis' span needs. */
function formatter(lo, hi) {
  const decimals = Math.max(0, Math.min(6, 1 - Math.floor(Math.log10((hi - lo) / 4 || 1))));
  return (v) => v.toFixed(decimals);
}

function extent(values, pad) {
  let lo = Math.min(...values), hi = Math.max(...values);
  if (lo === hi) [lo, hi] = [lo - 1, hi + 1];
  const margin = (hi - lo) * pad;
  return [lo - margin, hi + margin];
}

/**
 * A <figure> holding the plot.
 * series: [{name, points: [[x, y], ...]}]; lines: [{name, y}] drawn across the whole x range;
 * yRange: [lo, hi], else the data's extent, or [0, a little above the top] with fromZero (AP).
 */
export function linePlot({ title, series, lines = [], xLabel = "step", yLabel = "", width = 560, height = 260, yRange,
  fromZero = false }) {
  const figure = document.createElement("figure");
  figure.className = "plot";
  figure.dataset.title = title;
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  figure.append(caption);
  const drawn = series.filter((s) => s.points.length > 0);
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  figure.append(root);
  if (drawn.length === 0 && lines.length === 0) {
    root.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "no data yet"));
    return figure;
  }
  const xs = drawn.flatMap((s) => s.points.map((p) => p[0]));
  const ys = drawn.flatMap((s) => s.points.map((p) => p[1])).concat(lines.map((l) => l.y));
  const [x0, x1] = xs.length ? extent(xs, 0) : [0, 1];
  const top = Math.max(...ys);
  const [y0, y1] = yRange || (fromZero ? [0, top > 0 ? Math.min(1, top * 1.15) : 1] : extent(ys, 0.05));
  const fx = formatter(x0, x1), fy = formatter(y0, y1);
  const w = width - MARGIN.left - MARGIN.right, hgt = height - MARGIN.top - MARGIN.bottom;
  const px = (x) => MARGIN.left + ((x - x0) / (x1 - x0)) * w;
  const py = (y) => MARGIN.top + (1 - (y - y0) / (y1 - y0)) * hgt;

  const axes = svg("g", { class: "axes", "aria-hidden": "true" });
  axes.append(svg("rect", { x: MARGIN.left, y: MARGIN.top, width: w, height: hgt, fill: "none", stroke: "#bbb" }));
  const integers = xs.every(Number.isInteger);
  for (const t of ticks(x0, x1, integers)) {
    axes.append(svg("text", { x: px(t), y: height - MARGIN.bottom + 14, "text-anchor": "middle" },
      integers ? String(t) : fx(t)));
  }
  for (const t of ticks(y0, y1, false)) {
    axes.append(svg("line", { x1: MARGIN.left, x2: MARGIN.left + w, y1: py(t), y2: py(t), stroke: "#eee" }));
    axes.append(svg("text", { x: MARGIN.left - 4, y: py(t) + 4, "text-anchor": "end" }, fy(t)));
  }
  axes.append(svg("text", { x: MARGIN.left + w / 2, y: height - 4, "text-anchor": "middle" }, xLabel));
  if (yLabel) {
    axes.append(svg("text", { x: 12, y: MARGIN.top + hgt / 2, transform: `rotate(-90 12 ${MARGIN.top + hgt / 2})`,
      "text-anchor": "middle" }, yLabel));
  }
  root.append(axes);

  const legend = document.createElement("ul");
  const entry = (name, colour, dashed) => {
    const li = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = dashed ? `repeating-linear-gradient(90deg, ${colour} 0 4px, transparent 4px 7px)` : colour;
    li.append(swatch, name);
    legend.append(li);
  };
  drawn.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const points = s.points.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" ");
    const line = svg("polyline", { class: "series", "data-name": s.name, "data-count": s.points.length, points,
      fill: "none", stroke: colour, "stroke-width": 1.6 });
    line.append(svg("title", {}, s.name));
    root.append(line);
    if (s.points.length <= 40) {
      for (const [x, y] of s.points) root.append(svg("circle", { cx: px(x), cy: py(y), r: 2.5, fill: colour }));
    }
    entry(s.name, colour, false);
  });
  lines.forEach((l, i) => {
    const colour = COLOURS[(drawn.length + i) % COLOURS.length];
    const line = svg("line", { class: "reference", "data-name": l.name, x1: MARGIN.left, x2: MARGIN.left + w,
      y1: py(l.y), y2: py(l.y), stroke: colour, "stroke-width": 1.6, "stroke-dasharray": "6 4" });
    line.append(svg("title", {}, `${l.name}: ${fy(l.y)}`));
    root.append(line);
    entry(`${l.name} (${fy(l.y)})`, colour, true);
  });
  figure.append(legend);
  return figure;
}

/** [[step, value], ...] of a /metrics series. */
export const toPoints = (pts) => (pts || []).map((p) => [p.step, p.value]);
