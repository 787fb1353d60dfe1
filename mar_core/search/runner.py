"""Run a distiller search (``distill.method: "auto"``) as one job, in named steps:

1. hold out the selection split from the training split (``selection``);
2. when the student starts from trained weights, check that the teacher is clearly better than
   it on the selection split; if not, KD is not expected to help: warn, and train without it;
3. successive halving (``halving``): every candidate trains the job's schedule on the rest of
   the training split until a rung, is ranked by its AP on the selection split, the best go on;
4. the winner continues from its trial's checkpoint to the end of the schedule, on the whole
   training split, in the job's own folder; its report gets a ``search`` section (the
   leaderboard, the chosen candidate and why, the compute as a multiple of one plain run).

Each trial is a ``run_single_job`` in ``search/trials/<label>/`` that stops at its rung through
``should_stop``; its metrics reach the job as ``search/<label>/<name>``, its log lines prefixed
with its label. Every ranked trial is saved in ``search/state.json`` first (resume).

Why not Optuna: its pruners are asynchronous (a trial runs on until a rung where it compares
itself with the trials before it), so with trials run one after the other on one worker the
first is never pruned and the job may pay a full run per candidate; synchronous halving over a
handful of categorical candidates, with the winner resumed from its checkpoint, is ~40 lines.
"""

from __future__ import annotations

import json
import logging
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Subset

from mar_core.checkpoint_files import CHECKPOINT_DIR, LAST_CHECKPOINT
from mar_core.data import load_dataset
from mar_core.engine.hooks import device_of, load_training_checkpoint
from mar_core.errors import JobCancelled, MarError, NonFiniteLossError
from mar_core.eval import evaluate_model
from mar_core.methods import NO_KD, AutoSpec, parse_distill
from mar_core.methods.base import RUNTIME_FIELDS
from mar_core.models.pretrained import load_pretrained_start
from mar_core.models.registry import build_detector
from mar_core.progress import STEP_SECONDS, ProgressCallback, ProgressEvent
from mar_core.search.candidates import Candidate, search_candidates
from mar_core.search.halving import Rung, halving_plan, planned_steps
from mar_core.search.selection import split_for_selection
from mar_core.search.state import SearchState
from mar_core.single_run import run_single_job
from mar_core.spec import JobSpec, MlflowSpec
from mar_core.spec_hash import run_fingerprint
from mar_core.teacher import load_teacher

__all__ = ["JobContext", "is_search", "run_search"]

log = logging.getLogger(__name__)

SEARCH_DIR = "search"
TRIALS_DIR = "trials"
METRICS_FILE = "metrics.jsonl"
# "Clearly better": the teacher's selection AP above the warm student's by more than this many
# AP points (0-1 scale) or this share of the teacher's AP, whichever is larger.
CLEAR_GAP_AP = 0.02
CLEAR_GAP_SHARE = 0.1


@dataclass(frozen=True)
class JobContext:
    """What ``run_job`` was given besides the spec and the folder."""

    data_roots: list[Path] | None
    checkpoint_roots: list[Path] | None
    progress: ProgressCallback
    should_stop: Callable[[], bool]
    device: str | None
    mlflow: MlflowSpec | None

    def kwargs(self) -> dict[str, Any]:
        return {
            "data_roots": self.data_roots,
            "checkpoint_roots": self.checkpoint_roots,
            "progress": self.progress,
            "should_stop": self.should_stop,
            "device": self.device,
            "mlflow": self.mlflow,
        }


def is_search(spec: JobSpec) -> bool:
    return spec.kind == "distill" and isinstance(spec.distill, AutoSpec)


def candidate_spec(spec: JobSpec, candidate: Candidate) -> JobSpec:
    """The job spec of one candidate: its distill section (with the search's ``RUNTIME_FIELDS``:
    how the teacher runs), or a plain training job."""
    if candidate.distill is None:
        return spec.model_copy(update={"kind": "train", "teacher": None, "distill": None})
    distill = dict(candidate.distill)
    if spec.distill is not None:
        runtime = spec.distill.model_dump(include=set(RUNTIME_FIELDS))  # set or not default
        distill.update(runtime)
    return spec.model_copy(update={"distill": parse_distill(distill)})


