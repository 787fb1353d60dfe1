"""Automatic KD weights: each ``"auto"`` loss weight sized on the job's first batches.

The method's calibration rule (``docs/mar-method.md`` section 4): each KD term should start
between 0.1x and 1x the detection classification loss. A raw KD term scales with the teacher's
feature magnitudes (a trained from-scratch R50 FPN has an RMS of ~30 per element, an untrained
one ~1), so weights that suit one teacher can be off by 1000x with another. ``"auto"`` applies
the rule per job: at full KD weight (no warm-up) on the first ``CALIBRATION_BATCHES`` training
batches, with the fresh student, measure each raw KD term and the classification loss (means
over the batches) and set

    weight = TARGET_RATIO * L_cls / raw_term

Forward passes only, under ``no_grad``: no optimizer step, the distiller's buffers (BatchNorm
statistics), train/eval modes and ``kd_scale`` are put back, and so is every RNG (torch, CUDA,
Python, NumPy), so the run that follows is the run that the same weights given as numbers would
make. A raw term that is exactly 0 keeps the method's default weight (recorded as such); a
negative or non-finite one is an error naming the weight field and the term.

In a job (``resolve_kd_weights``, called by ``mar_core.run``): unset weights are ``"auto"``, or
the method's ``job_unset()`` entry (MAR's gamma: ``"default"``); a number is used as given;
``"default"`` takes the method's ``weight_defaults()``. The weights are
chosen once, on a fresh start: a checkpoint carries them (its ``extra["kd_weights"]``) and a
resumed run reads them back. With several ranks, rank 0 measures and broadcasts. ``mar bench
calibrate`` reports the same measurements for every method (``measure_kd_terms``).
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mar_core.engine.distributed import SINGLE, RankInfo
from mar_core.engine.rng import get_rng_state, set_rng_state
from mar_core.errors import MarError, SpecError
from mar_core.methods import MethodSpec
from mar_core.methods.base import AUTO, DEFAULT
from mar_core.progress import ProgressCallback, ignore_progress

__all__ = [
    "CALIBRATION_BATCHES",
    "CLASSIFICATION_LOSSES",
    "TARGET_RATIO",
    "KDTermSizes",
    "classification_loss_name",
    "measure_kd_terms",
    "resolve_kd_weights",
    "weight_for_target",
]

log = logging.getLogger(__name__)

# The ratio an "auto" weight gives its term at the start, against the classification loss. The
# method's band is 0.1x-1x (docs/mar-method.md section 4); 0.5 is its middle, the value the
# benchmark's peer weights were calibrated at (benchmarks/presets.py CALIBRATED_PEERS, so auto
# reproduces them on that group), and it leaves room both ways: the classification loss falls
# faster than some KD terms early on, and a term above 1x would outweigh the detection task.
TARGET_RATIO = 0.5
# Batches measured: the mean over a few smooths one batch's box count; forward passes only (a
# few seconds on a CPU at the benchmark's sizes).
CALIBRATION_BATCHES = 4
# The detection classification loss of each family, by the name the detector returns:
# RetinaNet / FCOS "classification", Faster R-CNN (and its Mask / Keypoint variants) the RoI
# head's "loss_classifier". The first of these the student returns is the reference.
CLASSIFICATION_LOSSES = ("classification", "loss_classifier")

Batch = tuple[list[torch.Tensor], list[dict[str, Any]]]


@dataclass(frozen=True)
class KDTermSizes:
    """Means over ``batches`` batches: the classification loss (named ``classification_loss``)
    and each KD term (``"fg"``, ``"pkd/pearson"``, ...) at the distiller's current weights."""

    classification_loss: str
    classification: float
    terms: dict[str, float]
    batches: int


def classification_loss_name(losses: Mapping[str, Any]) -> str:
    """The detection classification loss among a detector's ``losses`` (``CLASSIFICATION_LOSSES``)."""
    for name in CLASSIFICATION_LOSSES:
        if name in losses:
            return name
    raise ValueError(
        f"no detection classification loss ({' or '.join(CLASSIFICATION_LOSSES)}) among the "
        f"student's losses {sorted(k for k in losses if not k.startswith('kd/'))}"
    )


