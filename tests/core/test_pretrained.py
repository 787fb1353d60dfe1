"""Pretrained starts, offline: weight files written here in torchvision's key layout (random values)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models import mobilenet_v3_large, resnet18, resnet34

from mar_core.errors import CheckpointError
from mar_core.models.pretrained import hub_checkpoints_dir, load_backbone_weights, load_warm_start
from mar_core.models.registry import build_detector
from mar_core.spec import ModelSpec


@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = hub_checkpoints_dir()
    folder.mkdir(parents=True)
    return folder


def _detector(backbone: str = "resnet18", norm: str = "frozen_batch", arch: str = "retinanet"):
    spec = ModelSpec(arch=arch, backbone=backbone, norm=norm, fpn_channels=16, min_size=64, max_size=64)
    return build_detector(spec, 3)


def _random_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        k: torch.randn(v.shape, generator=g) if v.is_floating_point() else v
        for k, v in model.state_dict().items()
    }


def test_a_weights_name_resolves_to_torchvisions_file_and_every_trunk_tensor_loads(torch_home):
    state = _random_state(resnet18(weights=None))
    torch.save(state, torch_home / "resnet18-f37072fd.pth")  # ResNet18_Weights.IMAGENET1K_V1's file name
    model = _detector()
    path = load_backbone_weights(model, "ResNet18_Weights.IMAGENET1K_V1")
    assert path == torch_home / "resnet18-f37072fd.pth"
    body = model.backbone.body.state_dict()
    trunk = {
        k: v for k, v in state.items() if not k.startswith("fc.") and not k.endswith("num_batches_tracked")
    }
    assert set(body) == set(trunk)
    assert all(torch.equal(body[k], trunk[k]) for k in trunk)


def test_mobilenet_file_loads_into_the_feature_trunk_of_a_faster_rcnn(tmp_path):
    state = _random_state(mobilenet_v3_large(weights=None))
    file = tmp_path / "mnv3.pth"
    torch.save(state, file)
    model = _detector("mobilenet_v3_large", arch="fasterrcnn")
    load_backbone_weights(model, str(file))
    body = model.backbone.body.state_dict()
    for key, value in body.items():
        assert torch.equal(value, state[f"features.{key}"]), key


def test_a_missing_file_names_the_file_and_the_folder(torch_home):
    with pytest.raises(CheckpointError) as err:
        load_backbone_weights(_detector(), "ResNet18_Weights.IMAGENET1K_V1")
    assert "resnet18-f37072fd.pth" in err.value.message and str(torch_home) in err.value.message
    assert err.value.param == "model.backbone_weights"


def test_a_file_of_another_backbone_fails_naming_the_first_mismatches(tmp_path):
    file = tmp_path / "r34.pth"
    torch.save(_random_state(resnet34(weights=None)), file)
    with pytest.raises(CheckpointError, match=r"layer1\.2\.|unexpected|missing"):
        load_backbone_weights(_detector("resnet18"), str(file))


def test_batchnorm_statistics_into_a_groupnorm_trunk_say_which_norm_to_use(tmp_path):
    file = tmp_path / "r18.pth"
    torch.save(_random_state(resnet18(weights=None)), file)
    with pytest.raises(CheckpointError, match="frozen_batch"):
        load_backbone_weights(_detector(norm="group"), str(file))


def test_an_unknown_weights_name_is_refused():
    with pytest.raises(CheckpointError, match="not a torchvision weights name"):
        load_backbone_weights(_detector(), "ResNet18_Weights.NO_SUCH")


def test_warm_start_loads_a_whole_detector(tmp_path):
    source = _detector(norm="group")
    file = tmp_path / "model.pt"
    torch.save(_random_state(source), file)
    target = _detector(norm="group")
    load_warm_start(target, file)
    saved = torch.load(file, weights_only=True)
    assert all(torch.equal(v, saved[k]) for k, v in target.state_dict().items())
