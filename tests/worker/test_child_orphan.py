"""A training process whose supervisor is SIGKILLed dies within about a second, also while it is
still starting: its supervisor watch runs before the slow training imports (torch), which take
seconds and, on a loaded machine, longer than the lease (the soak saw a retry's process start
beside such an orphan)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from worker.procs import wait_gone

SUPERVISOR = """
import os, subprocess, sys, time
child = subprocess.Popen(
    [sys.executable, "-m", "worker.child", "job-x", "--worker-id", "w", "--result", sys.argv[1],
     "--parent-pid", str(os.getpid())],
    start_new_session=True,
)
print(child.pid, flush=True)
time.sleep(60)
"""


def test_the_child_module_does_not_import_torch_before_main():
    code = "import sys, worker.child; print('torch' in sys.modules, 'worker.child_run' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_an_orphaned_child_dies_while_still_starting(tmp_path):
    env = {**os.environ, "MAR_STATE_DIR": str(tmp_path / "state"), "DATABASE_URL": ""}
    sup = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(tmp_path / "result.json")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    child = int(sup.stdout.readline())
    sup.kill()  # kill -9 of the supervisor, the child just started (importing)
    killed = time.monotonic()
    sup.wait()
    try:
        assert wait_gone(child, 4.0), "the orphaned training process outlived its supervisor"
        print(f"orphan gone {time.monotonic() - killed:.2f} s after its supervisor")
    finally:
        try:
            os.killpg(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not (tmp_path / "result.json").exists()
