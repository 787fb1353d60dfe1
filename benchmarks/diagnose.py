"""``mar bench diagnose``: why MAR's mask-guided feature loss adds nothing measurable (issue 19).

Cheap measurements on a group's first batches, with its published teacher and a fresh student
(seed 0), every KD term at full weight (no warm-up), the group's method weights:

1. per FPN level, the foreground (and background) feature loss split into mean-offset, scale and
   correlation parts (``benchmarks.fg_parts``), the level's raw ``L_fg`` and the RMS of the maps;
2. per method, the norm of each weighted KD term's gradient on the parameters the KD terms share
   with the detector, the last FPN convs (``backbone.fpn.layer_blocks`` and ``extra_blocks``),
   over that of the summed detection losses;
3. the 1x1 adapter (student -> teacher channels, per level) default-initialised against fitted by
   least squares to the teacher's maps on the measured batches: the raw L_fg at init and after
   ``steps`` training steps of mask-only MAR (AdamW at the group's learning rate, constant).

Writes ``diagnose-<preset>-<group>.json``; BENCHMARKS.md's section is ``diagnose_section``.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from benchmarks.fg_parts import PARTS, loss_parts
from benchmarks.markdown import table
from benchmarks.plan import dataset_section
from benchmarks.presets import PEERS, RAW_MAR, Preset, student_distill
from mar_core.data import build_train_loader, load_dataset
from mar_core.distill.auto_weights import TARGET_RATIO, classification_loss_name
from mar_core.distill.distiller import Distiller
from mar_core.methods import parse_distill
from mar_core.models.loading import load_detector
from mar_core.models.registry import build_detector
from mar_core.names import is_two_stage
from mar_core.spec import DatasetSpec, ModelSpec

log = logging.getLogger(__name__)

__all__ = ["diagnose", "diagnose_section", "format_diagnosis", "lstsq_adapter"]

Batch = tuple[list[Tensor], list[dict[str, Any]]]


class _KDInputs:
    """Records what the distiller hands its KD loss module (adapted student maps, teacher maps,
    boxes, strides) with a forward pre-hook, so the measurement reads the distiller's own inputs."""

    def __init__(self, distiller: Distiller) -> None:
        self.args: tuple = ()
        self._handle = distiller.kd_loss.register_forward_pre_hook(self._record)

    def _record(self, _module: nn.Module, args: tuple) -> None:
        self.args = args

    def close(self) -> None:
        self._handle.remove()


def _shared_params(student: nn.Module) -> list[nn.Parameter]:
    """The last FPN convs: the output 3x3 convs and the extra (P6 / P7) blocks."""
    fpn = student.backbone.fpn
    return [p for m in (fpn.layer_blocks, fpn.extra_blocks) for p in m.parameters()]


def _grad_norm(value: Tensor, params: list[nn.Parameter]) -> float:
    grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
    return math.sqrt(sum(float(g.square().sum()) for g in grads if g is not None))


def _distiller(section: dict[str, Any], s_spec: ModelSpec, teacher, num_classes: int) -> Distiller:
    cfg = parse_distill(section).with_weight_defaults(is_two_stage(s_spec.arch))
    torch.manual_seed(0)
    student = build_detector(s_spec, num_classes)
    return Distiller(student, teacher.model, cfg, s_spec.arch, teacher.spec.arch).train()


def _levels(distiller: Distiller, batches: list[Batch]) -> list[dict[str, Any]]:
    """Per level, means over ``batches``: raw L_fg / L_bg, their parts, the maps' RMS."""
    record = _KDInputs(distiller)
    rows: list[dict[str, Any]] = []
    try:
        for images, targets in batches:
            with torch.no_grad():
                distiller(images, targets)
            s_feats, t_feats, boxes, strides = record.args[:4]
            masks = distiller.kd_loss.masks(s_feats, boxes, strides)
            for lvl, (s, t, m) in enumerate(zip(s_feats, t_feats, masks)):
                fg, bg = loss_parts(s, t, m), loss_parts(s, t, (m == 0).float())
                row = {
                    "shape": list(s.shape[-2:]),
                    "fg": sum(fg.values()),
                    "fg_parts": fg,
                    "bg": sum(bg.values()),
                    "bg_parts": bg,
                    "mask_mass": float(m.sum()),
                    "teacher_rms": float(t.square().mean().sqrt()),
                    "student_rms": float(s.square().mean().sqrt()),
                }
                if len(rows) <= lvl:
                    rows.append({k: [] for k in row})
                for k, v in row.items():
                    rows[lvl][k].append(v)
    finally:
        record.close()
    return [{k: _mean(v) for k, v in r.items()} for r in rows]