class _Selection:
    """The held-out images and how a model scores on them (COCO AP, 0-1)."""

    def __init__(self, spec: JobSpec, ctx: JobContext, auto: AutoSpec):
        self.train = load_dataset(spec.dataset, spec.dataset.train_split, ctx.data_roots)
        self.fit, self.select = split_for_selection(len(self.train), auto.selection_fraction, spec.seed)
        self.subset = Subset(self.train, self.select)
        self.image_ids = [self.train.image_info(i)["id"] for i in self.select]
        self.device = device_of(ctx.device or spec.resources.device)
        self.batch_size, self.num_workers = spec.train.batch_size, spec.train.num_workers

    def score(self, model: nn.Module) -> dict[str, float]:
        model.to(self.device)
        result = evaluate_model(
            model, self.subset, self.device, self.batch_size, self.num_workers, self.image_ids
        )
        return {k: round(float(v), 6) for k, v in result.metrics.items() if k in ("AP", "AP50", "AP75")}

    def describe(self, spec: JobSpec, auto: AutoSpec) -> dict[str, Any]:
        return {
            "images": len(self.select),
            "train_images": len(self.fit),
            "fraction": auto.selection_fraction,
            "seed": spec.seed,
            "split": spec.dataset.train_split,
            "image_ids": self.image_ids,
        }


class _Events:
    """A trial's (or the winner's) events as the job reports them: metrics renamed under
    ``prefix``, progress counted in steps of the whole search, log lines labelled; a trial's own
    checkpoints and files stay out of the job's events."""

    def __init__(self, forward: ProgressCallback, prefix: str, offset: int, total: int, trial: bool):
        self.forward, self.prefix, self.offset, self.total, self.trial = forward, prefix, offset, total, trial
        self.step = 0
        self.step_seconds: list[float] = []

    def __call__(self, event: ProgressEvent) -> None:
        kind = event.get("type")
        if kind == "progress":
            self.step = int(event["step"])
            self.forward({"type": "progress", "step": self.offset + self.step, "total": self.total})
        elif kind == "metrics":
            values = event["values"]
            if STEP_SECONDS in values:
                self.step_seconds.append(float(values[STEP_SECONDS]))
            self.forward({**event, "values": {self.prefix + k: v for k, v in values.items()}})
        elif kind == "log" and self.trial:
            self.forward({**event, "message": f"[search {self.prefix.split('/')[1]}] {event['message']}"})
        elif not self.trial or kind == "phase":
            self.forward(event)


