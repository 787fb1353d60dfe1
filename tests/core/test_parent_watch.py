"""``on_parent_gone``: the action runs once the parent dies (the process is re-parented)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

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


STACK_OWNER = """
import sys, time
from pathlib import Path
from worker.stack import Stack, embedded_env, free_port
state = Path(sys.argv[1])
stack = Stack(embedded_env(state), log_dir=state / "logs")
part = stack.start_api("127.0.0.1", free_port(), timeout=120)
print(part.pid, flush=True)
time.sleep(300)
"""


def test_a_stack_part_stops_when_its_owner_is_killed(tmp_path):
    """``mar up`` / ``mar demo`` / the test stacks SIGKILLed: their API (like every part) stops
    itself instead of living on with the port; SIGTERM, its normal stop."""
    from worker.procs import pid_alive, signal_group

    owner = subprocess.Popen(
        [sys.executable, "-c", STACK_OWNER, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    api_pid = None
    try:
        api_pid = int(owner.stdout.readline())
        assert pid_alive(api_pid)
        owner.kill()
        owner.wait()
        deadline = time.monotonic() + 30
        while pid_alive(api_pid):
            assert time.monotonic() < deadline, "the API outlived the process that started it"
            time.sleep(0.1)
    finally:
        owner.kill()
        if api_pid:
            signal_group(api_pid, 9)
