"""Detector registry, strict weight loading, and refusal of unsafe checkpoints."""

import pickle

import pytest
import torch

from mar_core.errors import CheckpointError, UnsafeCheckpointError
from mar_core.models.checkpoint_io import load_state_dict_strict, safe_load, write_model_output
from mar_core.models.loading import load_detector
from mar_core.models.registry import DETECTORS, build_detector
from mar_core.spec import ModelSpec

SMALL = dict(fpn_channels=32, min_size=64, max_size=64)


@pytest.mark.parametrize("arch", ["retinanet", "fcos", "fasterrcnn"])
@pytest.mark.parametrize("backbone", ["resnet18", "mobilenet_v3_large"])
def test_every_arch_builds_and_predicts(arch, backbone):
    model = build_detector(ModelSpec(arch=arch, backbone=backbone, **SMALL), num_classes=4).eval()
    with torch.no_grad():
        out = model([torch.rand(3, 64, 80)])
    assert set(out[0]) == {"boxes", "scores", "labels"}
    assert model.backbone.out_channels == 32


def test_fpn_strides_per_family():
    one = build_detector(ModelSpec(arch="retinanet", **SMALL), 3)
    two = build_detector(ModelSpec(arch="fasterrcnn", **SMALL), 3)
    assert list(one.mar_strides.values()) == [8, 16, 32, 64, 128]
    assert list(two.mar_strides.values()) == [4, 8, 16, 32, 64]


def test_unknown_arch_lists_valid_ones():
    spec = ModelSpec.model_construct(
        arch="yolo", backbone="resnet18", **SMALL, norm="group", anchor_scale=1.0
    )
    with pytest.raises(ValueError, match="retinanet, fcos, fasterrcnn"):
        build_detector(spec, 3)
    assert set(DETECTORS) == {"retinanet", "fcos", "fasterrcnn"}


def test_mismatch_error_lists_first_keys():
    a = build_detector(ModelSpec(arch="retinanet", **SMALL), 3)
    b = build_detector(ModelSpec(arch="retinanet", **SMALL), 5)  # other class count -> shapes differ
    with pytest.raises(CheckpointError, match="shape mismatches: head.classification_head.cls_logits"):
        load_state_dict_strict(a, b.state_dict())
    state = dict(a.state_dict())
    state.pop("backbone.fpn.layer_blocks.0.0.weight")
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(
        CheckpointError,
        match="1 missing keys: backbone.fpn.layer_blocks.0.0.weight.*1 unexpected keys: extra.weight",
    ):
        load_state_dict_strict(a, state)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with path.open("wb") as f:
        pickle.dump({"model": _Exploit(str(marker))}, f)
    torch.save({"w": torch.zeros(1), "payload": _Exploit(str(marker))}, tmp_path / "evil2.pt")
    for p in (path, tmp_path / "evil2.pt"):
        with pytest.raises(UnsafeCheckpointError, match="refused"):
            safe_load(p)
    assert not marker.exists()


def test_run_output_and_plain_state_dict_round_trip(tmp_path):
    spec = ModelSpec(arch="fcos", **SMALL)
    model = build_detector(spec, 4)
    write_model_output(tmp_path / "run", model, spec, ["a", "b", "c"])
    loaded = load_detector(tmp_path / "run")
    assert loaded.class_names == ["a", "b", "c"] and loaded.num_classes == 4
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[k], v)
    # a torchvision-format state_dict file with its architecture named separately
    torch.save(model.state_dict(), tmp_path / "plain.pth")
    again = load_detector(tmp_path / "plain.pth", spec, 4)
    assert again.class_names is None
    with pytest.raises(CheckpointError, match="bare state_dict"):
        load_detector(tmp_path / "plain.pth")