def _mean(values: list[Any]) -> Any:
    if isinstance(values[0], dict):
        return {k: _mean([v[k] for v in values]) for k in values[0]}
    if isinstance(values[0], list):
        return values[0]
    return sum(values) / len(values)


def _grad_ratios(distiller: Distiller, batches: list[Batch]) -> dict[str, Any]:
    """Per KD term: its weighted value and ``||grad term|| / ||grad det||`` on the shared params."""
    params = _shared_params(distiller.student)
    rows: list[dict[str, float]] = []
    cls_name = ""
    for images, targets in batches:
        losses = distiller(images, targets)
        cls_name = classification_loss_name(losses)
        det = sum(v for k, v in losses.items() if not k.startswith("kd/"))
        det_norm = _grad_norm(det, params)
        row = {"det_grad_norm": det_norm, "classification": float(losses[cls_name])}
        for k, v in losses.items():
            if k.startswith("kd/"):
                row[f"{k[3:]}/value"] = float(v)
                row[f"{k[3:]}/grad_ratio"] = _grad_norm(v, params) / det_norm
        rows.append(row)
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    terms = sorted({k.rsplit("/", 1)[0] for k in mean if k.endswith("/grad_ratio")})
    return {
        "classification_loss": cls_name,
        "classification": mean["classification"],
        "det_grad_norm": mean["det_grad_norm"],
        "terms": {t: {"value": mean[f"{t}/value"], "grad_ratio": mean[f"{t}/grad_ratio"]} for t in terms},
    }


def _at_target(ratios: dict[str, Any]) -> dict[str, Any]:
    """``_grad_ratios`` measured at weight 1, rescaled to the weight that puts each term at
    ``TARGET_RATIO`` x the classification loss (value and gradient are linear in the weight)."""
    terms = {}
    for name, t in ratios["terms"].items():
        weight = TARGET_RATIO * ratios["classification"] / t["value"] if t["value"] else 0.0
        terms[name] = {"weight": weight, "value": weight * t["value"], "grad_ratio": weight * t["grad_ratio"]}
    return {**ratios, "terms": terms}


def lstsq_adapter(adapter: nn.Conv2d, student: list[Tensor], teacher: list[Tensor]) -> None:
    """Set a 1x1 conv ``C_s -> C_t`` to the least-squares fit ``teacher ~ W student + b`` over
    every pixel of ``student`` / ``teacher`` (lists of ``B x C_s x H x W`` / ``B x C_t x H x W``),
    in float64 (minimum-norm solution when there are fewer pixels than ``C_s + 1``)."""
    x = torch.cat([f.detach().double().permute(0, 2, 3, 1).reshape(-1, f.shape[1]) for f in student])
    y = torch.cat([f.detach().double().permute(0, 2, 3, 1).reshape(-1, f.shape[1]) for f in teacher])
    x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    sol = torch.linalg.lstsq(x, y, driver="gelsd").solution  # (C_s + 1) x C_t
    with torch.no_grad():
        adapter.weight.copy_(sol[:-1].T[..., None, None].to(adapter.weight.dtype))
        adapter.bias.copy_(sol[-1].to(adapter.bias.dtype))


def _raw_fg(distiller: Distiller, batches: list[Batch]) -> dict[str, float]:
    """Mean over ``batches`` of the raw (unweighted) L_fg and L_bg, and the classification loss."""
    out = {"fg": 0.0, "bg": 0.0, "classification": 0.0}
    alpha, beta = distiller.kd_loss.spec.alpha, distiller.kd_loss.spec.beta
    with torch.no_grad():
        for images, targets in batches:
            losses = distiller(images, targets)
            out["fg"] += float(losses["kd/fg"]) / alpha / len(batches)
            out["bg"] += float(losses["kd/bg"]) / beta / len(batches)
            out["classification"] += float(losses[classification_loss_name(losses)]) / len(batches)
    return out


def _adapter_arm(
    distiller: Distiller, fit: list[Batch], train: list[Batch], lr: float, lstsq: bool
) -> dict[str, Any]:
    """Raw L_fg on the ``fit`` batches at init and after one step per ``train`` batch."""
    if lstsq:
        inputs: list[list[Tensor]] = [[] for _ in distiller.adapters]
        record = _KDInputs(distiller)
        handles = [
            a.register_forward_pre_hook(lambda _m, args, lvl=lvl: inputs[lvl].append(args[0]))
            for lvl, a in enumerate(distiller.adapters)
        ]
        t_maps: list[list[Tensor]] = [[] for _ in distiller.adapters]
        try:
            for images, targets in fit:
                with torch.no_grad():
                    distiller(images, targets)
                for lvl, t in enumerate(record.args[1]):
                    t_maps[lvl].append(t)
        finally:
            record.close()
            for h in handles:
                h.remove()
        for adapter, s, t in zip(distiller.adapters, inputs, t_maps):
            lstsq_adapter(adapter, s, t)
    start, start_levels = _raw_fg(distiller, fit), _levels(distiller, fit)
    optim = torch.optim.AdamW([p for p in distiller.parameters() if p.requires_grad], lr=lr)
    for images, targets in train:
        losses = distiller(images, targets)
        optim.zero_grad()
        sum(losses.values()).backward()
        optim.step()
    return {
        "init": start,
        "after": _raw_fg(distiller, fit),
        "init_parts": _level_mean_parts(start_levels),
        "after_parts": _level_mean_parts(_levels(distiller, fit)),
        "steps": len(train),
    }


