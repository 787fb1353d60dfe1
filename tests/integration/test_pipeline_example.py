"""``examples/pipeline.py`` (the typed SDK in a pipeline step) against the embedded service
(``mar up``): a job that reaches the AP threshold is promoted; run again with the same idempotency
key and a threshold it misses, it gets the same job back, exits 1 and leaves the promoted model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from api.sdk import MarClient, RetryPolicy
from tests.conftest import tiny_spec
from worker.stack import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_the_pipeline_example_promotes_above_the_threshold_only(tiny_synth, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "MAR_STATE_DIR": str(tmp_path / "state"),
        "MAR_API_URL": url,
        "MAR_TRAINING_THREADS": "1",
    }
    up = subprocess.Popen(
        [sys.executable, "-m", "mar_cli.main", "up", "--port", url.rsplit(":", 1)[1]],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        with MarClient(url, retry=RetryPolicy(attempts=12, max_wait=5)) as probe:
            probe.health()
        env["MAR_API_KEY"] = (tmp_path / "state" / "api_key").read_text().strip()
        spec = tiny_spec(tiny_synth, train={"iterations": 2, "eval_max_images": 2}).to_json_dict()
        (tmp_path / "spec.json").write_text(json.dumps(spec))
        dest = tmp_path / "models" / "current"

        def step(min_ap: float) -> subprocess.CompletedProcess[str]:
            argv = [
                "spec.json",
                "--data",
                str(tiny_synth),
                "--min-ap",
                str(min_ap),
                "--promote-to",
                str(dest),
            ]
            return subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "examples" / "pipeline.py"),
                    *argv,
                    "--idempotency-key",
                    "nightly-1",
                ],
                cwd=tmp_path,
                env={**env, "PYTHONPATH": str(ROOT)},
                capture_output=True,
                text=True,
                timeout=300,
            )

        first = step(0.0)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "promoted to" in first.stdout and {p.name for p in dest.iterdir()} == {
            "model.pt",
            "model.json",
            "report.json",
        }
        promoted = (dest / "model.pt").read_bytes()
        second = step(1.01)
        assert second.returncode == 1 and "not promoted" in second.stderr, second.stdout + second.stderr
        assert first.stdout.split()[1] == second.stdout.split()[1]  # the same job id: not trained again
        assert (dest / "model.pt").read_bytes() == promoted
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        up.wait(60)
