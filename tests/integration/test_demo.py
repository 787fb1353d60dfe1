"""``mar demo --quick``: the README's demo command, end to end on the embedded default (a real API,
worker and reaper in their own processes; a tiny teacher trained through the service, then the
two students), so that it cannot rot. The full demo is the same code with bigger specs and the
published teacher."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_quick_demo_trains_teacher_and_both_students_through_the_api(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAR_")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mar_cli.main",
            "demo",
            "--quick",
            "--port",
            "0",
            "--state",
            str(tmp_path / "state"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    for row in ("teacher R34-FPN128", "student R18-FPN64 baseline", "student R18-FPN64 + MAR"):
        line = next((ln for ln in proc.stdout.splitlines() if ln.strip().startswith(row)), None)
        assert line is not None and " AP " in line and "n/a" not in line, out[-4000:]
        assert Path(line.split()[-1]).is_file(), line  # the weights it names exist
    assert "download: GET http://127.0.0.1:" in proc.stdout
    last = proc.stdout.strip().splitlines()[-1]  # the demo ends with its compare view
    assert "/ui/#/compare?jobs=" in last and "&teacher=" in last, last
