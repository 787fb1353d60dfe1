"""Entry point of the ``mar`` console script.

Handlers return an exit code. Input errors (``MarError`` with ``exit_code`` 2) print their
message to stderr and exit 2; nothing else calls ``sys.exit``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from mar_core.cli import bench_cmd, data_cmd, run_cmd, service_cmd, stack_cmd
from mar_core.errors import MarError

COMMAND_MODULES = (run_cmd, data_cmd, service_cmd, stack_cmd, bench_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mar", description="MAR distillation for object detectors")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args) or 0)
    except MarError as e:
        print(f"mar {args.command}: error: {e.message}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"mar {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
