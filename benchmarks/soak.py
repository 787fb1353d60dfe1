"""``mar bench soak``: many tiny jobs through PostgreSQL + Redis while workers are SIGKILLed and
the broker is restarted, then checks that every job succeeded, that each metric series has one
value per step and that no job ran twice at once (``benchmarks.soak_checks``).

Bounded: ``--jobs`` jobs are submitted at once through the API; a killer thread SIGKILLs a random
worker's process group every ``--kill-every MIN MAX`` seconds and starts a replacement; once a
third of the jobs have ended the private redis-server is SIGKILLed (losing every queued
message) and started again. The run stops when every job has ended or at ``--timeout``. The
weights of every ended job (``*.pt``, ~230 MB a job) are deleted as soon as it ends: 200 jobs
would otherwise fill a shared disk (a checkpoint write that failed for want of space is a
failed job). The record goes to ``results/soak-<UTC time>.json``; ``mar bench report`` prints the newest.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.child_watch import ChildWatch
from benchmarks.fair_share import fair_share
from benchmarks.machine import machine_info
from benchmarks.soak_checks import verify
from benchmarks.soak_stack import (
    HEARTBEAT_SECONDS,
    LEASE_SECONDS,
    REAPER_INTERVAL,
    REAPER_STALE_AFTER,
    SoakStack,
)
from mar_core.atomic import atomic_write_json
from mar_core.synth import generate_synthetic

logger = logging.getLogger(__name__)

TERMINAL = ("succeeded", "failed", "cancelled")
DATASET = "soak"
POLL_SECONDS = 3.0


@dataclass
class SoakConfig:
    jobs: int = 200
    workers: int = 2
    kill_every: tuple[float, float] = (20.0, 40.0)
    timeout: float = 3600.0
    iterations: int = 4
    broker_restart_at: float = 1 / 3  # fraction of the jobs ended
    broker_down_seconds: float = 3.0
    seed: int = 0
    # two projects: "a" submits first, then "b" its share of the jobs, every Nth of them "high"
    # priority (0: none), so fair share and preemption run under the kills and the broker restart
    b_share: float = 0.25
    b_high_every: int = 4


def job_spec(iterations: int) -> dict[str, Any]:
    """The tiny job: RetinaNet-R18, FPN 32, 64 px, batch 2, a checkpoint every 2 steps (a
    killed attempt resumes), evaluation of 2 images at the end; 10 attempts, so a job that meets
    several kills is not failed by the attempt limit (the default is 3)."""
    return {
        "kind": "train",
        "name": "soak",
        "dataset": {"path": DATASET},
        "model": {"arch": "retinanet", "backbone": "resnet18", "fpn_channels": 32,
                  "min_size": 64, "max_size": 64, "anchor_scale": 0.5},
        "train": {"iterations": iterations, "batch_size": 2, "lr": 0.01, "warmup_iters": 1, "amp": False,
                  "log_every": 1, "checkpoint_every": 2, "eval_max_images": 2},
        "resources": {"device": "cpu"},
        "seed": 3,
        "max_attempts": 10,
    }  # fmt: skip


class Killer:
    """A thread that SIGKILLs a random worker every uniform(MIN, MAX) seconds until stopped."""

    def __init__(self, stack: SoakStack, every: tuple[float, float], rng: random.Random):
        self.stack, self.every, self.rng = stack, every, rng
        self.kills: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="killer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.rng.uniform(*self.every)):
            try:
                self.kills.append(self.stack.kill_random_worker(self.rng))
            except Exception:
                logger.exception("killer: could not kill or restart a worker")

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join(timeout=60)
        return self.kills


def submissions(cfg: SoakConfig) -> list[tuple[str, str]]:
    """``(project, priority)`` of each job in submission order: project a's jobs, then b's."""
    n_b = round(cfg.jobs * cfg.b_share)
    b = [
        ("b", "high" if cfg.b_high_every and (i + 1) % cfg.b_high_every == 0 else "normal")
        for i in range(n_b)
    ]
    return [("a", "normal")] * (cfg.jobs - n_b) + b


def _statuses(stack: SoakStack) -> dict[str, str]:
    return {j.id: j.status for j in stack.client.iter_jobs(page_size=100)}


def result_times(job_dir: Path) -> dict[str, float]:
    """When each attempt's result file was written: attempt number -> epoch seconds."""
    times = {}
    for f in (job_dir / ".worker").glob("result-*.json"):
        times[f.stem.removeprefix("result-")] = f.stat().st_mtime
    return dict(sorted(times.items()))


