// One job: state, pause / resume / cancel, spec, events (SSE), loss and AP curves, the distiller search's
// leaderboard (method "auto"), per-class AP, PR curves and
// sample predictions (of the evaluation chosen in a selector when there are several), artifacts.

import { artifactPath, blobURL, download, getJSON, jobPath, postJSON, streamEvents } from "./api.js";
import { TERMINAL, etaSeconds, fmtAP, fmtDuration, fmtTime, h, jobLabel, lastValues } from "./dom.js";
import { FINAL, curvesName, evalSteps, sampleNames } from "./evals.js";
import { linePlot, toPoints } from "./plot.js";
import { searchBoard } from "./search.js";

const POLL_MS = 2000;
const AP_SERIES = ["eval/AP", "eval/AP50", "eval/AP75"];

function eventText(ev) {
  const d = ev.data || {};
  const detail = d.status || d.phase || d.name || d.message || (d.step !== undefined ? `step ${d.step}/${d.total}` : "");
  return `${fmtTime(ev.created_at)} — ${ev.type}${detail ? `: ${detail}` : ""}`;
}

function lossPlot(series) {
  const names = Object.keys(series).filter((n) => n.startsWith("loss/")).sort();
  return linePlot({ title: "Loss per term", yLabel: "loss", series: names.map((n) => ({ name: n, points: toPoints(series[n]) })) });
}

function apPlot(series) {
  return linePlot({ title: "AP (val)", yLabel: "AP", fromZero: true,
    series: AP_SERIES.map((n) => ({ name: n.slice(5), points: toPoints(series[n]) })) });
}

