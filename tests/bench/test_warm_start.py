"""Warm-started benchmark groups: every student starts from the final weights of another group's
baseline run of the same seed (``GroupDef.warm_start_from``); the start is trained first when
its weights are not on this machine."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from benchmarks.plan import WARM_PREFIX, plan_runs, warm_start_run
from benchmarks.presets import get_preset
from benchmarks.quality import Runner, run_dir
from benchmarks.store import ResultStore
from mar_core.models.checkpoint_io import safe_load


@pytest.fixture
def warm_preset():
    smoke = get_preset("smoke")
    (group,) = smoke.groups
    warm = dataclasses.replace(
        group,
        name="retina-synth-smoke-warm",
        # one step at a negligible LR: the student ends where it started
        train={**group.train, "iterations": 1, "lr": 1e-12, "warmup_iters": 0},
        students=("baseline",),
        warm_start_from=group.name,
    )
    return dataclasses.replace(smoke, groups=(group, warm))


def test_a_warm_student_starts_from_its_seeds_baseline(warm_preset, tmp_path):
    store, cache = ResultStore(tmp_path / "results"), tmp_path / "cache"
    (run,) = plan_runs(store, warm_preset, ["retina-synth-smoke-warm"])
    src = warm_start_run(warm_preset, warm_preset.groups[1], run.seed)
    assert run.spec["model"]["init_checkpoint"] == WARM_PREFIX + src.key
    assert src.group == "retina-synth-smoke" and src.label == "baseline"
    runner = Runner(warm_preset, store, cache, teachers=tmp_path / "teachers")
    assert runner.run(run)
    # the start was not here: trained first, then the warm run
    assert [(r["group"], r["label"]) for r in runner.summary.ran] == [
        ("retina-synth-smoke", "baseline"),
        ("retina-synth-smoke-warm", "baseline"),
    ]
    start = safe_load(run_dir(cache, src.key) / "model.pt", "start")
    end = safe_load(run_dir(cache, run.key) / "model.pt", "end")
    start, end = (d.get("model", d) for d in (start, end))
    floats = [k for k, v in start.items() if torch.is_floating_point(v)]
    assert floats and all(torch.allclose(start[k], end[k], atol=1e-6) for k in floats)
    # a different seed's start would differ: the start is the seed's own run
    assert warm_start_run(warm_preset, warm_preset.groups[1], 1).key != src.key
