"""A worker's heartbeat row (``api.db.models.WorkerBeat``): which pools have live workers.

Started when the Celery worker is ready (a daemon thread writing the row every
``MAR_HEARTBEAT_SECONDS``), removed at its shutdown; a worker killed outright leaves a row that
goes stale after ``MAR_WORKER_STALE_SECONDS``. The queue view (``GET /queue``), the reaper's
preemption and a job's "no live worker" note read it.
"""

from __future__ import annotations

import logging
import threading

from celery.signals import worker_ready, worker_shutdown

from api.db import scheduling
from api.db.session import session_scope
from api.settings import get_settings
from worker.runtime import session_factory, worker_id

logger = logging.getLogger(__name__)

_stop = threading.Event()
_state: dict[str, str] = {}


def _beat_loop(wid: str, pool: str, slots: int, every: float) -> None:
    while True:
        try:
            with session_scope(session_factory()) as s:
                scheduling.beat(s, wid, pool, slots)
        except Exception:  # noqa: BLE001 - the database may be away for a while: try again
            logger.warning("worker heartbeat row not written; retrying", exc_info=True)
        if _stop.wait(every):
            return


def _slots(sender) -> int:
    controller = getattr(sender, "controller", None)
    return int(getattr(controller, "concurrency", None) or 1)


@worker_ready.connect
def start_beat(sender=None, **_kwargs) -> None:
    settings = get_settings()
    wid = worker_id(getattr(sender, "hostname", None))
    _state["id"] = wid
    thread = threading.Thread(
        target=_beat_loop,
        args=(wid, settings.my_pool, _slots(sender), settings.heartbeat_seconds),
        name="worker-beat",
        daemon=True,
    )
    thread.start()
    logger.info("worker %s: pool %s (queue %s)", wid, settings.my_pool, settings.pool_queue(settings.my_pool))


@worker_shutdown.connect
def stop_beat(**_kwargs) -> None:
    _stop.set()
    wid = _state.get("id")
    if wid is None:
        return
    try:
        with session_scope(session_factory()) as s:
            scheduling.forget_worker(s, wid)
    except Exception:  # noqa: BLE001 - the row goes stale by itself
        logger.warning("could not remove worker %s's heartbeat row", wid, exc_info=True)
