// The evaluations a job's artifacts hold: the last one's PR curves and sample predictions at the
// top (pr_curves.json, samples/<who>-<k>.png), each earlier one's under its step
// (pr_curves/step-<N>.json, samples/step-<N>/<who>-<k>.png), as mar_core.eval_outputs writes them.

export const FINAL = "final";
const BY_STEP = /^(?:pr_curves\/step-(\d+)\.json|samples\/step-(\d+)\/[^/]+)$/;
const TOP_SAMPLE = /^samples\/[^/]+$/;

/** The evaluations with outputs among artifact `names`: earlier steps (as strings) ascending, then FINAL. */
export function evalSteps(names) {
  const steps = new Set();
  for (const name of names) {
    const m = BY_STEP.exec(name);
    if (m) steps.add(Number(m[1] || m[2]));
  }
  const list = [...steps].sort((a, b) => a - b).map(String);
  if (names.some((n) => n === "pr_curves.json" || TOP_SAMPLE.test(n))) list.push(FINAL);
  return list;
}

/** The artifact name of an evaluation's PR curves. */
export const curvesName = (step) => (step === FINAL ? "pr_curves.json" : `pr_curves/step-${step}.json`);

/** The sample pictures of an evaluation among artifact `names`, sorted. */
export const sampleNames = (names, step) =>
  names.filter((n) => (step === FINAL ? TOP_SAMPLE.test(n) : n.startsWith(`samples/step-${step}/`))).sort();
