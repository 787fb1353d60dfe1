"""``mar bench calibrate``: how large each KD term starts, against the classification loss.

The method's calibration rule (``docs/mar-method.md`` section 4): each KD term should start
between 0.1x and 1x the detection classification loss. The raw terms scale with the teacher's
feature magnitudes (a trained from-scratch R50 FPN has an RMS of ~30, an untrained one ~1), so
weights calibrated on one teacher can be off by 1000x on another. For every method this builds
a fresh student (seed 0), distils from the group's published teacher at full KD weight (no
warm-up) on the group's first batches, and reports each weighted term, its ratio to the
classification loss and the weight that would put it at ``target`` x. Forward passes only: the
measurement is the library's (``mar_core.distill.auto_weights.measure_kd_terms``), the one a
job's ``"auto"`` weights are sized with.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from benchmarks.plan import dataset_section
from benchmarks.presets import Preset
from mar_core.data import build_train_loader, load_dataset
from mar_core.distill.auto_weights import TARGET_RATIO, measure_kd_terms, weight_for_target
from mar_core.distill.distiller import Distiller
from mar_core.methods import METHODS, parse_distill
from mar_core.methods.base import DEFAULT
from mar_core.models.loading import load_detector
from mar_core.models.registry import build_detector
from mar_core.names import is_two_stage
from mar_core.spec import DatasetSpec, ModelSpec

log = logging.getLogger(__name__)


def calibrate(
    preset: Preset,
    group_name: str,
    teacher_dir: Path,
    dataset_dir: Path,
    *,
    methods: tuple[str, ...] = tuple(METHODS),
    distill: dict[str, dict[str, Any]] | None = None,
    batches: int = 4,
    target: float = TARGET_RATIO,
) -> dict[str, Any]:
    """Per method: mean over ``batches`` of each weighted KD term, its ratio to the classification
    loss, and the weight for a ratio of ``target``. ``distill[method]``: the method's distill
    section (default: the method's defaults; the CLI passes the benchmark's ``STUDENTS``)."""
    group = preset.group(group_name)
    dataset = DatasetSpec(**{**dataset_section(preset.datasets[group.data]), "path": str(dataset_dir)})
    train = load_dataset(dataset, dataset.train_split)
    s_spec = ModelSpec(**group.student_model)
    teacher = load_detector(teacher_dir)
    batch = int(group.train["batch_size"])
    loader = build_train_loader(train, batch, seed=0, start_iter=0, end_iter=batches)
    data_batches = list(loader)
    out: dict[str, Any] = {
        "group": group.name,
        "batches": batches,
        "batch_size": batch,
        "target": target,
        "classification_loss": None,  # the name the student returns (set below)
        "methods": {},
    }
    for method in methods:
        section = {"method": method, **((distill or {}).get(method, {}))}
        cfg = parse_distill(section)
        # an "auto" weight is measured at its default: the weight for the target follows from any one
        cfg = cfg.model_copy(update=dict.fromkeys(cfg.auto_weight_fields(), DEFAULT))
        cfg = cfg.with_weight_defaults(is_two_stage(s_spec.arch))
        torch.manual_seed(0)
        student = build_detector(s_spec, train.num_classes)
        distiller = Distiller(student, teacher.model, cfg, s_spec.arch, teacher.spec.arch)
        try:
            sizes = measure_kd_terms(distiller, data_batches)
        finally:
            distiller.close()
        out["classification_loss"] = sizes.classification_loss
        cls = sizes.classification
        terms = {}
        for name, value in sizes.terms.items():
            field = cfg.TERM_WEIGHTS.get(name)  # the spec field that weights the term
            weight = getattr(cfg, field) if field else None
            ratio = value / cls if cls else float("nan")
            terms[name] = {
                "value": value,
                "ratio": ratio,
                "weight_field": field,
                "weight": weight,
                "weight_for_target": weight_for_target(value / weight, cls, target) if weight else None,
            }
        out["methods"][method] = {"classification": cls, "terms": terms}
        log.info(
            "calibrate %s: %s",
            method,
            ", ".join(f"{n} {t['value']:.3g} ({t['ratio']:.2g}x)" for n, t in terms.items()),
        )
    return out


def format_calibration(result: dict[str, Any]) -> list[str]:
    """Markdown table of a ``calibrate`` result."""
    lines = [
        f"KD terms at full weight on the first {result['batches']} batches of `{result['group']}` (batch "
        f"{result['batch_size']}), fresh student (seed 0), published teacher; ratio to the classification "
        f"loss (`{result['classification_loss']}`) and the weight that would make it {result['target']}x.",
        "",
        f"| method | term | weighted value | x classification | weight | weight for {result['target']}x |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for method, m in result["methods"].items():
        for name, t in m["terms"].items():
            suggested = t["weight_for_target"]
            lines.append(
                f"| {method} | {name} | {t['value']:.4g} | {t['ratio']:.3g} | "
                f"{t['weight_field']} = {t['weight']:.3g} | {'-' if suggested is None else f'{suggested:.3g}'} |"
            )
    return lines
