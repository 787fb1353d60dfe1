"""Warm-started benchmark groups: every student starts from the final weights of another group's
baseline run of the same seed (``GroupDef.warm_start_from``); the start is trained first when
its weights are not on this machine."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from benchmarks.plan import WARM_PREFIX, student_run, warm_start_run
from benchmarks.presets import get_preset
from benchmarks.quality import Runner, run_dir
from benchmarks.report import render_report
from benchmarks.roster import plan_runs
from benchmarks.store import ResultStore
from benchmarks.warm_start import START_FIELD, run_state, start_stamp
from mar_core.models.checkpoint_io import safe_load
from tests.bench.records import fake_result


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
    # the warm result names the start it continued from; run again, it is cached
    start_rec = store.get(src.key)
    assert store.get(run.key)[START_FIELD] == start_stamp(start_rec)
    assert Runner(warm_preset, store, cache, teachers=tmp_path / "teachers").run(run)
    # the start trained again elsewhere (a new result on record): the warm result is stale and
    # runs again, from the start's weights that are here, without training the start
    store.put({**start_rec, "finished_at": "2099-01-01T00:00:00+00:00"})
    assert run_state(store, warm_preset, run) == "stale"
    again = Runner(warm_preset, store, cache, teachers=tmp_path / "teachers")
    assert again.run(run)
    assert [(r["group"], r["label"]) for r in again.summary.ran] == [("retina-synth-smoke-warm", "baseline")]
    assert run_state(store, warm_preset, run) == "cached"


def _timed(store: ResultStore, run, ap: float, finished_at: str) -> None:
    fake_result(store, run, ap)
    store.put({**store.get(run.key), "finished_at": finished_at})


def test_a_result_continued_from_an_earlier_start_is_left_out(tmp_path):
    """Records without a ``warm_start`` stamp belong to the start they finished after; a start
    trained again later (its result replaced) leaves them out of the report and the plan."""
    cpu = get_preset("cpu")
    warm = cpu.group("retina-synth-smallgap-warm")
    store = ResultStore(tmp_path)
    _timed(store, warm_start_run(cpu, warm, 0), 0.29, "2026-12-07T00:02:13+00:00")
    old = student_run(cpu, warm, "baseline", 0)
    new = student_run(cpu, warm, "mar", 0)
    _timed(store, old, 0.30, "2026-12-02T06:10:10+00:00")  # continued from the start before
    _timed(store, new, 0.31, "2026-12-07T00:20:00+00:00")
    assert [run_state(store, cpu, r) for r in (old, new)] == ["stale", "cached"]
    section = render_report(store, ["cpu"]).split("(`retina-synth-smallgap-warm`)")[1].split("###")[0]
    assert "AP at the start -> MAR after 800 more steps at lr 0.0001): s0: 29.00 -> 31.00." in section
    # a stamp naming another start is stale whatever the times say
    store.put({**store.get(new.key), START_FIELD: {"key": "x", "finished_at": None, "AP": 0.2}})
    assert run_state(store, cpu, new) == "stale"


def test_the_report_states_what_continuing_adds_over_each_start(tmp_path):
    """The warm group's section: per seed the start's AP and the continued runs' (no KD, MAR and
    every peer that ran), the mean gains, and whether the start was converged by the convergence
    check's bound."""
    cpu = get_preset("cpu")
    warm = cpu.group("retina-synth-smallgap-warm")
    store = ResultStore(tmp_path)
    for seed, (start, base, mar) in enumerate([(0.26, 0.29, 0.30), (0.27, 0.30, 0.32)]):
        fake_result(store, warm_start_run(cpu, warm, seed), start)
        fake_result(store, student_run(cpu, warm, "baseline", seed), base)
        fake_result(store, student_run(cpu, warm, "mar", seed), mar)
    fake_result(store, student_run(cpu, warm, "crosskd x9", 0), 0.25)
    section = render_report(store, ["cpu"]).split("(`retina-synth-smallgap-warm`)")[1].split("###")[0]
    assert (
        "AP at the start -> baseline (no KD) / MAR / crosskd x9 after 800 more steps at lr 0.0001): "
        "s0: 26.00 -> 29.00 / 30.00 / 25.00; s1: 27.00 -> 30.00 / 32.00 / -. Mean gain over the start, no KD: "
        "+3.00 ± 0.00 AP (n=2). Mean gain over the start, MAR: +4.50 ± 0.71 AP (n=2). Mean gain over the start, "
        "crosskd x9: -1.00 AP (n=1). So the start was not converged"
    ) in section


def test_a_start_within_the_bound_reads_as_converged(tmp_path):
    cpu = get_preset("cpu")
    warm = cpu.group("retina-synth-smallgap-warm")
    store = ResultStore(tmp_path)
    fake_result(store, warm_start_run(cpu, warm, 0), 0.26)
    fake_result(store, student_run(cpu, warm, "baseline", 0), 0.262)
    section = render_report(store, ["cpu"]).split("(`retina-synth-smallgap-warm`)")[1].split("###")[0]
    assert (
        "s0: 26.00 -> 26.20. Mean gain over the start, no KD: +0.20 AP (n=1). So the start was converged"
        in section
    )