def _level_mean_parts(levels: list[dict[str, Any]]) -> dict[str, float]:
    """The parts of L_fg averaged over levels (as L_fg is): they add up to L_fg."""
    return {p: sum(r["fg_parts"][p] for r in levels) / len(levels) for p in PARTS}


def diagnose(
    preset: Preset,
    group_name: str,
    teacher_dir: Path,
    dataset_dir: Path,
    *,
    methods: tuple[str, ...] = (RAW_MAR, *PEERS),
    batches: int = 4,
    steps: int = 60,
) -> dict[str, Any]:
    """The three measurements of the module docstring on the group's first ``batches`` batches
    (the adapter arms train on the next ``steps``)."""
    group = preset.group(group_name)
    dataset = DatasetSpec(**{**dataset_section(preset.datasets[group.data]), "path": str(dataset_dir)})
    train = load_dataset(dataset, dataset.train_split)
    s_spec = ModelSpec(**group.student_model)
    two_stage = is_two_stage(s_spec.arch)
    teacher = load_detector(teacher_dir)
    loader = build_train_loader(
        train, int(group.train["batch_size"]), seed=0, start_iter=0, end_iter=batches + steps
    )
    data = list(loader)
    fit, rest = data[:batches], data[batches:]
    out: dict[str, Any] = {
        "group": group.name,
        "batches": batches,
        "batch_size": int(group.train["batch_size"]),
        "steps": steps,
        "lr": float(group.train["lr"]),
        "shared_params": "backbone.fpn.layer_blocks + backbone.fpn.extra_blocks",
    }
    mar_section = student_distill(RAW_MAR, two_stage) or {}  # what was diagnosed: the raw maps
    d = _distiller(mar_section, s_spec, teacher, train.num_classes)
    try:
        out["weights"] = {k: getattr(d.cfg, k) for k in d.cfg.WEIGHT_DEFAULTS}
        out["levels"] = _levels(d, fit)
    finally:
        d.close()
    out["grad_ratios"] = {}
    for method in methods:
        section = student_distill(method, two_stage) or {"method": method}
        d = _distiller(section, s_spec, teacher, train.num_classes)
        try:
            out["grad_ratios"][method] = _grad_ratios(d, fit)
        finally:
            d.close()
        log.info("diagnose grad ratios %s: %s", method, out["grad_ratios"][method]["terms"])
    # the mask-guided terms raw and on standardised maps, each weighted to TARGET_RATIO x the
    # classification loss (the calibration rule): their gradient at an equal loss share
    out["grad_ratios_at_target"] = {}
    for norm in ("none", "channel"):
        section = {"method": "mar", "relation_loss": False, "feature_norm": norm, "alpha": 1.0, "beta": 1.0}
        d = _distiller(section, s_spec, teacher, train.num_classes)
        try:
            out["grad_ratios_at_target"][f"mar mask-only, feature_norm {norm}"] = _at_target(
                _grad_ratios(d, fit)
            )
        finally:
            d.close()
    mask_only = {**mar_section, "relation_loss": False, "adapter": "always"}
    out["adapter"] = {}
    for arm, lstsq in (("default", False), ("lstsq", True)):
        d = _distiller(mask_only, s_spec, teacher, train.num_classes)
        try:
            out["adapter"][arm] = _adapter_arm(d, fit, rest, out["lr"], lstsq)
        finally:
            d.close()
        log.info("diagnose adapter %s: %s", arm, out["adapter"][arm])
    return out


