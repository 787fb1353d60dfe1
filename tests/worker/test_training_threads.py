"""The embedded stack trains with cores - 1 torch threads unless MAR_TRAINING_THREADS says
otherwise, and the training process applies the setting."""

from __future__ import annotations

import os
import subprocess
import sys

from api.settings import Settings
from worker.stack import embedded_env, embedded_training_threads


def test_the_embedded_stack_leaves_one_core_to_the_rest_unless_told(tmp_path):
    assert embedded_training_threads() == max(1, (os.cpu_count() or 1) - 1)
    env = embedded_env(tmp_path, base={})
    assert env["MAR_TRAINING_THREADS"] == str(embedded_training_threads())
    assert embedded_env(tmp_path, base={"MAR_TRAINING_THREADS": "3"})["MAR_TRAINING_THREADS"] == "3"
    assert Settings(state_dir=tmp_path).training_threads is None  # a dedicated worker: torch's default


def test_the_training_process_applies_it(tmp_path):
    code = (
        "import threading, pathlib, torch; from worker import child_run;"
        "child_run.run('no-such-job', 'w', pathlib.Path(r'%s'), threading.Event());"
        "print(torch.get_num_threads())" % (tmp_path / "result.json")
    )
    env = {**embedded_env(tmp_path / "state"), "MAR_TRAINING_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "1"
