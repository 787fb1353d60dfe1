"""``mar bench perf``: the speed benchmark, one JSON file ``perf-<preset>-<time>.json``.

Four parts, each sized by the preset (``PERF_PRESETS``):

* ``steps`` (RetinaNet) and ``steps_frcnn`` (Faster R-CNN): student step, teacher forward and
  MAR step on one batch (``step_perf``), with the distillation overhead beyond the teacher forward.
* ``relation``: the relation loss in the Gram form against the naive ``N x N`` form, time and
  peak memory as N grows, the naive form only where its matrix fits (``relation_perf``).
* ``masks``: ``multi_value_mask`` against a per-box Python loop (``mask_perf``).
* ``api``: latency of ``POST /jobs`` and ``GET /jobs/{id}/metrics`` under concurrent clients on
  SQLite and PostgreSQL (``api_latency``).
* ``contention``: a training step's slowdown beside one other CPU-bound process, per torch
  thread setting (``contention``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks.api_latency import api_latency
from benchmarks.contention import measure_contention
from benchmarks.machine import machine_info
from benchmarks.mask_perf import mask_perf_table
from benchmarks.presets import get_preset
from benchmarks.relation_perf import relation_perf_table
from benchmarks.step_perf import measure_steps
from mar_core.atomic import atomic_write_json

log = logging.getLogger(__name__)

PARTS = ("steps", "steps_frcnn", "relation", "masks", "api", "contention")


@dataclass(frozen=True)
class PerfPreset:
    quality_preset: str  # whose first group's student / teacher models and batch are timed
    step_repeats: int
    relation_sizes: tuple[int, ...]
    relation_channels: int
    naive_limit_bytes: int
    relation_repeats: int
    mask_cases: tuple[tuple[int, int, int], ...]
    mask_repeats: int
    api: dict[str, Any] = field(default_factory=dict)
    contention_steps: int | None = 8  # None: the part is skipped (each setting starts 2 processes)
    step_warmup: int = 2
    # torch threads for steps, relation and masks. One thread: on a shared machine, a parallel
    # region whose second thread is descheduled stalls every op, and CPU-time ratios hold up.
    threads: int | None = 1
    device: str = "cpu"  # where the step part runs ("cuda" for the gpu preset)


PERF_PRESETS: dict[str, PerfPreset] = {
    "cpu": PerfPreset(
        "cpu",
        10,
        (16, 32, 64, 96, 128, 192),
        256,
        1024**3,
        3,
        ((128, 5, 8), (512, 20, 8), (800, 100, 8)),
        5,
        {"post_requests": 200, "get_requests": 40, "clients": (1, 8, 50), "metric_points": 10_000},
    ),
    "gpu": PerfPreset(
        "gpu",
        20,
        (32, 64, 128, 192, 256),
        256,
        4 * 1024**3,
        3,
        ((512, 20, 16), (800, 100, 16), (1333, 100, 16)),
        10,
        {"post_requests": 1000, "get_requests": 200, "clients": (1, 8, 50), "metric_points": 10_000},
        threads=None,
        device="cuda",
    ),
    "smoke": PerfPreset(
        "smoke",
        1,
        (8,),
        16,
        64 * 1024**2,
        1,
        ((64, 3, 2),),
        1,
        {
            "post_requests": 12,
            "get_requests": 4,
            "clients": (2,),
            "get_clients": (2,),
            "metric_points": 1000,
            "configs": ((2, 1024**2),),
            "paced": (4, 0.2),
        },
        contention_steps=None,
        step_warmup=1,
    ),
}


def _steps_of(pp: PerfPreset, arch: str) -> dict[str, Any]:
    """Step timing of the first group of the quality preset whose students are ``arch``."""

    preset = get_preset(pp.quality_preset)
    group = next((g for g in preset.groups if g.student_model["arch"] == arch), None)
    if group is None:
        return {"skipped": f"preset {preset.name} has no {arch} group"}
    teacher = preset.teachers[group.teacher]
    data = preset.datasets[group.data]
    return measure_steps(
        group.student_model,
        teacher.model,
        image_size=data.synth.get("image_size", 128),
        batch_size=group.train["batch_size"],
        repeats=pp.step_repeats,
        warmup=pp.step_warmup,
        threads=pp.threads,
        device=pp.device,
    )


def _steps(pp: PerfPreset) -> dict[str, Any]:
    return _steps_of(pp, "retinanet")


def _steps_frcnn(pp: PerfPreset) -> dict[str, Any]:
    return _steps_of(pp, "fasterrcnn")


def _relation(pp: PerfPreset) -> dict[str, Any]:

    rows = relation_perf_table(
        pp.relation_sizes,
        pp.relation_channels,
        backward=True,
        threads=pp.threads,
        naive_limit_bytes=pp.naive_limit_bytes,
        repeats=pp.relation_repeats,
    )
    return {
        "channels": pp.relation_channels,
        "backward": True,
        "naive_limit_bytes": pp.naive_limit_bytes,
        "threads": pp.threads,
        "rows": rows,
    }


def _masks(pp: PerfPreset) -> dict[str, Any]:

    previous = torch.get_num_threads()
    if pp.threads is not None:
        torch.set_num_threads(pp.threads)
    try:
        rows = mask_perf_table(pp.mask_cases, repeats=pp.mask_repeats)
    finally:
        torch.set_num_threads(previous)
    return {
        "stride": 8,
        "threads": torch.get_num_threads() if pp.threads is None else pp.threads,
        "rows": rows,
    }


def _api(pp: PerfPreset) -> dict[str, Any]:

    return api_latency(**pp.api)


def _contention(pp: PerfPreset) -> dict[str, Any]:
    if pp.contention_steps is None:
        return {"skipped": f"not in the {pp.quality_preset} preset"}
    return measure_contention(pp.contention_steps)


RUNNERS: dict[str, Callable[[PerfPreset], dict[str, Any]]] = {
    "steps": _steps,
    "steps_frcnn": _steps_frcnn,
    "relation": _relation,
    "masks": _masks,
    "api": _api,
    "contention": _contention,
}


def run_perf(
    preset: str,
    results_dir: Path,
    parts: tuple[str, ...] = PARTS,
    command: str = "",
    on_part: Callable[[str, dict[str, Any]], None] = lambda *a: None,
) -> tuple[Path, dict[str, Any]]:
    """Run the selected parts; write and return ``results_dir/perf-<preset>-<UTC time>.json``."""

    pp = PERF_PRESETS[preset]
    started = dt.datetime.now(dt.timezone.utc)
    out: dict[str, Any] = {
        "kind": "perf",
        "preset": preset,
        "command": command,
        "machine": machine_info(),
        "started_at": started.isoformat(timespec="seconds"),
        "parts": {},
    }
    for part in parts:
        t0 = time.time()
        log.info("perf: %s", part)
        result = RUNNERS[part](pp)
        result["seconds"] = round(time.time() - t0, 1)
        out["parts"][part] = result
        on_part(part, result)
    out["machine_after"] = {"load_avg_1m": machine_info().get("load_avg_1m")}
    path = Path(results_dir) / f"perf-{preset}-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    atomic_write_json(path, out)
    return path, out
