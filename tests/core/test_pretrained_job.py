"""A job's pretrained start (backbone weights, warm start) and its ``export`` option, end to end."""

from __future__ import annotations

import json

import pytest
import torch
from torchvision.models import resnet18

from mar_core.errors import MarError
from mar_core.run import run_job
from tests.conftest import tiny_spec

# A learning rate so small that one step leaves the loaded weights equal within 1e-6.
FROZEN = {"iterations": 1, "lr": 1e-12, "warmup_iters": 0, "eval_max_images": 1}


def test_a_job_starts_its_trunk_from_backbone_weights(tiny_synth, tmp_path):
    torch.manual_seed(1)  # torchvision's own init (trainable scale), BatchNorm statistics moved off 0 / 1
    state = resnet18(weights=None).state_dict()
    for key, value in state.items():
        if key.endswith(("running_mean", "bn1.bias", "bn2.bias")):
            state[key] = 0.1 * torch.randn(value.shape)
        elif key.endswith(("running_var", "bn1.weight", "bn2.weight")):
            state[key] = 1 + 0.1 * torch.rand(value.shape)
    file = tmp_path / "ckpt" / "r18.pth"
    file.parent.mkdir()
    torch.save(state, file)
    events = []
    spec = tiny_spec(tiny_synth, model={"backbone_weights": "r18.pth"}, train=FROZEN)
    assert spec.model.norm == "frozen_batch"  # how torchvision runs a pretrained trunk
    run_job(spec, tmp_path / "run", checkpoint_roots=[tmp_path / "ckpt"], progress=events.append)
    weights = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    for key in ("conv1.weight", "layer4.1.conv2.weight", "layer2.0.bn1.running_var"):
        assert torch.allclose(weights[f"backbone.body.{key}"], state[key], atol=1e-6), key
    assert any("backbone weights loaded from r18.pth" in e.get("message", "") for e in events)
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    assert "backbone_weights" not in card["model"] and card["model"]["norm"] == "frozen_batch"


def test_backbone_weights_outside_the_roots_are_refused(tiny_synth, tmp_path):
    spec = tiny_spec(tiny_synth, model={"backbone_weights": str(tmp_path / "elsewhere.pth")}, train=FROZEN)
    (tmp_path / "ckpt").mkdir()
    with pytest.raises(MarError) as err:
        run_job(spec, tmp_path / "run", checkpoint_roots=[tmp_path / "ckpt"])
    assert err.value.param == "model.backbone_weights"


def test_warm_start_from_a_run_folder_and_the_export_option(tiny_synth, tmp_path):
    first = tmp_path / "ckpt" / "first"
    run_job(tiny_spec(tiny_synth, train={"iterations": 2, "eval_max_images": 1}), first)
    events = []
    spec = tiny_spec(
        tiny_synth, model={"init_checkpoint": "first"}, train=FROZEN, export=["onnx", "torchscript"]
    )
    run_job(spec, tmp_path / "second", checkpoint_roots=[tmp_path / "ckpt"], progress=events.append)
    before = torch.load(first / "model.pt", weights_only=True)
    after = torch.load(tmp_path / "second" / "model.pt", weights_only=True)
    assert all(torch.allclose(after[k].float(), v.float(), atol=1e-6) for k, v in before.items())
    artifacts = {e["name"] for e in events if e["type"] == "artifact"}
    assert {"model.onnx", "model.torchscript.pt", "model.pt", "model.json"} <= artifacts
    assert (tmp_path / "second" / "model.onnx").stat().st_size > 0
