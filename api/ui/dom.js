// Small DOM and formatting helpers shared by the pages.

/** h("td", {class: "num"}, "1.0", child...): an element; attributes starting with "on" are listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined));
  return el;
}

export const jobLabel = (job) => job.name || job.id.slice(0, 8);
export const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString() : "");
export const fmtAP = (ap) => (ap === null || ap === undefined || ap < 0 ? "–" : (100 * ap).toFixed(1));
export const TERMINAL = ["succeeded", "failed", "cancelled"];

export function fmtDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** Seconds left for a running job, from its progress since it started; null when unknown. */
export function etaSeconds(job, now = Date.now()) {
  const step = job.progress_step, total = job.progress_total;
  if (TERMINAL.includes(job.status) || !job.started_at || !step || !total || step >= total) return null;
  const elapsed = (now - new Date(job.started_at).getTime()) / 1000;
  return (elapsed / step) * (total - step);
}

/** The last value of each series of a /metrics answer. */
export const lastValues = (series) =>
  Object.fromEntries(Object.entries(series).map(([name, pts]) => [name, pts[pts.length - 1].value]));
