"""Service sub-commands: the API server, the database, API keys, and the job client.

``mar api``, ``mar db upgrade`` and ``mar apikey`` act on this host's database (``DATABASE_URL``);
``submit``, ``jobs``, ``status``, ``cancel`` and ``download`` talk to the API over HTTP
(``MAR_API_URL`` / ``MAR_API_KEY``, or ``--api-url`` / ``--api-key``). Heavy imports (uvicorn,
httpx, SQLAlchemy) happen inside the handlers so ``mar --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from mar_core.errors import SpecError

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- server side


def _quiet_alembic() -> None:
    """Alembic logs every migration step at INFO; keep it for ``mar -v``."""
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("alembic").setLevel(logging.WARNING)


def _engine():
    from api.db.session import init_db, make_engine
    from api.settings import get_settings

    _quiet_alembic()
    engine = make_engine(str(get_settings().database_url))
    init_db(engine)
    return engine


def cmd_api(args: argparse.Namespace) -> int:
    """Run the API with uvicorn (migrations run at startup)."""
    import uvicorn

    from api.main import create_app
    from mar_core.parent_watch import stop_with_parent_from_env

    _quiet_alembic()
    stop_with_parent_from_env("api")
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level=args.log_level, proxy_headers=True)
    return 0


def cmd_db_upgrade(_args: argparse.Namespace) -> int:
    engine = _engine()
    engine.dispose()
    print(f"database at head: {engine.url.render_as_string(hide_password=True)}")
    return 0


def cmd_apikey_create(args: argparse.Namespace) -> int:
    from api.db import keys_repo
    from api.db.session import make_session_factory, session_scope

    engine = _engine()
    with session_scope(make_session_factory(engine)) as s:
        row, key = keys_repo.create_api_key(s, args.name)
    engine.dispose()
    print(f"created API key {row.id} ({row.name}); it is shown only once:", file=sys.stderr)
    print(key)
    return 0


def cmd_apikey_list(_args: argparse.Namespace) -> int:
    from api.db import keys_repo
    from api.db.session import make_session_factory, session_scope

    engine = _engine()
    with session_scope(make_session_factory(engine)) as s:
        rows = [
            (k.id, k.name, k.prefix + "...", k.created_at, k.revoked_at) for k in keys_repo.list_api_keys(s)
        ]
    engine.dispose()
    print(f"{'ID':<14}{'NAME':<24}{'PREFIX':<18}{'CREATED':<22}REVOKED")
    for key_id, name, prefix, created, revoked in rows:
        revoked_s = revoked.strftime("%Y-%m-%d %H:%M:%S") if revoked else "-"
        print(
            f"{key_id:<14}{name[:23]:<24}{prefix:<18}{created.strftime('%Y-%m-%d %H:%M:%S'):<22}{revoked_s}"
        )
    return 0


def cmd_apikey_revoke(args: argparse.Namespace) -> int:
    from api.db import keys_repo
    from api.db.session import make_session_factory, session_scope

    engine = _engine()
    with session_scope(make_session_factory(engine)) as s:
        ok = keys_repo.revoke_api_key(s, args.id)
    engine.dispose()
    if not ok:
        print(f"mar apikey revoke: no active key with id {args.id}", file=sys.stderr)
        return 1
    print(f"revoked {args.id}")
    return 0


# --------------------------------------------------------------------------- client side


def _client(args: argparse.Namespace):
    from api.client import MarClient

    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise

    return MarClient(base_url=args.api_url, api_key=args.api_key)


def _read_spec(path: str) -> dict[str, Any]:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise SpecError(f"spec file not found: {p}") from None
    except json.JSONDecodeError as e:
        raise SpecError(f"spec file {p} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise SpecError(f"spec file {p} must hold a JSON object")
    return data


def _summary(job: dict[str, Any]) -> str:
    step, total = job.get("progress_step"), job.get("progress_total")
    progress = f" step {step}/{total}" if step is not None and total else ""
    phase = f" [{job['phase']}]" if job.get("phase") else ""
    return f"{job['id']}  {job['status']}{phase}{progress}  attempt {job['attempt']}/{job['max_attempts']}"


def _exit_code(status: str) -> int:
    return 0 if status == "succeeded" else 1


def _follow(client: Any, job_id: str) -> int:
    """Live progress of a job from its event stream; returns the CLI exit code."""
    from tqdm import tqdm

    bar = None
    final: dict[str, Any] | None = None
    try:
        for ev in client.stream_events(job_id):
            kind, data = ev["type"], ev["data"]
            if kind == "progress":
                if bar is None:
                    bar = tqdm(total=data.get("total"), unit="it", desc=job_id[:8], dynamic_ncols=True)
                bar.total = data.get("total") or bar.total
                bar.n = data.get("step", bar.n)
                bar.refresh()
            elif kind == "phase":
                (bar.write if bar else print)(f"phase: {data.get('phase')}")
            elif kind == "status":
                (bar.write if bar else print)(f"status: {data.get('status')}")
                if data.get("status") in ("succeeded", "failed", "cancelled"):
                    final = data
            elif kind == "log" and data.get("message"):
                (bar.write if bar else print)(f"{data.get('level', 'info')}: {data['message']}")
    finally:
        if bar is not None:
            bar.close()
    job = client.get_job(job_id)
    err = job.get("error") or (final or {}).get("error")
    if err:
        param = f" ({err['param']})" if err.get("param") else ""
        print(f"error: {err.get('code')}{param}: {err.get('message')}", file=sys.stderr)
    print(f"job {job_id} {job['status']}")
    return _exit_code(job["status"])


def cmd_submit(args: argparse.Namespace) -> int:
    spec = _read_spec(args.spec)
    with _client(args) as client:
        job = client.submit(spec, idempotency_key=args.idempotency_key)
        print(job["id"])
        if not args.wait:
            return 0
        return _follow(client, job["id"])


def cmd_jobs(args: argparse.Namespace) -> int:
    with _client(args) as client:
        page = client.list_jobs(status=args.status, limit=args.limit)
    print(f"{'ID':<34}{'STATUS':<12}{'KIND':<9}{'PROGRESS':<14}{'CREATED':<22}NAME")
    for j in page["data"]:
        step, total = j.get("progress_step"), j.get("progress_total")
        progress = f"{step}/{total}" if step is not None and total else "-"
        created = j["created_at"][:19].replace("T", " ")
        print(f"{j['id']:<34}{j['status']:<12}{j['kind']:<9}{progress:<14}{created:<22}{j.get('name') or ''}")
    if page["next_cursor"]:
        print(f"(more: --limit > {args.limit})", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.get_job(args.id)
        if args.json:
            print(json.dumps(job, indent=2))
        else:
            print(_summary(job))
            if job.get("error"):
                e = job["error"]
                print(f"error: {e.get('code')} ({e.get('param') or '-'}): {e.get('message')}")
        if args.wait and job["status"] not in ("succeeded", "failed", "cancelled"):
            return _follow(client, args.id)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.cancel(args.id)
    print(_summary(job))
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    with _client(args) as client:
        names = [args.name] if args.name else [a["name"] for a in client.artifacts(args.id)]
        if not names:
            print(f"job {args.id} has no artifacts yet", file=sys.stderr)
            return 1
        for name in names:
            path = client.download(args.id, name, args.out)
            print(f"{path}  (sha256 verified)")
    return 0


# --------------------------------------------------------------------------- registration


def _client_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--api-url", default=None, help="API base URL (default: $MAR_API_URL or http://127.0.0.1:8000)"
    )
    p.add_argument("--api-key", default=None, help="API key (default: $MAR_API_KEY)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add this module's sub-commands; each sets ``handler=fn(args) -> int``."""
    p = sub.add_parser("api", help="run the HTTP API (runs database migrations at start)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--log-level", default="info")
    p.set_defaults(handler=cmd_api)

    p = sub.add_parser("db", help="database maintenance")
    dsub = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    dsub.add_parser("upgrade", help="apply the Alembic migrations up to head").set_defaults(
        handler=cmd_db_upgrade
    )

    p = sub.add_parser("apikey", help="manage API keys (on this host's database)")
    ksub = p.add_subparsers(dest="apikey_command", required=True, metavar="ACTION")
    k = ksub.add_parser("create", help="create a key and print it once")
    k.add_argument("name")
    k.set_defaults(handler=cmd_apikey_create)
    ksub.add_parser("list", help="list keys (never the keys themselves)").set_defaults(
        handler=cmd_apikey_list
    )
    k = ksub.add_parser("revoke", help="revoke a key by id")
    k.add_argument("id")
    k.set_defaults(handler=cmd_apikey_revoke)

    p = sub.add_parser("submit", help="submit a job spec (JSON) to the API")
    p.add_argument("spec", help="path of the JobSpec JSON file")
    p.add_argument("--wait", action="store_true", help="follow progress; exit 0 on succeeded, 1 otherwise")
    p.add_argument(
        "--idempotency-key", default=None, help="resubmitting with the same key returns the same job"
    )
    _client_flags(p)
    p.set_defaults(handler=cmd_submit)

    p = sub.add_parser("jobs", help="list jobs, newest first")
    p.add_argument("--status", default=None, help="filter: one status or several separated by commas")
    p.add_argument("--limit", type=int, default=50)
    _client_flags(p)
    p.set_defaults(handler=cmd_jobs)

    p = sub.add_parser("status", help="show one job")
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="the full job as JSON")
    p.add_argument("--wait", action="store_true", help="then follow it until it finishes")
    _client_flags(p)
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("cancel", help="cancel a job")
    p.add_argument("id")
    _client_flags(p)
    p.set_defaults(handler=cmd_cancel)

    p = sub.add_parser("download", help="download a job's artifacts, verifying sha256")
    p.add_argument("id")
    p.add_argument("--name", default=None, help="one artifact (default: all), e.g. model.pt")
    p.add_argument("--out", default=".", help="destination folder")
    _client_flags(p)
    p.set_defaults(handler=cmd_download)
