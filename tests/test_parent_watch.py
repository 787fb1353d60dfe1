"""``on_parent_gone``: the action runs once the parent dies (the process is re-parented)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import os, sys, time
sys.path.insert(0, {root!r})
from mar_core.parent_watch import on_parent_gone
marker = {marker!r}
on_parent_gone(os.getppid(), lambda: (open(marker, "w").write("gone"), os._exit(0)), "t", interval=0.05)
open(marker + ".ready", "w").close()
time.sleep(30)
"""

PARENT = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", {child!r}])
time.sleep(30)
"""


def test_action_runs_when_the_parent_dies_and_not_before(tmp_path):
    marker = str(tmp_path / "marker")
    child = CHILD.format(root=str(ROOT), marker=marker)
    parent = subprocess.Popen([sys.executable, "-c", PARENT.format(child=child)])
    try:
        deadline = time.monotonic() + 30
        while not Path(marker + ".ready").exists():
            assert time.monotonic() < deadline, "child did not start"
            time.sleep(0.05)
        time.sleep(0.3)
        assert not Path(marker).exists()  # parent alive: nothing happens
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while not Path(marker).exists():
        assert time.monotonic() < deadline, "the action did not run after the parent died"
        time.sleep(0.05)
    assert Path(marker).read_text() == "gone"
