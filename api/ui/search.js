// The distiller search's leaderboard (a distill job with method "auto"), read from the metric
// series each trial writes: search/<candidate>/select/AP, one point per rung the trial reached.

import { fmtAP, h } from "./dom.js";

const SELECT_AP = /^search\/(.+)\/select\/AP$/;

/** A table of every candidate's selection AP at each rung, best first; null for a job without a search. */
export function searchBoard(series) {
  const rows = Object.entries(series)
    .map(([name, points]) => [name.match(SELECT_AP), points])
    .filter(([match, points]) => match && points.length)
    .map(([match, points]) => ({ label: match[1], ap: new Map(points.map((p) => [p.step, p.value])) }));
  if (!rows.length) return null;
  const steps = [...new Set(rows.flatMap((r) => [...r.ap.keys()]))].sort((a, b) => a - b);
  const reached = (r) => Math.max(...r.ap.keys());
  rows.sort((a, b) => reached(b) - reached(a) || b.ap.get(reached(b)) - a.ap.get(reached(a)));
  const top = steps[steps.length - 1];
  const state = (r, i) => (reached(r) < top ? `out at step ${reached(r)}` : i === 0 ? "leading" : "in");
  return h("table", { id: "search-board" },
    h("caption", {}, "Selection AP (held-out training images) of each candidate at each rung"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Candidate"),
      steps.map((s) => h("th", { scope: "col" }, `step ${s}`)), h("th", { scope: "col" }, "State"))),
    h("tbody", {}, rows.map((r, i) => h("tr", { "data-candidate": r.label }, h("td", {}, r.label),
      steps.map((s) => h("td", { class: "num" }, r.ap.has(s) ? fmtAP(r.ap.get(s)) : "–")),
      h("td", {}, state(r, i))))));
}
