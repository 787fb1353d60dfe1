"""The ``mar`` command composed in ``mar_cli``: every command named once, registered by its module,
and only the chosen command's module imported."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from mar_cli.main import COMMANDS, build_parser, main

REPO = Path(__file__).resolve().parents[2]


def test_each_module_registers_exactly_the_commands_the_index_gives_it():
    by_module = defaultdict(set)
    for name, cmd in COMMANDS.items():
        by_module[cmd.module].add(name)
    for module, names in by_module.items():
        added = []
        sub = argparse.ArgumentParser().add_subparsers()

        def add(name, _sub=sub, _added=added):
            _added.append(name)
            return _sub.add_parser(name)

        importlib.import_module(module).register(add)
        assert set(added) == names, module


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_parses_its_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        build_parser(command).parse_args([command, "--help"])
    assert done.value.code == 0
    assert COMMANDS[command].help.split()[0] in capsys.readouterr().out


def test_an_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as done:
        main(["no-such-command"])
    assert done.value.code == 2
    assert "invalid choice: 'no-such-command'" in capsys.readouterr().err


PROBE = """
import sys
from mar_cli.main import build_parser
build_parser(sys.argv[1] if len(sys.argv) > 1 else None)
heavy = sorted({m.partition('.')[0] for m in sys.modules} & {'torch', 'torchvision', 'celery', 'sqlalchemy'})
print('HEAVY', ','.join(heavy))
"""


@pytest.mark.parametrize(
    ("argv", "heavy"),
    [
        ([], set()),  # mar --help
        (["submit"], set()),  # a client command: httpx only
        (["bench"], {"torch"}),  # the module of the command given does load (the probe sees imports)
    ],
)
def test_only_the_chosen_commands_module_is_imported(argv, heavy):
    r = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("HEAVY"))
    loaded = set(filter(None, line.removeprefix("HEAVY").strip().split(",")))
    assert heavy <= loaded if heavy else loaded == set(), loaded