def _student_weights(model_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The student's own weights in a training checkpoint (a distiller's are under ``student.``)."""
    prefix = "student."
    if any(k.startswith(prefix) for k in model_state):
        return {k[len(prefix) :]: v for k, v in model_state.items() if k.startswith(prefix)}
    return model_state


def _trial_student(trial_dir: Path, spec: JobSpec, num_classes: int) -> tuple[nn.Module, int]:
    """The student of a stopped trial, and the step it stopped at."""
    state = load_training_checkpoint(trial_dir / CHECKPOINT_DIR / LAST_CHECKPOINT)
    student = build_detector(spec.model, num_classes)
    student.load_state_dict(_student_weights(state["model"]))
    return student, int(state["iteration"])


def _trial_step(trial_dir: Path) -> int:
    last = trial_dir / CHECKPOINT_DIR / LAST_CHECKPOINT
    return int(load_training_checkpoint(last)["iteration"]) if last.exists() else 0


class _Search:
    def __init__(self, spec: JobSpec, workdir: Path, ctx: JobContext):
        assert isinstance(spec.distill, AutoSpec)
        self.spec, self.workdir, self.ctx, self.auto = spec, workdir, ctx, spec.distill
        self.folder = workdir / SEARCH_DIR
        self.t_start = time.time()
        self.selection = _Selection(spec, ctx, self.auto)
        self.candidates = {c.label: c for c in search_candidates(self.auto, spec.model.two_stage)}
        iterations = spec.train.iterations
        fingerprint = run_fingerprint(spec.to_json_dict())
        state = SearchState.load(self.folder, fingerprint)
        if state is None:
            plan = halving_plan(len(self.candidates), self.auto.budget, iterations)
            state = SearchState(
                fingerprint=fingerprint,
                candidates=[c.to_dict() for c in self.candidates.values()],
                rungs=[r.to_dict() for r in plan],
                selection=self.selection.describe(spec, self.auto),
                alive=list(self.candidates),
            )
            self._start_check(state)
            state.save(self.folder)
            self._announce(state)
        self.state = state
        self.planned_total = planned_steps(
            len(state.candidates) if state.rungs else 1, [Rung(**r) for r in state.rungs], iterations
        )

    # -- step 2: is there anything to learn from the teacher? ------------------------------------
    def _start_check(self, state: SearchState) -> None:
        if not self.spec.model.init_checkpoint:
            return  # a student from scratch: the teacher is better than it by construction
        student = build_detector(self.spec.model, self.selection.train.num_classes)
        load_pretrained_start(student, self.spec.model, self.ctx.checkpoint_roots)
        teacher = load_teacher(
            self.spec, self.ctx.checkpoint_roots, student, self.selection.train.class_names
        )
        if teacher.class_map is None or not teacher.class_map.identity:
            return  # the teacher's labels differ from the dataset's: its AP would not be comparable
        student_ap = self.selection.score(student)["AP"]
        teacher_ap = self.selection.score(teacher.model)["AP"]
        gap = teacher_ap - student_ap
        needed = max(CLEAR_GAP_AP, CLEAR_GAP_SHARE * teacher_ap)
        state.start_check = {
            "student_AP": student_ap,
            "teacher_AP": teacher_ap,
            "gap": round(gap, 6),
            "needed": round(needed, 6),
            "teacher_clearly_better": gap > needed,
        }
        if gap <= needed and NO_KD in self.candidates:
            state.warnings.append(
                f"KD is not expected to help: on the selection split the teacher's AP {teacher_ap:.4f} is not "
                f"clearly above the starting student's {student_ap:.4f} (needs a gap above {needed:.4f}); "
                "the job trains without KD"
            )
            state.alive = [NO_KD]
            state.rungs = []

    def _announce(self, state: SearchState) -> None:
        rungs = ", ".join(f"step {r['step']} keeps {r['keep']}" for r in state.rungs) or "none"
        self._log(
            f"distiller search: {len(state.alive)} candidate(s) ({', '.join(state.alive)}); selection split: "
            f"{state.selection['images']} of the {state.selection['split']} split's images (seed "
            f"{state.selection['seed']}); rungs: {rungs}; budget {self.auto.budget}x one plain run"
        )
        for warning in state.warnings:
            self._log(warning, "warning")

    def _log(self, message: str, level: str = "info", **extra: Any) -> None:
        log.info("%s", message)
        self.ctx.progress({"type": "log", "level": level, "message": message, **extra})

    # -- step 3: successive halving ---------------------------------------------------------------
    def run_rungs(self) -> None:
        previous = 0
        for rung in self.state.rungs:
            step = rung["step"]
            for label in list(self.state.alive):
                if self.state.result(label, step) is None:
                    self._train_trial(label, previous, step)
            ranked = sorted(self.state.alive, key=lambda c: -self.state.result(c, step)["AP"])
            if self.state.result(ranked[0], step).get("failed"):
                raise MarError(
                    f"every candidate of the distiller search diverged by step {step}: "
                    + "; ".join(f"{c}: {self.state.result(c, step)['failed']}" for c in ranked)
                )
            healthy = [c for c in ranked if not self.state.result(c, step).get("failed")]
            kept = healthy[: rung["keep"]]  # a diverged trial is never kept, even when too few are healthy
            out = [c for c in ranked if c not in kept]
            for label in out:
                self.state.eliminated.setdefault(label, step)
            self.state.alive = kept
            self.state.save(self.folder)
            board = ", ".join(f"{c} {self.state.result(c, step)['AP']:.4f}" for c in ranked)
            self._log(f"search rung at step {step}: selection AP {board}; kept {', '.join(kept)}")
            previous = step

    def _train_trial(self, label: str, start: int, stop: int) -> None:
        trial_dir = self.folder / TRIALS_DIR / label
        spec = candidate_spec(self.spec, self.candidates[label]).model_copy(update={"tracking": None})
        events = _Events(
            self.ctx.progress, f"search/{label}/", self.state.steps_done - start, self.planned_total, True
        )
        t0 = time.time()
        diverged = None
        if _trial_step(trial_dir) < stop:
            try:
                run_single_job(
                    spec,
                    trial_dir,
                    data_roots=self.ctx.data_roots,
                    checkpoint_roots=self.ctx.checkpoint_roots,
                    progress=events,
                    should_stop=lambda: self.ctx.should_stop() or events.step >= stop,
                    device=self.ctx.device,
                    train_subset=self.selection.fit,
                )
            except JobCancelled:
                if self.ctx.should_stop():
                    raise
            except NonFiniteLossError as exc:  # this candidate diverged: ranked last, the search goes on
                diverged = exc.message
        if diverged is None:
            student, at = _trial_student(trial_dir, spec, self.selection.train.num_classes)
            scores = self.selection.score(student)
        else:
            at, scores = events.step, {"AP": -1.0, "failed": diverged}
            self._log(f"search trial {label} diverged at step {at}: {diverged}; it is ranked last", "warning")
        scores.update(step=at, seconds=round(time.time() - t0, 2))
        self.state.results.setdefault(label, {})[str(stop)] = scores
        self.state.steps_done += stop - start
        if self.candidates[label].distill is not None:
            self.state.kd_step_seconds.extend(events.step_seconds)
        self.state.save(self.folder)
        self.ctx.progress(
            {"type": "metrics", "step": at, "values": {f"search/{label}/select/AP": scores["AP"]}}
        )
        self._log(f"search trial {label} at step {at}: selection AP {scores['AP']:.4f}", search_trial=label)

    # -- step 4: the winner runs to the end ----------------------------------------------------------
    def run_winner(self) -> dict[str, Any]:
        state = self.state
        if state.winner is None:
            state.winner = state.alive[0]
            self._explain_winner()
            state.save(self.folder)
        winner = state.winner
        last_rung = state.rungs[-1]["step"] if state.rungs else 0
        spec = candidate_spec(self.spec, self.candidates[winner])
        self._adopt_trial(winner, last_rung)
        events = _Events(self.ctx.progress, "", state.steps_done - last_rung, self.planned_total, False)
        return run_single_job(
            spec,
            self.workdir,
            data_roots=self.ctx.data_roots,
            checkpoint_roots=self.ctx.checkpoint_roots,
            progress=events,
            should_stop=self.ctx.should_stop,
            device=self.ctx.device,
            mlflow=self.ctx.mlflow,
            finish_report=self._finish_report,
        )

    def _explain_winner(self) -> None:
        state, winner = self.state, self.state.alive[0]
        if not state.rungs:
            return
        step = state.rungs[-1]["step"]
        kd = [c for c, r in state.results.items() if c != NO_KD and r.get(str(step)) is not None]
        if winner == NO_KD:
            best_kd = max(
                (c for c in state.results if c != NO_KD),
                key=lambda c: max(r["AP"] for r in state.results[c].values()),
                default=None,
            )
            detail = (
                f" (the best KD candidate, {best_kd}, reached {max(r['AP'] for r in state.results[best_kd].values()):.4f})"
                if best_kd
                else ""
            )
            state.warnings.append(
                f"KD is not expected to help: training without KD ranked first on the selection split at step "
                f"{step} (AP {state.result(NO_KD, step)['AP']:.4f}){detail}; the job trains without KD"
            )
            self._log(state.warnings[-1], "warning")
        why = f"{winner}: the highest selection AP at the last rung (step {step}): " + ", ".join(
            f"{c} {state.result(c, step)['AP']:.4f}" for c in [winner, *[c for c in kd if c != winner]]
        )
        self._log(f"search chose {why}", search_winner=winner)

    def _adopt_trial(self, label: str, step: int) -> None:
        """The winner's trial checkpoint and metrics become the job's (once): the job resumes
        from them; its metric series so far are replayed under their own names."""
        last = self.workdir / CHECKPOINT_DIR / LAST_CHECKPOINT
        if step == 0 or last.exists():
            return
        trial_dir = self.folder / TRIALS_DIR / label
        metrics = trial_dir / METRICS_FILE
        if metrics.exists():
            shutil.copyfile(metrics, self.workdir / METRICS_FILE)
            for line in metrics.read_text().splitlines():
                row = json.loads(line) if line.strip() else None
                if row and row.get("step", 0) <= step:
                    values = {
                        k: v
                        for k, v in row.items()
                        if k not in ("step", "time") and isinstance(v, (int, float))
                    }
                    self.ctx.progress({"type": "metrics", "step": row["step"], "values": values})
        last.parent.mkdir(parents=True, exist_ok=True)
        tmp = last.with_suffix(".adopting")
        shutil.copyfile(trial_dir / CHECKPOINT_DIR / LAST_CHECKPOINT, tmp)
        tmp.replace(last)

    def _finish_report(self, report: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        wall = time.time() - self.t_start
        kd_step = statistics.median(state.kd_step_seconds) if state.kd_step_seconds else None
        plain = kd_step * self.spec.train.iterations if kd_step else None
        leaderboard = [
            {
                **self.candidates[label].to_dict(),
                "rungs": state.results.get(label, {}),
                "stopped_at": state.eliminated.get(label),
                "chosen": label == state.winner,
            }
            for label in self.candidates
        ]
        leaderboard.sort(key=lambda row: (not row["chosen"], -_best_ap(row["rungs"])))
        report["search"] = {
            "chosen": state.winner,
            "distill": self.candidates[state.winner].distill,
            "leaderboard": leaderboard,
            "rungs": state.rungs,
            "selection": state.selection,
            "start_check": state.start_check,
            "warnings": state.warnings,
            "kd_expected": not any(w.startswith("KD is not expected") for w in state.warnings),
            "compute": {
                "budget": self.auto.budget,
                "planned_steps": self.planned_total,
                "planned_multiple": round(self.planned_total / self.spec.train.iterations, 3),
                "wall_seconds": round(wall, 2),
                "kd_step_seconds": round(kd_step, 5) if kd_step else None,
                "plain_run_seconds": round(plain, 2) if plain else None,
                "multiple": round(wall / plain, 3) if plain else None,
            },
        }
        report["spec"] = self.spec.report_dict()
        report["wall_seconds"] = round(wall, 2)  # the whole search (this attempt), not the winner's part
        return report


def _best_ap(rungs: dict[str, dict[str, float]]) -> float:
    return max((r["AP"] for r in rungs.values()), default=-1.0)


def run_search(spec: JobSpec, workdir: Path, ctx: JobContext) -> dict[str, Any]:
    """Search for the distiller and train the winner (module docstring); return its report."""
    workdir.mkdir(parents=True, exist_ok=True)
    search = _Search(spec, workdir, ctx)
    search.run_rungs()
    return search.run_winner()
