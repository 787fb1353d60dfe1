"""The FastAPI application: ``create_app(settings)``; ``uvicorn api.main:app`` or ``mar api``.

The API process never imports torch (nor ``worker/``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from api.broker import make_celery_client, send_run_job
from api.db.session import init_db, make_engine, make_session_factory
from api.errors import install_error_handlers
from api.metrics_cache import MetricsCache
from api.middleware import RequestGuard
from api.monitoring.http import RequestLatency
from api.monitoring.jobs_collector import JobsCollector
from api.openapi import install_openapi
from api.routes import (
    artifacts,
    checkpoints,
    datasets,
    events,
    health,
    jobs,
    lifecycle,
    metrics,
    prometheus,
    queue,
    webhooks,
)
from api.routes.ui import mount_ui
from api.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> FastAPI:
    """Build the app for ``settings`` (default: the environment's). With ``migrate`` the schema
    is upgraded to head at startup."""
    settings = settings or get_settings()
    engine = make_engine(str(settings.database_url))
    celery = make_celery_client(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        settings.ensure_dirs()
        if migrate:
            init_db(engine)
        yield
        engine.dispose()

    app = FastAPI(
        title="MAR distillation service",
        description="Submit, follow and fetch knowledge-distillation jobs for object detectors.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.celery = celery
    app.state.nudge = lambda job_id, pool=None: send_run_job(celery, job_id, settings.pool_queue(pool))
    app.state.metrics_cache = MetricsCache(settings.metrics_cache_bytes)
    app.state.sse_poll_seconds = 0.5
    app.state.sse_keepalive_seconds = 15.0
    registry = CollectorRegistry()  # the app's own: several apps in one process never clash
    registry.register(
        JobsCollector(
            lambda: app.state.session_factory,
            settings.lease_seconds,
            settings.pools,
            settings.worker_stale_after,
        )
    )
    app.state.prometheus_registry = registry
    app.add_middleware(RequestLatency, registry=registry)
    install_error_handlers(app)
    install_openapi(app)
    app.add_middleware(RequestGuard, max_body_bytes=lambda: app.state.settings.max_body_bytes)
    routers = (
        health,
        jobs,
        metrics,
        events,
        artifacts,
        checkpoints,
        datasets,
        webhooks,
        lifecycle,
        queue,
        prometheus,
    )
    for module in routers:
        app.include_router(module.router)
    mount_ui(app)
    return app


def __getattr__(name: str) -> FastAPI:
    """``api.main:app`` for ``uvicorn``, built on first access from the environment."""
    if name == "app":
        global app
        app = create_app()
        return app
    raise AttributeError(name)
