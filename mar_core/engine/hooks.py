"""Trainer hooks: LR schedule, metrics writer + progress, checkpointing, evaluation, stop."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mar_core.checkpoint_files import LAST_CHECKPOINT
from mar_core.engine.rng import get_rng_state
from mar_core.engine.trainer import HookBase, Trainer
from mar_core.errors import CheckpointError, JobCancelled, SpecError
from mar_core.models.checkpoint_io import atomic_torch_save, safe_load
from mar_core.progress import STEP_SECONDS, ProgressCallback, ignore_progress

log = logging.getLogger(__name__)


class LRScheduleHook(HookBase):
    """Sets every group's LR to ``initial_lr * factor(iter)`` before each step (stateless: exact on resume)."""

    def __init__(self, factor: Callable[[int], float]):
        self.factor = factor

    def before_train(self, trainer: Trainer) -> None:
        for g in trainer.optimizer.param_groups:
            g.setdefault("initial_lr", g["lr"])

    def before_step(self, trainer: Trainer) -> None:
        f = self.factor(trainer.iter)
        for g in trainer.optimizer.param_groups:
            g["lr"] = g["initial_lr"] * f


class MetricsHook(HookBase):
    """Appends losses, LR and step time to ``metrics.jsonl`` every ``every`` steps (and the last),
    and reports them (and the step count, every step) to ``progress``."""

    def __init__(self, path: Path, every: int, progress: ProgressCallback = ignore_progress):
        self.path, self.every, self.progress = path, every, progress

    def before_train(self, trainer: Trainer) -> None:
        self._truncate_after(trainer.iter)

    def _truncate_after(self, step: int) -> None:
        """Drop rows written after the checkpoint we resume from: one value per step."""
        if not self.path.exists():
            return
        rows = [
            line
            for line in self.path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] <= step
        ]
        self.path.write_text("".join(r + "\n" for r in rows))

    def write(self, step: int, values: dict[str, float]) -> None:
        row = {"step": step, "time": time.time(), **values}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        self.progress({"type": "metrics", "step": step, "values": values})

    def after_step(self, trainer: Trainer) -> None:
        self.progress({"type": "progress", "step": trainer.iter, "total": trainer.max_iter})
        if trainer.iter % self.every == 0 or trainer.iter == trainer.max_iter:
            lr = trainer.optimizer.param_groups[0]["lr"]
            self.write(
                trainer.iter, trainer.last_losses | {"lr": lr, STEP_SECONDS: trainer.last_step_seconds}
            )


class CheckpointHook(HookBase):
    """Writes ``last.pt`` (everything for an exact resume) every ``every`` steps, at the end,
    and when the run is cancelled; files are replaced atomically."""

    def __init__(
        self,
        directory: Path,
        every: int,
        extra: dict | None = None,
        progress: ProgressCallback = ignore_progress,
    ):
        self.directory, self.every, self.extra, self.progress = directory, every, extra or {}, progress
        self._saved_at = -1

    def save(self, trainer: Trainer) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / LAST_CHECKPOINT
        state = trainer.state_dict() | {"rng": get_rng_state(), "extra": self.extra}
        atomic_torch_save(state, path)
        self._saved_at = trainer.iter
        self.progress({"type": "checkpoint", "step": trainer.iter, "path": str(path)})
        log.debug("checkpoint at step %d: %s", trainer.iter, path)
        return path

    def after_step(self, trainer: Trainer) -> None:
        if trainer.iter % self.every == 0:
            self.save(trainer)

    def after_train(self, trainer: Trainer, error: BaseException | None) -> None:
        graceful = error is None or isinstance(error, (JobCancelled, KeyboardInterrupt))
        if graceful and trainer.iter != self._saved_at:
            self.save(trainer)


class EvalHook(HookBase):
    """Evaluates every ``every`` steps (0: only at the end); keeps the best AP and writes the
    best model weights through ``save_best``; ``mid_run(step)`` follows each evaluation before
    the last (the caller writes that step's outputs)."""

    name = "eval"

    def __init__(
        self,
        evaluate: Callable[[], dict[str, float]],
        every: int,
        metrics: MetricsHook,
        save_best: Callable[[], None] | None = None,
        progress: ProgressCallback = ignore_progress,
        mid_run: Callable[[int], None] | None = None,
    ):
        self.evaluate, self.every, self.metrics = evaluate, every, metrics
        self.save_best, self.progress, self.mid_run = save_best, progress, mid_run
        self.best_ap = -1.0
        self.best_step = -1
        self.last_results: dict[str, float] = {}

    def _run(self, trainer: Trainer) -> None:
        self.progress({"type": "phase", "phase": "eval"})
        results = self.evaluate()
        self.last_results = results
        self.metrics.write(trainer.iter, {f"eval/{k}": v for k, v in results.items()})
        log.info("step %d: AP %.4f AP50 %.4f", trainer.iter, results.get("AP", 0.0), results.get("AP50", 0.0))
        if results.get("AP", 0.0) > self.best_ap:
            self.best_ap, self.best_step = results.get("AP", 0.0), trainer.iter
            if self.save_best:
                self.save_best()

    def after_step(self, trainer: Trainer) -> None:
        if self.every and trainer.iter % self.every == 0 and trainer.iter < trainer.max_iter:
            self._run(trainer)
            if self.mid_run:
                self.mid_run(trainer.iter)
            self.progress({"type": "phase", "phase": "train"})

    def after_train(self, trainer: Trainer, error: BaseException | None) -> None:
        if error is None:
            self._run(trainer)

    def state_dict(self) -> dict:
        return {"best_ap": self.best_ap, "best_step": self.best_step}

    def load_state_dict(self, state: dict) -> None:
        self.best_ap, self.best_step = float(state["best_ap"]), int(state["best_step"])


class StopHook(HookBase):
    """Raises ``JobCancelled`` after the step in which ``should_stop()`` turned true
    (the checkpoint hook then saves, so a cancelled run can be resumed)."""

    def __init__(self, should_stop: Callable[[], bool]):
        self.should_stop = should_stop

    def after_step(self, trainer: Trainer) -> None:
        if trainer.iter < trainer.max_iter and self.should_stop():
            raise JobCancelled(f"stopped on request after step {trainer.iter}")


def load_training_checkpoint(path: Path) -> dict:
    """Read ``last.pt`` with ``weights_only=True`` (our own files are held to the same rule)."""
    state = safe_load(path)
    if not isinstance(state, dict) or "iteration" not in state:
        raise CheckpointError(f"{path} is not a training checkpoint")
    return state


def device_of(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SpecError(
            "resources.device is 'cuda' but no CUDA device is available", param="resources.device"
        )
    return torch.device(name)
