// The jobs list: state filter, progress, ETA, final AP, a selection to compare; polled live.
// A queued job shows its place in its pool's queue (GET /queue) and when it should start.

import { getJSON, jobPath } from "./api.js";
import { TERMINAL, etaSeconds, fmtAP, fmtDuration, fmtTime, h, jobLabel } from "./dom.js";

const STATES = ["queued", "starting", "running", "cancelling", "pausing", "paused", "succeeded", "failed", "cancelled"];
const POLL_MS = 2000;
const finalAP = new Map(); // job id -> final eval/AP (a finished job's does not change)

async function apOf(job) {
  if (job.status !== "succeeded") return null;
  if (!finalAP.has(job.id)) {
    const { series } = await getJSON(jobPath(job.id, "/metrics?names=eval/AP"));
    const pts = series["eval/AP"] || [];
    finalAP.set(job.id, pts.length ? pts[pts.length - 1].value : null);
  }
  return finalAP.get(job.id);
}

/** Waiting jobs by id: {position, eta_seconds, held, pool, note} from GET /queue. */
async function waitingJobs() {
  const { pools } = await getJSON("/queue");
  const out = new Map();
  for (const p of pools) for (const j of p.jobs) out.set(j.id, { ...j, pool: p.pool, note: p.note });
  return out;
}

function stateCell(job, waiting) {
  let text = job.status + (job.phase && !TERMINAL.includes(job.status) ? ` (${job.phase})` : "");
  const attrs = { class: `state state-${job.status}` };
  if (waiting) {
    text += ` #${waiting.position} in ${waiting.pool}`;
    attrs["data-position"] = String(waiting.position);
    attrs.title = [waiting.held, waiting.note].filter(Boolean).join("; ") || `place in pool ${waiting.pool}'s queue`;
  }
  return h("td", attrs, text);
}

function etaCell(job, waiting) {
  if (waiting) {
    const start = fmtDuration(waiting.eta_seconds);
    return h("td", { class: "num", title: "until it starts, from the pool's measured step rate" },
      start ? `starts in ${start}` : "");
  }
  return h("td", { class: "num" }, fmtDuration(etaSeconds(job)));
}

function row(job, ap, selected, waiting) {
  const step = job.progress_step || 0, total = job.progress_total || 0;
  const done = job.status === "succeeded";
  const pct = total ? Math.round((100 * (done ? total : step)) / total) : done ? 100 : 0;
  return h("tr", { "data-job-id": job.id },
    h("td", {}, h("input", { type: "checkbox", class: "pick", value: job.id, "aria-label": `select ${jobLabel(job)}`,
      checked: selected.has(job.id) })),
    h("td", {}, h("a", { href: `#/job/${job.id}` }, jobLabel(job))),
    h("td", {}, job.kind),
    stateCell(job, waiting),
    h("td", {}, h("progress", { max: 100, value: pct, "aria-label": `${jobLabel(job)} progress` }), ` ${pct}%`),
    etaCell(job, waiting),
    h("td", { class: "num ap" }, fmtAP(ap)),
    h("td", {}, fmtTime(job.created_at)),
    h("td", {}, fmtTime(job.finished_at)),
  );
}

export function render(view, _params, ctx) {
  const selected = new Set();
  const filter = h("select", { id: "state-filter" }, h("option", { value: "" }, "all"),
    STATES.map((s) => h("option", { value: s }, s)));
  const compare = h("button", { type: "button", id: "compare-selected", disabled: true }, "Compare selected");
  const body = h("tbody");
  const table = h("table", { id: "jobs" },
    h("caption", { class: "hint" }, "Newest first; updates every 2 s."),
    h("thead", {}, h("tr", {}, ["Pick", "Name", "Kind", "State", "Progress", "ETA", "Final AP", "Created", "Finished"]
      .map((t) => h("th", { scope: "col" }, t)))),
    body);
  view.replaceChildren(h("h2", {}, "Jobs"),
    h("div", { class: "toolbar" }, h("label", { for: "state-filter" }, "State "), filter, compare), table);

  body.addEventListener("change", (e) => {
    if (!e.target.classList.contains("pick")) return;
    if (e.target.checked) selected.add(e.target.value);
    else selected.delete(e.target.value);
    compare.disabled = selected.size < 2;
  });
  compare.addEventListener("click", () => { location.hash = `#/compare?jobs=${[...selected].join(",")}`; });

  let timer = null;
  let generation = 0; // a filter change or leaving the page ends the running poll loop
  async function refresh(mine) {
    try {
      const query = filter.value ? `&status=${filter.value}` : "";
      const [{ data }, waiting] = await Promise.all([getJSON(`/jobs?limit=100${query}`), waitingJobs()]);
      const aps = await Promise.all(data.map(apOf));
      if (mine !== generation) return;
      body.replaceChildren(...data.map((job, i) => row(job, aps[i], selected, waiting.get(job.id))));
      if (!data.length) body.append(h("tr", {}, h("td", { colspan: 9 }, "No job.")));
      view.dataset.loaded = "true";
    } catch (e) {
      ctx.fail(e);
    }
    if (mine === generation) timer = setTimeout(() => refresh(mine), POLL_MS);
  }
  const restart = () => { clearTimeout(timer); generation += 1; return generation; };
  filter.addEventListener("change", () => refresh(restart()));
  refresh(generation);
  return restart;
}
