"""``mar bench quality``: train the teachers once, then every student run of a preset that is not
cached yet; each finished run becomes one record in the results folder.

Work folders live in the cache folder (``benchmarks/cache``, not committed): ``data/`` (the
synthetic sets, regenerated deterministically when absent), ``teachers/<key>/`` (where a teacher
trains; students read its float16 copy published in ``benchmarks/teachers/``, committed),
``runs/<key>/`` (a student's outputs; an interrupted run resumes from its checkpoint). A lock
file per work folder keeps two processes off the same run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import shutil
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.machine import machine_info
from benchmarks.plan import TEACHER_PREFIX, WARM_PREFIX, RunDef, teacher_run, warm_start_run
from benchmarks.presets import SYNTH_KIND, DataDef, Preset
from benchmarks.roster import plan_runs
from benchmarks.store import REPO_ROOT, ResultStore
from benchmarks.teachers import is_published, publish_teacher, published_dir, teachers_beside
from benchmarks.warm_start import START_FIELD, current_record, is_warm, start_record, start_stamp
from mar_core.data import load_dataset
from mar_core.errors import MarError
from mar_core.file_lock import LockHeld, file_lock
from mar_core.models.checkpoint_io import MODEL_CARD, MODEL_WEIGHTS
from mar_core.run import run_job
from mar_core.spec import JobSpec
from mar_core.synth_once import ensure_synthetic

log = logging.getLogger(__name__)


@dataclass
class QualitySummary:
    """What one invocation did: runs executed (with their records), skipped as cached, and
    skipped because another process holds them."""

    ran: list[dict[str, Any]] = field(default_factory=list)
    cached: list[RunDef] = field(default_factory=list)
    busy: list[RunDef] = field(default_factory=list)
    failed: list[tuple[RunDef, str]] = field(
        default_factory=list
    )  # (run, error): not stored, re-run next time
    teachers_trained: list[dict[str, Any]] = field(default_factory=list)
    stopped_at_max_runs: bool = False


class RunBusy(Exception):
    """Another process holds the lock of this run's work folder."""


@contextlib.contextmanager
def _locked(workdir: Path, wait: bool = False) -> Iterator[None]:
    """Hold ``workdir``'s lock file; ``RunBusy`` when another process holds it (unless ``wait``)."""
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(file_lock(workdir / ".lock", wait=wait))
        except LockHeld:
            raise RunBusy(str(workdir)) from None
        yield


def prepare_dataset(data: DataDef, cache: Path) -> Path:
    """The dataset folder on this machine: a synthetic set is generated into the cache once."""
    if data.kind != SYNTH_KIND:
        path = Path(data.path)
        return path if path.is_absolute() else (REPO_ROOT / path).resolve()

    return ensure_synthetic(cache / "data" / data.logical_path.split("/", 1)[1], data.synth)


def _actual_spec(run: RunDef, preset: Preset, cache: Path, teacher_dir: Path | None):

    group_data = preset.teachers[run.group].data if run.kind == "teacher" else preset.group(run.group).data
    spec = json.loads(json.dumps(run.spec))
    spec["dataset"]["path"] = str(prepare_dataset(preset.datasets[group_data], cache))
    if spec.get("teacher"):
        assert spec["teacher"]["checkpoint"].startswith(TEACHER_PREFIX) and teacher_dir is not None
        spec["teacher"]["checkpoint"] = str(teacher_dir)
    start = spec["model"].get("init_checkpoint") or ""
    if start.startswith(WARM_PREFIX):
        spec["model"]["init_checkpoint"] = str(run_dir(cache, start[len(WARM_PREFIX) :]))
    return JobSpec.model_validate(spec)


def run_dir(cache: Path, key: str) -> Path:
    """A student run's work folder; after the run it holds its final weights (a run folder)."""
    return cache / "runs" / key


def has_weights(folder: Path) -> bool:
    return (folder / MODEL_WEIGHTS).is_file() and (folder / MODEL_CARD).is_file()


def _mean(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if key in r]
    return round(statistics.fmean(vals), 6) if vals else None


