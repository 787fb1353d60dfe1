"""Server-side commands on this host's database (``DATABASE_URL``): ``mar api`` (the HTTP API),
``mar db upgrade`` and ``mar apikey create|list|revoke``."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from api.db import keys_repo
from api.db.models import DEFAULT_PROJECT
from api.db.session import init_db, make_engine, make_session_factory, session_scope
from api.http_server import server_config
from api.main import create_app
from api.settings import get_settings
from mar_core.parent_watch import stop_with_parent_from_env

log = logging.getLogger(__name__)


def _quiet_alembic() -> None:
    """Alembic logs every migration step at INFO; keep it for ``mar -v``."""
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("alembic").setLevel(logging.WARNING)


def _engine():
    _quiet_alembic()
    engine = make_engine(str(get_settings().database_url))
    init_db(engine)
    return engine


def cmd_api(args: argparse.Namespace) -> int:
    """Run the API with uvicorn (migrations run at startup; read deadlines and the connection
    bound of ``api.http_server``)."""
    _quiet_alembic()
    stop_with_parent_from_env("api")
    config = server_config(create_app(), get_settings(), args.host, args.port, args.log_level)
    uvicorn.Server(config).run()
    return 0


def cmd_db_upgrade(_args: argparse.Namespace) -> int:
    engine = _engine()
    engine.dispose()
    print(f"database at head: {engine.url.render_as_string(hide_password=True)}")
    return 0


def _project_name(value: str) -> str:
    try:
        return keys_repo.check_project_name(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_apikey_create(args: argparse.Namespace) -> int:
    engine = _engine()
    with session_scope(make_session_factory(engine)) as s:
        row, key = keys_repo.create_api_key(
            s, args.name, project=args.project, admin=args.admin, high_priority=args.high_priority
        )
    engine.dispose()
    scope = "every project (admin)" if row.admin else f"project {row.project}"
    print(f"created API key {row.id} ({row.name}) for {scope}; it is shown only once:", file=sys.stderr)
    print(key)
    return 0


def cmd_apikey_list(_args: argparse.Namespace) -> int:
    engine = _engine()
    with session_scope(make_session_factory(engine)) as s:
        rows = [
            (k.id, k.name, "*" if k.admin else k.project, k.prefix + "...", k.created_at, k.revoked_at)
            for k in keys_repo.list_api_keys(s)
        ]
    engine.dispose()
    print(f"{'ID':<14}{'NAME':<24}{'PROJECT':<18}{'PREFIX':<18}{'CREATED':<22}REVOKED")
    for key_id, name, project, prefix, created, revoked in rows:
        revoked_s = revoked.strftime("%Y-%m-%d %H:%M:%S") if revoked else "-"
        created_s = created.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{key_id:<14}{name[:23]:<24}{project[:17]:<18}{prefix:<18}{created_s:<22}{revoked_s}")
    return 0


def cmd_apikey_revoke(args: argparse.Namespace) -> int:
    engine = _engine()
    with session_scope(make_session_factory(engine)) as s:
        ok = keys_repo.revoke_api_key(s, args.id)
    engine.dispose()
    if not ok:
        print(f"mar apikey revoke: no active key with id {args.id}", file=sys.stderr)
        return 1
    print(f"revoked {args.id}")
    return 0


def register(add) -> None:
    """Add ``api``, ``db`` and ``apikey``; ``add(name)`` returns a command's parser."""
    p = add("api")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--log-level", default="info")
    p.set_defaults(handler=cmd_api)

    p = add("db")
    dsub = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    dsub.add_parser("upgrade", help="apply the Alembic migrations up to head").set_defaults(
        handler=cmd_db_upgrade
    )

    p = add("apikey")
    ksub = p.add_subparsers(dest="apikey_command", required=True, metavar="ACTION")
    k = ksub.add_parser("create", help="create a key and print it once")
    k.add_argument("name")
    k.add_argument(
        "--project",
        type=_project_name,
        default=DEFAULT_PROJECT,
        help=f"the project the key sees and acts in (created when new; default {DEFAULT_PROJECT})",
    )
    k.add_argument("--admin", action="store_true", help="the key sees and acts on every project")
    k.add_argument(
        "--high-priority", action="store_true", help='the key may submit jobs with priority "high"'
    )
    k.set_defaults(handler=cmd_apikey_create)
    ksub.add_parser("list", help="list keys (never the keys themselves)").set_defaults(
        handler=cmd_apikey_list
    )
    k = ksub.add_parser("revoke", help="revoke a key by id")
    k.add_argument("id")
    k.set_defaults(handler=cmd_apikey_revoke)
