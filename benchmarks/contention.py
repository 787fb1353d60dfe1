"""Training-step time when one other CPU-bound process runs, under each torch thread setting.

A laptop user of the embedded default trains while a browser, an IDE or a second job runs. With
torch's default (one OpenMP thread per core, threads that spin while they wait), one descheduled
thread stalls every parallel op. Each setting below times the same student training step in a
fresh process (so its environment reaches OpenMP before it starts), once on an idle machine and
once beside a busy-loop process; the slowdown is the ratio of the medians, and each setting is
also compared with the best idle figure of all settings.

    python -m benchmarks.contention --child THREADS STEPS   # one timing process (prints JSON)
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from benchmarks.step_perf import synthetic_batch, train_step
from mar_core.models.registry import build_detector
from mar_core.spec import ModelSpec

log = logging.getLogger(__name__)

# The cpu preset's student (RetinaNet R18-FPN64) at its image size and batch.
STUDENT = {"arch": "retinanet", "backbone": "resnet18", "fpn_channels": 64, "min_size": 128, "max_size": 128}
IMAGE_SIZE, BATCH = 128, 8


@dataclass(frozen=True)
class ThreadSetting:
    """A way to run torch on a machine with ``cores`` cores: threads (0: torch's default) and
    extra environment for OpenMP."""

    name: str
    threads: int
    env: dict[str, str] = field(default_factory=dict)


def settings_for(cores: int) -> list[ThreadSetting]:
    fewer = max(1, cores - 1)
    passive = {"OMP_WAIT_POLICY": "PASSIVE"}
    return [
        ThreadSetting(f"torch default ({cores} threads)", 0),
        ThreadSetting(f"threads = cores - 1 ({fewer})", fewer),
        ThreadSetting(f"OMP_WAIT_POLICY=PASSIVE, {cores} threads", 0, passive),
        ThreadSetting(f"OMP_WAIT_POLICY=PASSIVE, {fewer} threads", fewer, passive),
        ThreadSetting("1 thread", 1),
    ]


def _child(threads: int, steps: int) -> dict[str, Any]:
    """Time ``steps`` training steps of ``STUDENT`` (after 2 warm-up steps) in this process."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    images, targets = synthetic_batch(IMAGE_SIZE, BATCH)
    model = build_detector(ModelSpec(**STUDENT), 7)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    times = [train_step(model, optimizer, images, targets) for _ in range(steps + 2)][2:]
    return {"threads": torch.get_num_threads(), "median_s": statistics.median(times), "times_s": times}


@contextmanager
def _busy_process() -> Iterator[None]:
    """One process spinning on a core for as long as the block runs."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        proc.kill()
        proc.wait()


def _time_setting(setting: ThreadSetting, steps: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.contention", "--child", str(setting.threads), str(steps)]
    env = {**os.environ, **setting.env}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_contention(steps: int = 8, cores: int | None = None) -> dict[str, Any]:
    """``{"cores", "rows": [{setting, idle_s, busy_s, slowdown, busy_over_best_idle}]}``."""
    cores = cores or os.cpu_count() or 1
    rows = []
    for setting in settings_for(cores):
        idle = _time_setting(setting, steps)
        with _busy_process():
            busy = _time_setting(setting, steps)
        rows.append(
            {
                "setting": setting.name,
                "threads": idle["threads"],
                "env": setting.env,
                "idle_s": round(idle["median_s"], 4),
                "busy_s": round(busy["median_s"], 4),
                "slowdown": round(busy["median_s"] / idle["median_s"], 2),
            }
        )
        log.info("%s: idle %.3f s, busy %.3f s", setting.name, idle["median_s"], busy["median_s"])
    best_idle = min(r["idle_s"] for r in rows)
    for r in rows:
        r["idle_over_best_idle"] = round(r["idle_s"] / best_idle, 2)
        r["busy_over_best_idle"] = round(r["busy_s"] / best_idle, 2)
    return {"cores": cores, "student": STUDENT, "image_size": IMAGE_SIZE, "batch": BATCH, "rows": rows}


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(_child(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        sys.exit("usage: python -m benchmarks.contention --child THREADS STEPS")