def summarise_metrics(path: Path) -> dict[str, Any]:
    """From ``metrics.jsonl``: the eval history and the mean of every loss term over the
    first and the last fifth of the logged steps (loss magnitudes, KD against detection)."""
    if not path.exists():
        return {"eval_history": [], "losses": {}}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    evals = [
        {
            "step": r["step"],
            **{k[5:]: round(v, 6) for k, v in r.items() if k in ("eval/AP", "eval/AP50", "eval/AP75")},
        }
        for r in rows
        if "eval/AP" in r
    ]
    train = [r for r in rows if any(k.startswith("loss/") for k in r)]
    keys = sorted({k for r in train for k in r if k.startswith("loss/")})
    fifth = max(1, len(train) // 5)
    losses = {
        "early": {k: _mean(train[:fifth], k) for k in keys},
        "late": {k: _mean(train[-fifth:], k) for k in keys},
        "steps": {
            "early": [train[0]["step"], train[fifth - 1]["step"]] if train else [],
            "late": [train[-fifth]["step"], train[-1]["step"]] if train else [],
        },
    }
    step_times = [r["time/step_s"] for r in train if "time/step_s" in r]
    return {
        "eval_history": evals,
        "losses": losses,
        "median_step_seconds": round(statistics.median(step_times), 4) if step_times else None,
    }


def _record(run: RunDef, report: dict[str, Any], workdir: Path, command: str) -> dict[str, Any]:
    return {
        "key": run.key,
        "kind": run.kind,
        "preset": run.preset,
        "group": run.group,
        "label": run.label,
        "seed": run.seed,
        "teacher_key": run.teacher_key,
        **run.extra,
        "eval": report["eval"],
        "best": report["best"],
        **summarise_metrics(workdir / "metrics.jsonl"),
        "wall_seconds": report["wall_seconds"],
        "train_seconds": report["train_seconds"],
        "images_per_second": report["images_per_second"],
        "resumed_from_step": report["resumed_from_step"],
        "params": report["params"],
        **({"kd_weights": report["kd_weights"]} if report.get("kd_weights") else {}),
        **({"search": report["search"]} if report.get("search") else {}),
        **({"train_autocast": report["train_autocast"]} if report.get("train_autocast") else {}),
        "device": report["device"],
        "dataset": {k: report["dataset"][k] for k in ("train_images", "val_images")},
        "machine": machine_info(),
        "command": command,
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "spec": run.spec,
    }


def _execute(
    run: RunDef,
    preset: Preset,
    store: ResultStore,
    cache: Path,
    workdir: Path,
    teacher_dir: Path | None,
    command: str,
) -> dict[str, Any]:

    with _locked(workdir):
        spec = _actual_spec(run, preset, cache, teacher_dir)
        log.info(
            "run %s %s/%s seed %d (key %s) in %s",
            run.kind,
            run.group,
            run.label,
            run.seed,
            run.key[:12],
            workdir,
        )
        report = run_job(spec, workdir)
        record = _record(run, report, workdir, command)
        if is_warm(run):
            start = start_record(store, preset, run)
            record[START_FIELD] = start_stamp(start) if start is not None else None
        store.put(record)
        shutil.rmtree(workdir / "checkpoints", ignore_errors=True)  # results are kept; weights in model.pt
    return record


def teacher_dir(cache: Path, key: str) -> Path:
    return cache / "teachers" / key


def teacher_ready(cache: Path, key: str) -> bool:
    d = teacher_dir(cache, key)
    return (d / "model.pt").exists() and (d / "report.json").exists()


class Runner:
    """Executes runs one by one: trains and publishes (``benchmarks.teachers``) the teacher a
    run needs first, skips cached runs (unless ``rerun``) and runs another process holds, stops
    after ``max_runs`` trainings. Published teachers live in ``teachers`` (default: beside the
    results folder)."""

    def __init__(
        self,
        preset: Preset,
        store: ResultStore,
        cache: Path,
        *,
        max_runs: int | None = None,
        rerun: bool = False,
        command: str = "",
        on_event: Callable[[str, RunDef, dict | None], None] = lambda *a: None,
        teachers: Path | None = None,
    ):
        self.preset, self.store, self.cache = preset, store, Path(cache)
        self.teachers = Path(teachers) if teachers is not None else teachers_beside(store.root)
        self.max_runs, self.rerun, self.command, self.on_event = max_runs, rerun, command, on_event
        self.summary = QualitySummary()
        self.trainings = 0

    def _budget_left(self) -> bool:
        if self.max_runs is not None and self.trainings >= self.max_runs:
            self.summary.stopped_at_max_runs = True
            return False
        return True

    def _train(
        self, run: RunDef, workdir: Path, teacher: Path | None, *, fail_soft: bool = True
    ) -> dict | None:
        """Train ``run`` in ``workdir`` now, telling ``on_event`` and the summary; the record, or
        None when another process holds the run or (``fail_soft``) it failed (a diverged or refused
        run: said, and the others go on)."""
        self.on_event("start", run, None)
        try:
            rec = _execute(run, self.preset, self.store, self.cache, workdir, teacher, self.command)
        except RunBusy:
            self.summary.busy.append(run)
            self.on_event("busy", run, None)
            return None
        except MarError as e:
            if not fail_soft:
                raise
            log.error("run %s/%s seed %d failed: %s", run.group, run.label, run.seed, e)
            self.summary.failed.append((run, str(e)))
            self.on_event("failed", run, {"error": str(e)})
            return None
        self.trainings += 1
        return rec

    def ensure_teacher(self, group_name: str) -> Path | None:
        """The published teacher's folder (trained and published first when missing); None when
        another process holds it or the budget ran out first."""
        tdef = self.preset.teachers[self.preset.group(group_name).teacher]
        trun = teacher_run(self.preset, tdef)
        if is_published(self.teachers, trun):
            return published_dir(self.teachers, trun)
        tdir = teacher_dir(self.cache, trun.key)
        if not teacher_ready(self.cache, trun.key):
            if self.store.has(trun.key):
                log.warning(
                    "teacher %s has a result but no weights in %s: training it again", tdef.name, tdir
                )
            if not self._budget_left():
                return None
            rec = self._train(trun, tdir, None, fail_soft=False)
            if rec is None:
                return None
            self.summary.teachers_trained.append(rec)
            self.on_event("done", trun, rec)
        with _locked(tdir, wait=True):  # the weights are there: at most a publication (~1 min) to wait for
            if not is_published(self.teachers, trun):
                self._publish(trun, tdir)
        return published_dir(self.teachers, trun)

    def _publish(self, trun: RunDef, tdir: Path) -> None:

        spec = _actual_spec(trun, self.preset, self.cache, None)
        val = load_dataset(spec.dataset, spec.dataset.val_split)
        rec = self.store.get(trun.key) or {}
        publish_teacher(tdir, trun, self.teachers, val, trained_eval=rec.get("eval"))

    def ensure_warm_start(self, run: RunDef) -> bool:
        """The final weights of the run a warm-started ``run`` starts from, in its work folder on
        this machine; that run is trained again when they are not here (its result file is
        replaced by this machine's: the weights and the recorded AP must be the same run's).
        False when another process holds it or it failed."""
        src = warm_start_run(self.preset, self.preset.group(run.group), run.seed)
        folder = run_dir(self.cache, src.key)
        if has_weights(folder):
            return True
        log.info(
            "warm start of %s/%s seed %d: training its start, %s", run.group, run.label, run.seed, src.label
        )
        rec = self._train(src, folder, None)
        if rec is None:
            return False
        self.summary.ran.append(rec)
        self.on_event("done", src, rec)
        return True

    def run(self, run: RunDef) -> bool:
        """Run (or skip) one run; False once the ``max_runs`` budget is spent."""
        cached = None if self.rerun else current_record(self.store, self.preset, run)
        if cached is not None:
            self.summary.cached.append(run)
            self.on_event("cached", run, cached)
            return True
        if not self._budget_left():
            return False
        if is_warm(run):
            if not self.ensure_warm_start(run):
                return self._budget_left()
            if not self._budget_left():
                return False
        tdir = None
        if run.teacher_key is not None:
            tdir = self.ensure_teacher(run.group)
            if tdir is None:
                return self._budget_left()
            if not self._budget_left():
                return False
        rec = self._train(run, run_dir(self.cache, run.key), tdir)
        if rec is None:
            return True
        self.summary.ran.append(rec)
        self.on_event("done", run, rec)
        return True


def run_in_order(
    preset: Preset,
    store: ResultStore,
    cache: Path,
    runs: list[RunDef],
    *,
    max_runs: int | None = None,
    command: str = "",
    on_event: Callable[[str, RunDef, dict | None], None] = lambda *a: None,
) -> QualitySummary:
    """Train the runs not cached yet, in the order given (at most ``max_runs`` trainings)."""
    runner = Runner(preset, store, cache, max_runs=max_runs, command=command, on_event=on_event)
    for run in runs:
        if not runner.run(run):
            break
    return runner.summary


def run_quality(
    preset: Preset,
    store: ResultStore,
    cache: Path,
    *,
    groups: list[str] | None = None,
    students: list[str] | None = None,
    seeds: list[int] | None = None,
    max_runs: int | None = None,
    rerun: bool = False,
    teachers_only: bool = False,
    command: str = "",
    on_event: Callable[[str, RunDef, dict | None], None] = lambda *a: None,
) -> QualitySummary:
    """Run the missing runs of the selection (all of them with ``rerun``), at most ``max_runs``
    trainings (a teacher counts as one). ``on_event(what, run, record)`` is told "start",
    "done", "cached" and "busy". Groups are planned one at a time, so a group that picks the
    best peers of an earlier group sees that group's runs of this invocation. ``teachers_only``:
    train and publish the selected groups' teachers, run no student."""
    runner = Runner(preset, store, cache, max_runs=max_runs, rerun=rerun, command=command, on_event=on_event)
    for group in preset.groups:
        if groups and group.name not in groups:
            continue
        if teachers_only:
            if runner.ensure_teacher(group.name) is None and not runner._budget_left():
                break
            continue
        for run in plan_runs(store, preset, [group.name], students, seeds):
            if not runner.run(run):
                return runner.summary
    return runner.summary
