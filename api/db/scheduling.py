"""Who runs next: the order of a pool's waiting jobs, the claim that follows it, live workers,
and preemption. The claim *is* the dispatch (see ``claim_next``).

Order in a pool: priority (high, normal, low), then fair share (the project that used the least
GPU time over the last 24 hours, running jobs included, first), then submission time. A job whose
project is at its ``max_running`` quota is skipped until one of its jobs stops.

Why no separate dispatcher process: a Celery message is only a nudge (``api.broker``), one per
queued job, sent to its pool's queue. A worker that takes any message of its pool claims the first
job of that order, not necessarily the one the message named. Each waiting job still has one
message in the pool's queue, so the counts match; a message whose job was taken claims the next
one. Exactly-once holds as before (the claim is one conditional UPDATE), the claims of a pool are
serialised by a lock (so quotas and the order are exact under concurrent claims), and no process
holds scheduling state that could be lost: a killed worker, API or reaper loses and doubles nothing
(the reaper re-nudges a job left queued without a message, as before).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select, text, update
from sqlalchemy.orm import Session

from api.db import claims_repo, events_repo, jobs_repo, quota_repo, segments_repo, states
from api.db.models import Job, ProjectQuota, WorkerBeat, utcnow
from mar_core import names

log = logging.getLogger(__name__)

HIGH = names.PRIORITIES.index("high")
CLAIM_LOCK_KEY = 0x6D61725F636C6D  # "mar_clm": PostgreSQL advisory lock of the claims


def in_pool(pool: str, default_pool: str) -> ColumnElement[bool]:
    """Jobs of ``pool`` (rows from before pools, ``pool`` None, are the default pool's)."""
    return segments_repo.in_pool(Job.pool, pool, default_pool)


@dataclass(frozen=True)
class Waiting:
    """A queued job in its pool's order; ``held`` says why it is skipped (None: it may start)."""

    job_id: str
    project: str
    priority: int
    created_at: datetime
    held: str | None


def waiting_order(s: Session, pool: str, default_pool: str, now: datetime | None = None) -> list[Waiting]:
    """The queued jobs of ``pool`` in the order workers take them (held ones last)."""
    now = now or utcnow()
    rows = s.execute(
        select(Job.id, Job.project, Job.priority, Job.created_at).where(
            Job.status == states.QUEUED, Job.deleted_at.is_(None), in_pool(pool, default_pool)
        )
    ).all()
    if not rows:
        return []
    projects = {r.project for r in rows}
    used = segments_repo.usage_seconds(s, now, projects)
    caps = dict(
        s.execute(
            select(ProjectQuota.project, ProjectQuota.max_running).where(ProjectQuota.project.in_(projects))
        ).all()
    )
    running = quota_repo.running_counts(s)
    out = []
    for r in sorted(rows, key=lambda r: (-r.priority, used.get(r.project, 0.0), r.created_at, r.id)):
        cap = caps.get(r.project)
        held = None
        if cap is not None and running.get(r.project, 0) >= cap:
            held = f"project {r.project!r} runs {running.get(r.project, 0)} job(s), its max_running quota"
        out.append(Waiting(r.id, r.project, r.priority, r.created_at, held))
    return [w for w in out if w.held is None] + [w for w in out if w.held is not None]


def held_job_ids(s: Session, pools: list[str]) -> set[str]:
    """Queued jobs of every pool that their project's ``max_running`` quota holds now."""
    return {w.job_id for pool in pools for w in waiting_order(s, pool, pools[0]) if w.held is not None}


def first_capped_ready(s: Session, pool: str, default_pool: str) -> str | None:
    """The first job of ``pool``'s order that may start now and whose project has a
    ``max_running`` quota, or None."""
    capped = set(
        s.execute(select(ProjectQuota.project).where(ProjectQuota.max_running.is_not(None))).scalars()
    )
    if not capped:
        return None
    return next(
        (w.job_id for w in waiting_order(s, pool, default_pool) if w.held is None and w.project in capped),
        None,
    )


def _claim_lock(s: Session, worker_id: str) -> None:
    """Serialise claims until the transaction ends: an advisory lock on PostgreSQL; on SQLite a
    write first (the database's one writer lock, taken now rather than at the claim's UPDATE)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK_KEY})
    else:
        s.execute(update(WorkerBeat).where(WorkerBeat.id == worker_id).values(last_seen=utcnow()))


def claim_next(s: Session, pool: str, default_pool: str, worker_id: str, lease_seconds: float) -> Job | None:
    """Claim the first job of ``pool``'s order for ``worker_id`` (queued -> starting); None when
    no job of the pool may start now."""
    _claim_lock(s, worker_id)
    for w in waiting_order(s, pool, default_pool):
        if w.held is not None:
            break
        job = claims_repo.claim_job(s, w.job_id, worker_id, lease_seconds)
        if job is not None:
            return job
    return None


# --------------------------------------------------------------------------- live workers


def beat(s: Session, worker_id: str, pool: str, slots: int) -> None:
    """Record that worker ``worker_id`` of ``pool`` is alive now (insert or refresh its row)."""
    now = utcnow()
    row = s.get(WorkerBeat, worker_id)
    if row is None:
        s.add(WorkerBeat(id=worker_id, pool=pool, slots=slots, started_at=now, last_seen=now))
    else:
        row.pool, row.slots, row.last_seen = pool, slots, now
    s.flush()


def forget_worker(s: Session, worker_id: str) -> None:
    s.execute(delete(WorkerBeat).where(WorkerBeat.id == worker_id))


def live_slots(s: Session, stale_seconds: float, now: datetime | None = None) -> dict[str, int]:
    """Job slots of the live workers per pool (a worker is live while its beat is recent)."""
    since = (now or utcnow()) - timedelta(seconds=stale_seconds)
    slots: dict[str, int] = {}
    for pool, n in s.execute(select(WorkerBeat.pool, WorkerBeat.slots).where(WorkerBeat.last_seen >= since)):
        slots[pool] = slots.get(pool, 0) + int(n)
    return slots


def active_in_pool(s: Session, pool: str, default_pool: str) -> list[Job]:
    """Jobs holding a worker of ``pool``."""
    stmt = select(Job).where(Job.status.in_(list(states.ACTIVE)), in_pool(pool, default_pool))
    return list(s.execute(stmt).scalars())


def pool_counts(s: Session, pools: list[str], stale_seconds: float) -> dict[str, dict[str, int]]:
    """Per pool: ``waiting`` (queued) and ``running`` (holding a worker) jobs, live worker ``slots``."""
    out = {p: {"waiting": 0, "running": 0, "slots": 0} for p in pools}
    rows = s.execute(
        select(Job.pool, Job.status, func.count())
        .where(Job.status.in_([states.QUEUED, *states.ACTIVE]))
        .group_by(Job.pool, Job.status)
    ).all()
    for pool, status, n in rows:
        counts = out.setdefault(pool or pools[0], {"waiting": 0, "running": 0, "slots": 0})
        counts["waiting" if status == states.QUEUED else "running"] += int(n)
    for pool, n in live_slots(s, stale_seconds).items():
        out.setdefault(pool, {"waiting": 0, "running": 0, "slots": 0})["slots"] = n
    return out


def no_worker_note(pool: str) -> str:
    """What a queued job of a pool without a live worker says (job, queue view)."""
    return f"no live worker in pool {pool!r}: its jobs wait until one starts (mar worker --pool {pool})"


def waiting_notes(s: Session, jobs: list[Job], default_pool: str, stale_seconds: float) -> dict[str, str]:
    """For each queued job of ``jobs`` whose pool has no live worker: its job id -> the note."""
    queued = [j for j in jobs if j.status == states.QUEUED]
    if not queued:
        return {}
    slots = live_slots(s, stale_seconds)
    return {
        j.id: no_worker_note(j.pool or default_pool) for j in queued if not slots.get(j.pool or default_pool)
    }


# --------------------------------------------------------------------------- preemption


def preempt(
    s: Session, pools: list[str], stale_seconds: float, now: datetime | None = None
) -> list[tuple[str, str]]:
    """For each pool whose first waiting job outranks a running one and has no free slot: ask
    the lowest-priority running job (the latest started among equals) to pause at its next
    checkpoint, for that waiting job. One preemption at a time per pool. Returns
    ``(victim, by)`` pairs; events ``preempted`` / ``preempting`` are written on both jobs."""
    now = now or utcnow()
    slots = live_slots(s, stale_seconds, now)
    done: list[tuple[str, str]] = []
    default_pool = pools[0]
    for pool in pools:
        first = next((w for w in waiting_order(s, pool, default_pool, now) if w.held is None), None)
        if first is None:
            continue
        active = active_in_pool(s, pool, default_pool)
        if any(j.preempted_by for j in active) or len(active) < slots.get(pool, 0):
            continue  # one preemption under way, or a slot is free (a worker will take it)
        running = [j for j in active if j.status == states.RUNNING and j.priority < first.priority]
        if not running:
            continue
        victim = min(running, key=lambda j: (j.priority, -(j.started_at or now).timestamp()))
        if jobs_repo.request_pause(s, victim.id) != states.PAUSING:
            continue
        s.execute(update(Job).where(Job.id == victim.id).values(preempted_by=first.job_id))
        events_repo.append_event(
            s, victim.id, "preempted", {"by": first.job_id, "priority": names.PRIORITIES[first.priority]}
        )
        events_repo.append_event(s, first.job_id, "preempting", {"job": victim.id, "pool": pool})
        log.info("pool %s: job %s pauses for higher-priority job %s", pool, victim.id, first.job_id)
        done.append((victim.id, first.job_id))
    return done


def resume_preempted(s: Session) -> list[Job]:
    """Preempted jobs that have paused go back to the queue (they resume from their checkpoint
    when their turn comes). Returns them (send each a nudge after the commit)."""
    jobs = list(
        s.execute(select(Job).where(Job.status == states.PAUSED, Job.preempted_by.is_not(None))).scalars()
    )
    for job in jobs:
        jobs_repo.resume_job(s, job.id, reason="preempted")
        s.execute(update(Job).where(Job.id == job.id).values(preempted_by=None))
    return jobs


# --------------------------------------------------------------------------- the queue, as seen


def queue_view(
    s: Session, pools: list[str], stale_seconds: float, project: str | None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Per pool: live workers' slots, running and waiting counts, and the waiting jobs of
    ``project`` (None: every project) with their position (1: next) and an ETA in seconds from
    the pool's measured step rate (None when not measured yet)."""
    now = now or utcnow()
    slots = live_slots(s, stale_seconds, now)
    default_pool = pools[0]
    out = []
    for pool in pools:
        order = waiting_order(s, pool, default_pool, now)
        active = active_in_pool(s, pool, default_pool)
        per_step = segments_repo.step_seconds(s, pool, default_pool, now)
        etas = _etas(s, order, active, slots.get(pool, 0), per_step, now)
        mine = [
            {
                "id": w.job_id,
                "project": w.project,
                "priority": names.PRIORITIES[w.priority],
                "position": i + 1,
                "eta_seconds": etas.get(w.job_id),
                "held": w.held,
            }
            for i, w in enumerate(order)
            if project is None or w.project == project
        ]
        note = None
        if not slots.get(pool):
            note = (
                f"no live worker in pool {pool!r}: its jobs wait until one starts (mar worker --pool {pool})"
            )
        out.append(
            {
                "pool": pool,
                "workers": slots.get(pool, 0),
                "running": len(active),
                "waiting": len(order),
                "seconds_per_step": per_step,
                "jobs": mine,
                "note": note,
            }
        )
    return out


def _remaining_steps(job_spec: dict[str, Any], step: int | None) -> int:
    total = int((job_spec.get("train") or {}).get("iterations", 0))
    return max(0, total - (step or 0))


def _etas(
    s: Session, order: list[Waiting], active: list[Job], slots: int, per_step: float | None, now: datetime
) -> dict[str, float]:
    """When each waiting job should start: slots free as running jobs finish (their remaining
    steps at the measured rate), then each waiting job takes the earliest free slot for its
    own steps. Empty when there is no worker or no rate yet."""
    if not slots or per_step is None:
        return {}
    free = sorted(_remaining_steps(j.spec, j.progress_step) * per_step for j in active)[:slots]
    free += [0.0] * (slots - len(free))
    free.sort()
    specs = dict(s.execute(select(Job.id, Job.spec).where(Job.id.in_([w.job_id for w in order]))).all())
    etas: dict[str, float] = {}
    for w in order:
        if w.held is not None:
            continue
        start = free.pop(0)
        etas[w.job_id] = round(start, 1)
        free.append(start + _remaining_steps(specs.get(w.job_id) or {}, 0) * per_step)
        free.sort()
    return etas
