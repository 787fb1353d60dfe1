"""Projects through the whole service on both stacks: a job ran by one project is invisible to
another project's key, the admin key sees it, and an event stream ends when its key is revoked."""

from __future__ import annotations

import pytest

from api.db import keys_repo
from api.db.session import make_engine, make_session_factory, session_scope
from api.sdk import ApiClientError, MarClient

pytestmark = pytest.mark.integration


def test_projects_isolate_jobs(stack, tiny_spec):
    engine = make_engine(stack.settings.database_url)
    factory = make_session_factory(engine)
    try:
        with session_scope(factory) as s:
            _, beta_key = keys_repo.create_api_key(s, "it-beta", project="it-beta")
            _, admin_key = keys_repo.create_api_key(s, "it-admin", project="ops", admin=True)
            revoked_row, short_key = keys_repo.create_api_key(s, "it-short", project="it-beta")
    finally:
        engine.dispose()
    job = stack.submit(tiny_spec(iterations=1, name="it-owned", eval_max_images=2))
    beta, admin = MarClient(stack.url, beta_key), MarClient(stack.url, admin_key)
    short = MarClient(stack.url, short_key)
    try:
        with pytest.raises(ApiClientError) as e:
            beta.get_job(job["id"])
        assert e.value.status == 404
        assert all(j.id != job["id"] for j in beta.list_jobs().data)
        assert admin.get_job(job["id"]).id == job["id"]
        done = stack.wait_terminal(job["id"])
        assert done["status"] == "succeeded", stack.log_tails()

        # a stream of beta's own queued-then-running job stops once its key is revoked
        mine = short.submit(tiny_spec(iterations=50, name="it-beta-long"))
        frames = short.stream_events(mine.id, max_reconnects=0)
        next(frames)
        engine = make_engine(stack.settings.database_url)
        with session_scope(make_session_factory(engine)) as s:
            keys_repo.revoke_api_key(s, revoked_row.id)
        engine.dispose()
        rest = list(frames)  # returns once the server ends the stream
        assert all(f.type != "status" or f.data["status"] != "succeeded" for f in rest)
        assert admin.get_job(mine.id).status not in ("succeeded", "failed", "cancelled")
        with pytest.raises(ApiClientError) as e:
            short.get_job(mine.id)
        assert e.value.status == 401
        admin.cancel(mine.id)
    finally:
        for c in (beta, admin, short):
            c.close()