def _to(device: torch.device, images: list[torch.Tensor], targets: list[dict]) -> Batch:
    return (
        [img.to(device) for img in images],
        [{k: (v.to(device) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets],
    )


@torch.no_grad()
def measure_kd_terms(distiller: nn.Module, batches: Iterable[Batch]) -> KDTermSizes:
    """Forward ``distiller`` (a ``Distiller``) in train mode at full KD weight over ``batches``
    (``(images, targets)`` as the train loader yields them, moved to the student's device) and
    return the mean classification loss and mean KD terms. Leaves no trace: buffers, modes,
    ``kd_scale`` and every RNG are restored."""
    device = next(distiller.student.parameters()).device
    rng = get_rng_state()
    modes = [(m, m.training) for m in distiller.modules()]
    buffers = [(b, b.clone()) for b in distiller.buffers()]
    kd_scale = distiller.kd_scale
    rows: list[dict[str, float]] = []
    try:
        distiller.train()
        distiller.kd_scale = 1.0
        for images, targets in batches:
            losses = distiller(*_to(device, images, targets))
            rows.append({k: float(v) for k, v in losses.items()})
    finally:
        distiller.kd_scale = kd_scale
        for b, saved in buffers:
            b.copy_(saved)
        for m, mode in modes:
            m.training = mode
        set_rng_state(rng)
    if not rows:
        raise ValueError("measure_kd_terms: no batches")
    name = classification_loss_name(rows[0])
    terms = sorted(k for k in rows[0] if k.startswith("kd/"))
    return KDTermSizes(
        classification_loss=name,
        classification=statistics.fmean(r[name] for r in rows),
        terms={k[3:]: statistics.fmean(r[k] for r in rows) for k in terms},
        batches=len(rows),
    )


def weight_for_target(raw: float, classification: float, target: float = TARGET_RATIO) -> float | None:
    """The weight that puts a term of raw size ``raw`` at ``target`` x ``classification``; None
    when either is 0, negative or not finite."""
    if not (math.isfinite(raw) and math.isfinite(classification)) or raw <= 0 or classification <= 0:
        return None
    return target * classification / raw


def _auto_weights(
    cfg: MethodSpec, auto: list[str], sizes: KDTermSizes, target: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Weights of the ``auto`` fields from ``sizes`` measured with those fields at 1.0; the raw
    terms. A term that is exactly 0 at the start (e.g. MAR's background term when every cell of
    a coarse level lies near an object) gets no auto weight: the caller keeps the method's
    default for it. Raises ``SpecError`` naming the field and the term when a size is negative
    or not finite."""
    cls = sizes.classification
    if not math.isfinite(cls) or cls <= 0:
        raise SpecError(
            f"distill.{auto[0]}: 'auto' sizes the KD weights against the classification loss "
            f"({sizes.classification_loss}), which is {cls:.4g} on the first {sizes.batches} "
            "batches; give the weights as numbers",
            f"distill.{auto[0]}",
        )
    weights, raw_terms = {}, {}
    for term, value in sizes.terms.items():
        field = cfg.TERM_WEIGHTS.get(term)
        if field not in auto:
            continue
        raw = value / float(getattr(cfg, field))
        raw_terms[term] = raw
        if raw == 0.0:  # nothing to size yet (no box: an empty foreground); the default applies
            continue
        weight = weight_for_target(raw, cls, target)
        if weight is None:
            raise SpecError(
                f"distill.{field}: 'auto' cannot size the {term} term: it is {raw:.4g} at the start "
                f"(first {sizes.batches} batches, weight 1); give {field} a number",
                f"distill.{field}",
            )
        weights[field] = weight
    return weights, raw_terms


def _measure(
    probe_cfg: MethodSpec,
    build: Callable[[MethodSpec], nn.Module],
    batches: Callable[[int], Iterable[Batch]],
    device: torch.device,
) -> KDTermSizes:
    """Build a throw-away distiller of ``probe_cfg`` on ``device`` and measure it; every RNG is
    restored, so the job's own distiller, built next, draws its initial weights as if this had
    not run."""
    rng = get_rng_state()
    try:
        probe = build(probe_cfg).to(device)
        try:
            return measure_kd_terms(probe, batches(CALIBRATION_BATCHES))
        finally:
            probe.close()
    finally:
        set_rng_state(rng)


def _describe(record: dict[str, Any]) -> str:
    parts = []
    for field, weight in record["weights"].items():
        source = record["source"][field]
        parts.append(f"{field} {'-' if weight is None else f'{weight:.4g}'} ({source})")
    text = "KD weights: " + ", ".join(parts)
    cal = record.get("calibration")
    if cal:
        text += (
            f"; 'auto' puts each term at {cal['target']}x the {cal['classification_loss']} loss "
            f"({cal['classification']:.4g}) on the first {cal['batches']} batches, raw terms "
            + ", ".join(f"{t} {v:.4g}" for t, v in cal["raw"].items())
        )
    return text


def resolve_kd_weights(
    cfg: MethodSpec,
    two_stage: bool,
    build: Callable[[MethodSpec], nn.Module],
    batches: Callable[[int], Iterable[Batch]],
    device: torch.device,
    *,
    resumed: Mapping[str, Any] | None = None,
    ranks: RankInfo = SINGLE,
    progress: ProgressCallback = ignore_progress,
    target: float = TARGET_RATIO,
) -> tuple[MethodSpec, dict[str, Any]]:
    """A job's distill spec with every loss weight a number, and the record of how each was chosen.

    ``build(spec)``: a ``Distiller`` of the job's student and teacher with that spec (only built
    here when a weight is ``"auto"``: a probe measured with those weights at 1.0, then dropped);
    ``batches(n)``: the job's first ``n`` training batches (the global batch: rank 0 measures and
    broadcasts); ``resumed``: the ``extra`` dict of the checkpoint the job resumes from (None on
    a fresh start), whose ``kd_weights`` are taken as they are. The record, for ``report.json``
    and the checkpoint: ``{"weights": {field: number}, "source": {field: "auto" | "default" |
    "spec"}, "calibration": {target, batches, classification_loss, classification, raw: {term:
    size}} or None}``; an ``"auto"`` field whose term this configuration never computes (MAR's
    ``alpha`` with ``feature_loss`` off) stays unset, recorded as None.
    """
    if resumed is not None:
        return _from_checkpoint(cfg, two_stage, resumed, ranks, progress)
    job = cfg.with_job_weights(two_stage)
    source = {
        f: "auto" if getattr(job, f) == AUTO else "default" if getattr(job, f) == DEFAULT else "spec"
        for f in job.WEIGHT_DEFAULTS
    }
    job = job.with_weight_defaults(two_stage)
    auto = job.auto_weight_fields()
    calibration = None
    if auto:
        probe_cfg = job.model_copy(update=dict.fromkeys(auto, 1.0))
        outcome: tuple[Any, ...] = ()
        if ranks.is_main:
            try:
                outcome = ("ok", _measure(probe_cfg, build, batches, device))
            except MarError as exc:
                outcome = ("error", exc.message, exc.param)
                ranks.from_main(outcome)
                raise
            except Exception as exc:
                ranks.from_main(("error", f"sizing the 'auto' KD weights failed on rank 0: {exc}", None))
                raise
        outcome = ranks.from_main(outcome)
        if outcome[0] == "error":
            raise SpecError(outcome[1], outcome[2])
        sizes: KDTermSizes = outcome[1]
        weights, raw = _auto_weights(probe_cfg, auto, sizes, target)
        weights = {f: w * job.AUTO_SCALES.get(f, 1.0) for f, w in weights.items()}  # per-term targets
        for field in auto:
            if field not in weights and field in {probe_cfg.TERM_WEIGHTS.get(t) for t in raw}:
                weights[field] = job.weight_defaults()[field][1 if two_stage else 0]
                source[field] = "default (auto: its term was 0 at the start)"
        job = job.model_copy(update={f: weights.get(f) for f in auto})
        calibration = {
            "target": target,
            **({"scales": dict(job.AUTO_SCALES)} if job.AUTO_SCALES else {}),
            "batches": sizes.batches,
            "classification_loss": sizes.classification_loss,
            "classification": sizes.classification,
            "raw": raw,
        }
    record = {
        "weights": {f: getattr(job, f) for f in job.WEIGHT_DEFAULTS},
        "source": source,
        "calibration": calibration,
    }
    _announce(record, ranks, progress)
    return job, record


def _from_checkpoint(
    cfg: MethodSpec,
    two_stage: bool,
    extra: Mapping[str, Any],
    ranks: RankInfo,
    progress: ProgressCallback,
) -> tuple[MethodSpec, dict[str, Any]]:
    """The weights a resumed run was started with. A checkpoint written before ``"auto"``
    existed has none: its run took the defaults for unset weights, so the resumed run does too."""
    record = extra.get("kd_weights")
    if record is None:
        job = cfg.with_weight_defaults(two_stage)
        if auto := job.auto_weight_fields():
            raise SpecError(
                f"distill.{auto[0]}: the checkpoint does not say which 'auto' weights its run used",
                f"distill.{auto[0]}",
            )
        record = {
            "weights": {f: getattr(job, f) for f in job.WEIGHT_DEFAULTS},
            "source": {
                f: "spec" if getattr(cfg, f) not in (None, DEFAULT) else "default"
                for f in job.WEIGHT_DEFAULTS
            },
            "calibration": None,
        }
    else:
        record = dict(record)
        unknown = set(record["weights"]) - set(cfg.WEIGHT_DEFAULTS)
        if unknown:
            raise SpecError(
                f"the checkpoint's KD weights {sorted(unknown)} are not fields of {cfg.method}", "distill"
            )
        job = (
            cfg.with_job_weights(two_stage)
            .model_copy(update=record["weights"])
            .with_weight_defaults(two_stage)
        )
    if ranks.is_main:
        log.info("resumed run: KD weights from the checkpoint")
    _announce(record, ranks, progress)
    return job, record


def _announce(record: dict[str, Any], ranks: RankInfo, progress: ProgressCallback) -> None:
    if not ranks.is_main:
        return
    message = _describe(record)
    log.info("%s", message)
    progress({"type": "log", "level": "info", "message": message, "kd_weights": record})
