"""Shared fixtures: a tiny synthetic COCO set and small job specs (CPU, seconds to train)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mar_core.spec import JobSpec


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    from mar_core.data import generate_synthetic

    out = tmp_path_factory.mktemp("synth") / "tiny"
    generate_synthetic(out, seed=3, num_train=24, num_val=8, image_size=64)
    return out


def tiny_spec(data: Path, **overrides) -> JobSpec:
    """RetinaNet-R18 with a 32-wide FPN on 64 px images: about 0.05 s a step here."""
    spec = {
        "kind": "train",
        "dataset": {"format": "coco", "path": str(data)},
        "model": {
            "arch": "retinanet",
            "backbone": "resnet18",
            "fpn_channels": 32,
            "min_size": 64,
            "max_size": 64,
            "anchor_scale": 0.5,
        },
        "train": {
            "iterations": 8,
            "batch_size": 4,
            "optimizer": "sgd",
            "schedule": "step",
            "lr": 0.01,
            "warmup_iters": 2,
            "checkpoint_every": 100,
            "log_every": 1,
        },
        "seed": 7,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return JobSpec.model_validate(spec)
