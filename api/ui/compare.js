// Several jobs on the same axes (e.g. a baseline and a MAR student), with the teacher's AP as a
// horizontal line: #/compare?jobs=ID,ID[&teacher=JOB_ID][&teacher_ap=0.42].

import { getJSON, jobPath } from "./api.js";
import { TERMINAL, fmtAP, h, jobLabel } from "./dom.js";
import { linePlot, toPoints } from "./plot.js";

const POLL_MS = 2000;
const NAMES = "loss/total,eval/AP,eval/AP50";

async function load(id) {
  const [job, metrics] = await Promise.all([getJSON(jobPath(id)), getJSON(jobPath(id, `/metrics?names=${NAMES}`))]);
  return { job, series: metrics.series };
}

const final = (series, name) => {
  const pts = series[name] || [];
  return pts.length ? pts[pts.length - 1].value : null;
};

export function render(view, params, ctx) {
  const ids = (params.jobs || "").split(",").filter(Boolean);
  view.replaceChildren(h("h2", {}, "Compare jobs"));
  if (!ids.length) {
    view.append(h("p", {}, "Tick two or more jobs in the ", h("a", { href: "#/jobs" }, "jobs list"),
      " and press “Compare selected”."));
    view.dataset.loaded = "true";
    return () => {};
  }
  const plots = h("div", { class: "plots", id: "compare-plots" });
  const table = h("tbody");
  view.append(h("table", { id: "compare-table" }, h("thead", {}, h("tr", {},
    ["Job", "Kind", "State", "Final AP", "Final AP50"].map((t) => h("th", { scope: "col" }, t)))), table), plots);

  let timer = null;
  let alive = true;
  async function refresh() {
    let done = true;
    try {
      const runs = await Promise.all(ids.map(load));
      const lines = [];
      if (params.teacher) {
        const teacher = await load(params.teacher);
        const ap = final(teacher.series, "eval/AP");
        if (ap !== null) lines.push({ name: `teacher ${jobLabel(teacher.job)}`, y: ap });
      } else if (params.teacher_ap && Number.isFinite(Number(params.teacher_ap))) {
        lines.push({ name: "teacher", y: Number(params.teacher_ap) });
      }
      if (!alive) return;
      done = runs.every((r) => TERMINAL.includes(r.job.status));
      table.replaceChildren(...runs.map(({ job, series }) => h("tr", {},
        h("td", {}, h("a", { href: `#/job/${job.id}` }, jobLabel(job))), h("td", {}, job.kind),
        h("td", { class: `state state-${job.status}` }, job.status),
        h("td", { class: "num" }, fmtAP(final(series, "eval/AP"))), h("td", { class: "num" }, fmtAP(final(series, "eval/AP50"))))));
      const of = (name) => runs.map(({ job, series }) => ({ name: jobLabel(job), points: toPoints(series[name]) }));
      plots.replaceChildren(
        linePlot({ title: "AP (val)", yLabel: "AP", fromZero: true, series: of("eval/AP"), lines }),
        linePlot({ title: "AP50 (val)", yLabel: "AP50", fromZero: true, series: of("eval/AP50") }),
        linePlot({ title: "Total loss", yLabel: "loss", series: of("loss/total") }));
      view.dataset.loaded = "true";
    } catch (e) {
      ctx.fail(e);
    }
    if (alive && !done) timer = setTimeout(refresh, POLL_MS);
  }
  refresh();
  return () => { alive = false; clearTimeout(timer); };
}