def format_diagnosis(result: dict[str, Any]) -> list[str]:
    """Markdown tables of a ``diagnose`` result."""
    levels = result["levels"]
    total_fg = sum(r["fg"] for r in levels) or float("nan")
    w = result["weights"]
    rows = [
        [
            f"P{i + 3} ({'x'.join(map(str, r['shape']))})",
            f"{r['fg']:.4g}",
            f"{r['fg'] / total_fg:.0%}",
            *(f"{r['fg_parts'][p] / r['fg']:.1%}" if r["fg"] else "-" for p in PARTS),
            f"{r['bg']:.4g}",
            *(f"{r['bg_parts'][p] / r['bg']:.1%}" if r["bg"] else "-" for p in PARTS),
            f"{r['teacher_rms']:.3g}",
            f"{r['student_rms']:.3g}",
        ]
        for i, r in enumerate(levels)
    ]
    lines = [
        f"Group `{result['group']}`, first {result['batches']} batches of {result['batch_size']}, fresh student "
        f"(seed 0), published teacher, every term at full weight. MAR's weights: "
        + ", ".join(f"{k} {v:.3g}" for k, v in w.items())
        + ".",
        "",
        "**1. Raw feature loss per FPN level, split into parts** (the parts add up to the level's "
        "term; `benchmarks/fg_parts.py`): offset = (mu_T - mu_S)^2, scale = (sigma_T - sigma_S)^2, "
        "correlation = 2 sigma_T sigma_S (1 - r), per image and channel under the mask. Share = the "
        "level's part of the level average L_fg. Student maps through the default 1x1 adapter.",
        "",
        *table(
            [
                "level",
                "L_fg",
                "share",
                *(f"fg {p}" for p in PARTS),
                "L_bg",
                *(f"bg {p}" for p in PARTS),
                "teacher RMS",
                "student RMS",
            ],
            rows,
        ),
        "",
        f"**2. Gradient on the shared parameters** ({result['shared_params']}): the norm of each weighted "
        "KD term's gradient over that of the summed detection losses (method weights as in the quality "
        "groups), and the weighted term over the classification loss.",
        "",
    ]
    grows = []
    for method, g in result["grad_ratios"].items():
        for term, t in g["terms"].items():
            grows.append(
                [
                    method,
                    term,
                    f"{t['value']:.4g}",
                    f"{t['value'] / g['classification']:.3g}",
                    f"{t['grad_ratio']:.3g}",
                ]
            )
    lines += table(
        ["method", "term", "weighted value", "x classification", "grad norm / det grad norm"], grows
    )

    at_target = result.get("grad_ratios_at_target", {})
    if at_target:
        trows = [
            [
                variant,
                term,
                f"{t['weight']:.3g}",
                f"{t['value'] / g['classification']:.3g}",
                f"{t['grad_ratio']:.3g}",
            ]
            for variant, g in at_target.items()
            for term, t in g["terms"].items()
        ]
        lines += [
            "",
            "The mask-guided terms on the raw maps (`feature_norm: none`, MAR's default) and on maps "
            "standardised per image and channel (`feature_norm: channel`), each weighted to put the term at "
            f"{TARGET_RATIO}x the classification loss: the gradient each sends to the shared parameters at an "
            "equal loss share.",
            "",
            *table(["variant", "term", "weight", "x classification", "grad norm / det grad norm"], trows),
        ]
    a = result["adapter"]
    arows = [
        [
            arm,
            f"{r['init']['fg']:.4g}",
            f"{r['after']['fg']:.4g}",
            f"{r['init']['bg']:.4g}",
            f"{r['after']['bg']:.4g}",
            f"{r['after']['classification']:.3g}",
            *(f"{r['init_parts'][p]:.4g} -> {r['after_parts'][p]:.4g}" for p in PARTS),
        ]
        for arm, r in a.items()
    ]
    lines += [
        "",
        f"**3. Adapter initialisation**: mask-only MAR with a 1x1 adapter per level, default-initialised or "
        f"fitted by least squares to the teacher's maps on the measured batches; raw L_fg / L_bg on those "
        f"batches at init and after {a['default']['steps']} steps (AdamW lr {result['lr']}, no warm-up), and "
        "L_fg's parts (level averages) at init -> after.",
        "",
        *table(
            [
                "adapter",
                "L_fg init",
                "L_fg after",
                "L_bg init",
                "L_bg after",
                "classification after",
                *(f"L_fg {p}" for p in PARTS),
            ],
            arows,
        ),
    ]
    return lines


def diagnose_section(results: Path, presets: list[str]) -> list[str]:
    """BENCHMARKS.md's section: every ``diagnose-<preset>-<group>.json``."""
    files = [f for name in presets for f in sorted(Path(results).glob(f"diagnose-{name}-*.json"))]
    if not files:
        return []
    lines = ["## Diagnosis of the mask-guided feature loss (`mar bench diagnose`)", ""]
    for f in files:
        result = json.loads(f.read_text())
        lines += [f"From `{f.name}`: `{result.get('command', '')}`.", "", *format_diagnosis(result), ""]
    return lines
