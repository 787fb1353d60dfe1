"""A Prometheus collector that reads the jobs table at scrape time (``api.db.stats_repo``).

Labels hold only states, worker ids and pool names: no job name, project, key or anything of a spec.
A worker's last heartbeat is its lease expiry less ``lease_seconds`` (every heartbeat sets
``lease_expires_at = now + MAR_LEASE_SECONDS``; the API and the workers share that setting).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from api.db import scheduling, states, stats_repo
from api.db.models import utcnow

# Seconds: a smoke run takes a minute, a real distillation hours.
DURATION_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 259200.0)


def _histogram(name: str, doc: str, by_state: dict[str, list[float]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["state"])
    for state, values in sorted(by_state.items()):
        values.sort()
        buckets = [(str(b), bisect.bisect_right(values, b)) for b in DURATION_BUCKETS]
        family.add_metric([state], [*buckets, ("+Inf", len(values))], sum(values))
    return family


class JobsCollector(Collector):
    """``mar_jobs``, ``mar_queue_depth``, ``mar_job_duration_seconds``,
    ``mar_worker_heartbeat_age_seconds``, ``mar_worker_steps_per_second``, and per pool
    ``mar_pool_waiting_jobs``, ``mar_pool_running_jobs``, ``mar_pool_worker_slots``."""

    def __init__(
        self,
        session_factory: Callable[[], sessionmaker[Session]],
        lease_seconds: float,
        pools: list[str] | None = None,
        worker_stale_seconds: float = 30.0,
    ):
        """``session_factory`` returns the app's current session factory (read at each scrape)."""
        self._sf, self.lease_seconds = session_factory, lease_seconds
        self.pools, self.worker_stale_seconds = pools or ["gpu"], worker_stale_seconds

    def collect(self) -> Iterator[Metric]:
        with self._sf()() as s:
            counts = stats_repo.count_by_state(s)
            durations: dict[str, list[float]] = {str(st): [] for st in sorted(states.TERMINAL)}
            for state, seconds in stats_repo.finished_durations(s):
                durations[state].append(seconds)
            leases = stats_repo.worker_leases(s)
            step_seconds = stats_repo.running_step_seconds(s)
            per_pool = scheduling.pool_counts(s, self.pools, self.worker_stale_seconds)
        jobs = GaugeMetricFamily("mar_jobs", "Jobs by state.", labels=["state"])
        for state, n in sorted(counts.items()):
            jobs.add_metric([state], n)
        yield jobs
        yield GaugeMetricFamily("mar_queue_depth", "Jobs waiting for a worker.", value=counts[states.QUEUED])
        yield _histogram(
            "mar_job_duration_seconds", "Run time of finished jobs (their last attempt).", durations
        )
        now = utcnow()
        age = GaugeMetricFamily(
            "mar_worker_heartbeat_age_seconds",
            "Seconds since the last heartbeat of each worker holding a job.",
            labels=["worker"],
        )
        for worker, expiry in sorted(leases.items()):
            age.add_metric([worker], max((now - expiry).total_seconds() + self.lease_seconds, 0.0))
        yield age
        speed = GaugeMetricFamily(
            "mar_worker_steps_per_second",
            "Training steps per second of the job each worker runs (its latest step time).",
            labels=["worker"],
        )
        for worker, seconds in sorted(step_seconds.items()):
            if seconds > 0:
                speed.add_metric([worker], 1.0 / seconds)
        yield speed
        for key, name, doc in (
            ("waiting", "mar_pool_waiting_jobs", "Jobs queued for each worker pool."),
            ("running", "mar_pool_running_jobs", "Jobs holding a worker of each pool."),
            ("slots", "mar_pool_worker_slots", "Job slots of each pool's live workers."),
        ):
            family = GaugeMetricFamily(name, doc, labels=["pool"])
            for pool, counts in sorted(per_pool.items()):
                family.add_metric([pool], counts[key])
            yield family