function classTable(series) {
  const last = lastValues(series);
  const names = Object.keys(last).filter((n) => n.startsWith("eval/AP/")).sort();
  if (!names.length) return h("p", { class: "hint" }, "No evaluation yet.");
  return h("table", { id: "class-ap" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Class"), h("th", { scope: "col" }, "AP"))),
    h("tbody", {}, names.map((n) => h("tr", {}, h("td", {}, n.slice(8)), h("td", { class: "num" }, fmtAP(last[n]))))));
}

function prPlots(curves) {
  return Object.entries(curves.iou).map(([iou, perClass]) => linePlot({
    title: `PR curves, IoU ${iou} (step ${curves.step})`, xLabel: "recall", yLabel: "precision", yRange: [0, 1],
    width: 420, series: Object.entries(perClass).filter(([, p]) => p)
      .map(([name, p]) => ({ name, points: p.map((v, i) => [curves.recall[i], v]) })),
  }));
}

export function render(view, { id }, ctx) {
  const abort = new AbortController();
  const urls = []; // Blob URLs to revoke when leaving
  let timer = null;
  let job = null;
  let lastEvent = 0;
  let artifactsShown = "";
  let listed = new Map(); // artifact name -> {name, sha256, ...} of the latest list
  let chosenStep = null; // the evaluation picked in the selector (null: the latest)
  let rendering = 0;
  const blobs = new Map(); // "name sha256" -> Blob URL (promise)

  const title = h("h2", {}, "Job");
  const status = h("p", { id: "job-status", "aria-live": "polite" });
  const cancel = h("button", { type: "button", id: "cancel", class: "danger", disabled: true }, "Cancel job");
  const pause = h("button", { type: "button", id: "pause", disabled: true }, "Pause");
  const resume = h("button", { type: "button", id: "resume", disabled: true }, "Resume");
  const compareLink = h("a", { href: `#/compare?jobs=${id}` }, "Open in compare view");
  const plots = h("div", { class: "plots", id: "metric-plots" });
  const classAP = h("div");
  const searchBox = h("section", { id: "search", hidden: true }, h("h3", {}, "Distiller search"));
  const prBox = h("div", { class: "plots", id: "pr-plots" });
  const samples = h("div", { class: "samples", id: "samples" });
  const stepSelect = h("select", { id: "eval-step" });
  const stepBox = h("div", { class: "toolbar", id: "eval-step-box", hidden: true },
    h("label", { for: "eval-step" }, "Evaluation shown (PR curves and sample predictions):"), stepSelect);
  const artifacts = h("tbody");
  const events = h("ol", { class: "events", id: "events", tabindex: 0, "aria-label": "Events" });
  const spec = h("pre", { class: "spec", id: "spec", tabindex: 0, "aria-label": "Job spec" });
  view.replaceChildren(title, status, h("div", { class: "toolbar" }, pause, resume, cancel, compareLink),
    h("h3", {}, "Curves"), plots, searchBox, h("h3", {}, "Per-class AP"), classAP, stepBox, h("h3", {}, "PR curves"), prBox,
    h("h3", {}, "Sample predictions"), samples,
    h("h3", {}, "Artifacts"), h("table", { id: "artifacts" }, h("thead", {}, h("tr", {},
      ["Name", "Size (bytes)", "sha256", ""].map((t) => h("th", { scope: "col" }, t)))), artifacts),
    h("h3", {}, "Events"), events, h("h3", {}, "Spec"), spec);

  stepSelect.addEventListener("change", () => {
    chosenStep = stepSelect.value;
    showEval(chosenStep).catch(ctx.fail);
  });

  // Cancel, pause and resume: POST /jobs/{id}/<action>; the answer is the job as it is now.
  for (const [button, action] of [[cancel, "/cancel"], [pause, "/pause"], [resume, "/resume"]]) {
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        showJob(await postJSON(jobPath(id, action)));
      } catch (e) {
        ctx.fail(e);
      }
    });
  }

  function showJob(j) {
    job = j;
    title.textContent = `Job ${jobLabel(j)}`;
    const progress = j.progress_total ? ` — step ${j.progress_step || 0} of ${j.progress_total}` : "";
    const eta = etaSeconds(j);
    status.replaceChildren(h("span", { class: `state state-${j.status}` }, j.status),
      `${j.phase && !TERMINAL.includes(j.status) ? ` (${j.phase})` : ""}${progress}${eta !== null ? `, ETA ${fmtDuration(eta)}` : ""} · ${j.kind} · `,
      `created ${fmtTime(j.created_at)}${j.finished_at ? `, finished ${fmtTime(j.finished_at)}` : ""}`,
      j.error ? ` · error: ${j.error.message}` : "");
    cancel.disabled = TERMINAL.includes(j.status) || j.status === "cancelling";
    pause.disabled = !["queued", "starting", "running"].includes(j.status);
    resume.disabled = j.status !== "paused";
    if (!spec.textContent) spec.textContent = JSON.stringify(j.spec, null, 2);
  }

  async function showArtifacts() {
    const list = await getJSON(jobPath(id, "/artifacts"));
    const key = list.map((a) => `${a.name} ${a.sha256}`).join();
    if (key === artifactsShown) return;
    artifactsShown = key;
    artifacts.replaceChildren(...list.map((a) => h("tr", {}, h("td", {}, a.name), h("td", { class: "num" }, a.size),
      h("td", {}, h("code", { title: a.sha256 }, a.sha256.slice(0, 12))),
      h("td", {}, h("button", { type: "button", "aria-label": `download ${a.name}`,
        onclick: () => download(artifactPath(id, a.name), a.name.split("/").pop()).catch(ctx.fail) }, "Download")))));
    listed = new Map(list.map((a) => [a.name, a]));
    const steps = evalSteps([...listed.keys()]);
    const step = steps.includes(chosenStep) ? chosenStep : steps[steps.length - 1] ?? null;
    stepSelect.replaceChildren(...steps.map((s) => h("option", { value: s, selected: s === step },
      s === FINAL ? `last (step ${job?.progress_total ?? "end"})` : `step ${s}`)));
    stepBox.hidden = steps.length < 2;
    await showEval(step);
  }

  /** The PR curves and sample predictions of evaluation `step` (FINAL or a step; null: none yet). */
  async function showEval(step) {
    const token = ++rendering;
    const names = [...listed.keys()];
    const curvesArt = step !== null && listed.get(curvesName(step));
    const curves = curvesArt ? await (await fetch(await artifactURL(curvesArt))).json() : null;
    const figures = await Promise.all((step === null ? [] : sampleNames(names, step)).map(async (n) => {
      const label = n.split("/").pop().replace(/\.\w+$/, "").replace("-", " prediction ")
        + (step === FINAL ? "" : `, step ${step}`);
      return h("figure", {}, h("img", { src: await artifactURL(listed.get(n)), alt: label }),
        h("figcaption", {}, label));
    }));
    if (token !== rendering) return; // a later choice is being shown
    view.dataset.evalStep = step ?? "";
    if (curves) prBox.replaceChildren(...prPlots(curves));
    else prBox.replaceChildren(h("p", { class: "hint" }, "Written at each evaluation."));
    samples.replaceChildren(...figures);
    if (!figures.length) samples.append(h("p", { class: "hint" }, "Drawn at each evaluation and at the end of the job."));
  }

  /** A Blob URL of an artifact's current content (kept per name and digest). */
  function artifactURL(a) {
    const key = `${a.name} ${a.sha256}`;
    if (!blobs.has(key)) {
      blobs.set(key, track(blobURL(artifactPath(id, a.name))).catch((e) => {
        blobs.delete(key); // fetched again next time
        throw e;
      }));
    }
    return blobs.get(key);
  }

  async function track(promise) {
    const url = await promise;
    urls.push(url);
    return url;
  }

  async function refresh() {
    try {
      const [j, metrics] = await Promise.all([getJSON(jobPath(id)), getJSON(jobPath(id, "/metrics"))]);
      if (abort.signal.aborted) return;
      showJob(j);
      plots.replaceChildren(lossPlot(metrics.series), apPlot(metrics.series));
      classAP.replaceChildren(classTable(metrics.series));
      const board = searchBoard(metrics.series);
      searchBox.hidden = !board;
      if (board) searchBox.replaceChildren(searchBox.firstChild, board);
      await showArtifacts();
      view.dataset.loaded = "true";
    } catch (e) {
      if (!abort.signal.aborted) ctx.fail(e);
    }
    if (!abort.signal.aborted && job && !TERMINAL.includes(job.status)) timer = setTimeout(refresh, POLL_MS);
  }

  async function follow() {
    try {
      await streamEvents(id, lastEvent, (ev) => {
        if (ev.id !== null) lastEvent = ev.id; // live progress has no id (not stored)
        if (ev.type !== "progress") events.append(h("li", { "data-type": ev.type }, eventText(ev)));
        if (ev.type === "status" && TERMINAL.includes(ev.data.status)) {
          clearTimeout(timer);
          refresh();
        }
      }, abort.signal);
    } catch (e) {
      if (!abort.signal.aborted) ctx.fail(e);
    }
  }

  refresh();
  follow();
  return () => {
    abort.abort();
    clearTimeout(timer);
    urls.forEach((u) => URL.revokeObjectURL(u));
  };
}
