"""A small trainer that only loops; everything else is a hook (detectron2 style).

``model(images, targets)`` returns ``dict[str, Tensor]`` of named losses in train mode: the
trainer alone sums them, checks every term is finite, steps, and keeps the last values for
the hooks. Loss names are reported as ``loss/<name>`` when ``name`` holds a ``/``
(``kd/fg``), else ``loss/det/<name>``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mar_core.data.transforms import random_hflip
from mar_core.engine.distributed import RankInfo
from mar_core.engine.memory_check import is_out_of_memory, out_of_memory_error
from mar_core.engine.precision import autocast_in
from mar_core.engine.rng import set_rng_state
from mar_core.errors import NonFiniteLossError

log = logging.getLogger(__name__)


def metric_name(loss_key: str) -> str:
    return f"loss/{loss_key}" if "/" in loss_key else f"loss/det/{loss_key}"


class HookBase:
    """Override any of these; ``trainer.iter`` counts completed steps."""

    name: str = ""

    def before_train(self, trainer: Trainer) -> None: ...
    def before_step(self, trainer: Trainer) -> None: ...
    def after_step(self, trainer: Trainer) -> None: ...
    def after_train(self, trainer: Trainer, error: BaseException | None) -> None: ...
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


class Trainer:
    """Loops from ``start_iter`` to ``max_iter`` over batches of ``data_factory(start_iter)``.

    Args:
        model: returns named losses in train mode (a detector, or a distiller), or its
            ``DistributedDataParallel`` wrapper (called each step; the state is the inner module's).
        data_factory: ``f(start_iter) -> iterable of (images, targets)`` for the remaining steps.
        grad_clip: max global grad norm, or None.
        hflip: probability of a horizontal flip per image (torch global RNG: checkpointed).
        ranks: this process's place among several (batches are then local shares of the global
            batch, and the losses reported are means over ranks); None: one process.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        data_factory: Callable[[int], Iterable],
        max_iter: int,
        device: torch.device,
        hooks: Sequence[HookBase] = (),
        autocast: torch.dtype | None = None,
        grad_clip: float | None = None,
        hflip: float = 0.0,
        ranks: RankInfo | None = None,
    ):
        self.model, self.optimizer, self.data_factory = model, optimizer, data_factory
        self.module = model.module if isinstance(model, DistributedDataParallel) else model
        self.ranks = ranks if ranks is not None and ranks.distributed else None
        self.max_iter, self.device = max_iter, device
        self.hooks = list(hooks)
        self.autocast = autocast  # the step's autocast dtype (None: float32)
        # float16 needs loss scaling; bfloat16 keeps float32's exponent range and does not
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=autocast is torch.float16 and device.type == "cuda"
        )
        self.grad_clip, self.hflip = grad_clip, hflip
        self.iter = 0
        self.last_losses: dict[str, float] = {}
        self.last_step_seconds = 0.0
        self.rng_state_to_restore: dict | None = None

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "iteration": self.iter,
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "hooks": {h.name: h.state_dict() for h in self.hooks if h.name},
        }

    def load_state_dict(self, state: dict) -> None:
        self.iter = int(state["iteration"])
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        hook_states = state.get("hooks", {})
        for h in self.hooks:
            if h.name in hook_states:
                h.load_state_dict(hook_states[h.name])

    # -- loop ----------------------------------------------------------------------------------
    def train(self) -> None:
        start = self.iter
        log.info("training from step %d to %d", start, self.max_iter)
        error: BaseException | None = None
        batches: Iterator = iter(self.data_factory(start))
        if self.rng_state_to_restore is not None:
            # Restored after the loader's iterator exists: creating it draws from the RNG.
            set_rng_state(self.rng_state_to_restore)
            self.rng_state_to_restore = None
        try:
            for h in self.hooks:
                h.before_train(self)
            while self.iter < self.max_iter:
                images, targets = next(batches)
                for h in self.hooks:
                    h.before_step(self)
                self.run_step(images, targets)
                self.iter += 1
                for h in self.hooks:
                    h.after_step(self)
        except BaseException as e:  # hooks see the error (e.g. to checkpoint on cancel)
            error = e
            raise
        finally:
            for h in self.hooks:
                h.after_train(self, error)

    def run_step(self, images: list[torch.Tensor], targets: list[dict]) -> None:
        """One optimizer step; an out-of-memory error becomes ``InsufficientMemoryError``."""
        try:
            self._step(images, targets)
        except (torch.OutOfMemoryError, RuntimeError) as e:
            if not is_out_of_memory(e):
                raise
            raise out_of_memory_error(len(images), f"training step {self.iter}") from None

    def _step(self, images: list[torch.Tensor], targets: list[dict]) -> None:
        t0 = time.perf_counter()
        self.model.train()
        if self.hflip > 0:
            images, targets = (
                self.ranks.random_hflip(images, targets, self.hflip)
                if self.ranks
                else random_hflip(images, targets, self.hflip)
            )
        images = [img.to(self.device, non_blocking=True) for img in images]
        targets = [
            {k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets
        ]
        with autocast_in(self.device.type, self.autocast):
            losses = self.model(images, targets)
        values = {k: float(v.detach()) for k, v in losses.items()}
        total = sum(losses.values())
        total_value = float(total.detach())
        if self.ranks:  # the global batch's values; a NaN on any rank reaches all, and all raise
            *means, total_value = self.ranks.mean_over_ranks([*values.values(), total_value])
            values = dict(zip(values, means))
        for k, v in values.items():
            if not math.isfinite(v):
                raise NonFiniteLossError(metric_name(k), self.iter, values)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.last_losses = {metric_name(k): v for k, v in values.items()} | {"loss/total": total_value}
        self.last_step_seconds = time.perf_counter() - t0