def _job_record(stack: SoakStack, job_id: str) -> dict[str, Any]:
    job = stack.client.get_job(job_id)  # the admin key: every project
    series = stack.client.metrics(job_id).series
    events = [
        e.model_dump(mode="json", include={"id", "type", "data", "created_at"})
        for e in stack.client.events(job_id)
        if e.type in ("status", "process", "preempted")
    ]
    return {
        "id": job_id,
        "project": stack.project_of[job_id],
        "priority": job.priority,
        "status": job.status,
        "attempt": job.attempt,
        "error": job.error,
        "series": {name: [p.step for p in points] for name, points in series.items()},
        "events": events,
        "results": result_times(stack.artifact_root / job_id),
    }


def _drop_weights(job_dir: Path) -> None:
    for f in job_dir.rglob("*.pt"):
        f.unlink(missing_ok=True)


def _wait(stack: SoakStack, cfg: SoakConfig, ids: list[str], deadline: float) -> list[dict[str, Any]]:
    """Poll until every job ended or the deadline; restart the broker once on the way; delete
    the weights of the jobs that ended."""
    restarts: list[dict[str, Any]] = []
    dropped: set[str] = set()
    last_log = 0.0
    while time.monotonic() < deadline:
        try:
            statuses = _statuses(stack)
        except Exception as e:  # noqa: BLE001 - the API may stall under load; poll again
            logger.warning("could not list jobs: %s", e)
            time.sleep(POLL_SECONDS)
            continue
        ended_ids = {j for j in ids if statuses.get(j) in TERMINAL}
        for job_id in ended_ids - dropped:
            _drop_weights(stack.artifact_root / job_id)
        dropped |= ended_ids
        ended = len(ended_ids)
        if not restarts and ended >= cfg.broker_restart_at * len(ids):
            restarts.append({**stack.restart_broker(cfg.broker_down_seconds), "jobs_ended_before": ended})
        if time.monotonic() - last_log > 30:
            last_log = time.monotonic()
            counts: dict[str, int] = {}
            for s in statuses.values():
                counts[s] = counts.get(s, 0) + 1
            logger.info("%d of %d jobs ended; %s", ended, len(ids), counts)
        if ended == len(ids):
            return restarts
        time.sleep(POLL_SECONDS)
    logger.error("timeout: not every job ended")
    return restarts


def run_soak(cfg: SoakConfig, results: Path, work: Path, command: str = "") -> tuple[Path, dict[str, Any]]:
    """Run the soak, store its record and verdict; ``(path, record)``."""
    started = dt.datetime.now(dt.timezone.utc)
    work = work / started.strftime("%Y%m%dT%H%M%SZ")
    data_root = work / "data"
    generate_synthetic(data_root / DATASET, seed=5, num_train=8, num_val=4, image_size=64, num_classes=3)
    rng = random.Random(cfg.seed)
    spec = job_spec(cfg.iterations)
    stack = SoakStack(work, data_root, cfg.workers)
    record: dict[str, Any] = {
        "command": command,
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "config": {**asdict(cfg), "lease_seconds": LEASE_SECONDS, "heartbeat_seconds": HEARTBEAT_SECONDS,
                   "reaper_interval": REAPER_INTERVAL, "reaper_stale_after": REAPER_STALE_AFTER},
        "spec": spec,
    }  # fmt: skip
    try:
        stack.start()
        watch = ChildWatch(stack.artifact_root)
        watch.start()
        t0 = time.monotonic()
        ids = []
        for i, (project, priority) in enumerate(submissions(cfg)):
            job_id = stack.clients[project].submit({**spec, "name": f"soak-{i}", "priority": priority}).id
            stack.project_of[job_id] = project
            ids.append(job_id)
        logger.info("submitted %d jobs in %.1f s", len(ids), time.monotonic() - t0)
        killer = Killer(stack, cfg.kill_every, rng)
        killer.start()
        restarts = _wait(stack, cfg, ids, t0 + cfg.timeout)
        wall = time.monotonic() - t0
        record["kills"] = killer.stop()
        time.sleep(1.0)  # a last sample after the last job's process exited
        record["processes"] = watch.stop()
        record["broker_restarts"] = restarts
        record["wall_seconds"] = round(wall, 1)
        record["jobs_per_minute"] = round(len(ids) / (wall / 60), 2)
        record["jobs_submitted"] = len(ids)
        record["jobs"] = [_job_record(stack, j) for j in ids]
        record["segments"] = stack.segments()
    finally:
        stack.close()
    record["required_series"] = sorted({n for j in record["jobs"] for n in j["series"]})
    record["machine_after"] = machine_info()
    record["verdict"] = verify(record)
    record["fair_share"] = fair_share(record["jobs"], record["segments"])
    record["preemptions"] = sum(1 for j in record["jobs"] for e in j["events"] if e["type"] == "preempted")
    out = Path(results) / f"soak-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    atomic_write_json(out, record)
    return out, record
