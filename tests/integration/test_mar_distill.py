"""``mar distill``, the README's example as written (its schedule and input size made tiny): a YOLO
export and a torchvision state_dict in, through the embedded service started for the run, an ONNX
student out that gives the stock torchvision builder's detections. Run again against a service
that now runs (``mar up``), it sends neither the data nor the teacher (the server's request count)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torchvision

from api.sdk import MarClient, RetryPolicy
from mar_core.export import ONNX_OUTPUTS
from mar_core.onnx_parity import compare_detections
from mar_core.predict import load_image
from tests.dataset_writers import CLASSES, write_yolo
from worker.stack import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TINY = {"--iterations": "2", "--image-size": "64"}  # the README's schedule and size, made tiny


def readme_command() -> list[str]:
    """The ``mar distill`` example of the README, its ``TINY`` options replaced."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(mar distill .*?)\n```", text, re.S)
    assert block, "the README has no `mar distill` example"
    argv = shlex.split(block.group(1).replace("\\\n", " "))
    for i, arg in enumerate(argv):
        if arg in TINY:
            argv[i + 1] = TINY[arg]
    return argv


def post_counts(client: MarClient) -> dict[str, float]:
    """POST requests the server answered with a 2xx, by route (its Prometheus request histogram)."""
    counts: dict[str, float] = {}
    for line in client._http.get("/metrics/prometheus").text.splitlines():
        if line.startswith("mar_http_request_duration_seconds_count{") and 'method="POST"' in line:
            if 'status="2xx"' in line:
                route = line.split('route="', 1)[1].split('"', 1)[0]
                counts[route] = counts.get(route, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def test_the_readme_example_distils_a_yolo_export_into_an_onnx_student(tmp_path):
    argv = readme_command()
    opt = {argv[i]: argv[i + 1] for i in range(1, len(argv) - 1) if argv[i].startswith("--")}
    write_yolo(tmp_path / opt["--data"], n=4)
    teacher = torchvision.models.detection.__dict__[opt["--teacher-model"]]
    torch.save(
        teacher(weights=None, weights_backbone=None, num_classes=len(CLASSES) + 1).state_dict(),
        tmp_path / opt["--teacher"],
    )
    env = {
        **os.environ,
        "MAR_STATE_DIR": str(tmp_path / "state"),
        "MAR_API_URL": f"http://127.0.0.1:{free_port()}",  # nothing answers: the embedded service starts
        "MAR_TRAINING_THREADS": "1",
    }
    env.pop("MAR_API_KEY", None)
    mar = [sys.executable, "-m", "mar_cli.main"]

    def distill() -> str:
        r = subprocess.run(
            [*mar, *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert r.returncode == 0, f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        assert "onnx check: ok" in r.stdout and "AP on the validation split: teacher" in r.stdout, r.stdout
        return r.stdout

    assert "starting the embedded service" in distill()
    # again, against a service that now runs (`mar up` on the same state): nothing is sent twice
    port = int(env["MAR_API_URL"].rsplit(":", 1)[1])
    up = subprocess.Popen(
        [*mar, "up", "--port", str(port), "--workers", "2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        env["MAR_API_KEY"] = (tmp_path / "state" / "api_key").read_text().strip()
        with MarClient(
            env["MAR_API_URL"], env["MAR_API_KEY"], retry=RetryPolicy(attempts=12, max_wait=5)
        ) as client:
            client.ready()
            assert "starting the embedded service" not in distill()
            counts = post_counts(client)
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        up.wait(60)
    assert counts == {"/jobs": 2.0}, counts  # the student and its baseline; no dataset, no checkpoint

    out = tmp_path / opt["--out"]
    spec = json.loads((out / "report.json").read_text())["spec"]
    assert str(tmp_path) not in json.dumps(spec) and spec["teacher"]["upload"]  # ids, no server path
    assert {"model.pt", "model.json", "report.json", "model.onnx"} <= {p.name for p in out.iterdir()}
    assert (out / "baseline" / "model.pt").is_file()
    size = int(opt["--image-size"])
    stock = torchvision.models.detection.__dict__[opt["--student"]](
        weights=None, weights_backbone=None, num_classes=len(CLASSES) + 1, min_size=size, max_size=size
    )
    stock.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    stock.eval()
    # one thread, as mar_core.onnx_parity runs it: a 2-step model has near-equal scores, and a
    # thread pool's other split of a sum can flip which of two overlapping boxes the NMS keeps
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(out / "model.onnx"), options, providers=["CPUExecutionProvider"])
    compared = 0
    for image_file in sorted((tmp_path / opt["--data"] / "images" / "val").glob("*.png")):
        image = load_image(image_file)
        with torch.no_grad():
            ref = {k: v.numpy() for k, v in stock([image])[0].items()}
        got = dict(zip(ONNX_OUTPUTS, session.run(None, {"image": image.numpy()})))
        parity = compare_detections(ref, got, stock.roi_heads.score_thresh)
        assert parity.usable, (image_file.name, parity)
        compared += parity.compared
    assert compared > 0 and np.isfinite(compared)
