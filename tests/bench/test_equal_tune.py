"""``mar bench equal-tune``: one grid for every KD method, one rule for the pick (no training here:
records are written by hand)."""

from __future__ import annotations

import pytest

from benchmarks.equal_tune import (
    CALIBRATION_POINTS,
    SCALES,
    pick_aps,
    picks,
    plan_pick_seeds,
    plan_points,
    scaled,
)
from benchmarks.equal_tune_report import equal_tune_section
from benchmarks.plan import student_run
from benchmarks.presets import CALIBRATED_PEERS, PEERS, get_preset
from benchmarks.store import ResultStore
from mar_cli.main import main
from tests.bench.records import fake_result


def test_every_method_gets_the_same_grid_and_a_peers_calibration_point_is_its_group_run():
    preset = get_preset("cpu")
    short = preset.group("retina-synth-short")
    runs = plan_points(preset)
    assert len(runs) == len(CALIBRATION_POINTS) * len(SCALES)
    assert {r.extra["method"] for r in runs} == {
        "mar",
        "mar_raw",
        *(p for p in PEERS if p in CALIBRATED_PEERS),
    }
    for peer in PEERS:
        at_one = next(r for r in runs if r.extra == {"method": peer, "scale": 1.0})
        assert at_one.key == student_run(preset, short, peer, 0).key  # trained once
    assert len({r.key for r in runs}) == len(runs)


def test_scaling_touches_the_kd_weights_only():
    mar = scaled(CALIBRATION_POINTS["mar"], 3.0)
    assert (mar["alpha"], mar["beta"], mar["gamma"]) == (0.84, 1.38, 90.0)
    assert mar["feature_norm"] == "channel"
    fgd = scaled({"method": "fgd", **CALIBRATED_PEERS["fgd"], "temperature": 0.5}, 1 / 3)
    # 3 significant digits: 1.27e-9
    assert fgd["fgd_alpha"] == pytest.approx(3.8e-9 / 3, rel=5e-3) and fgd["temperature"] == 0.5


def test_the_pick_is_the_best_seed0_point_a_tie_keeps_the_calibration_point(tmp_path):
    preset = get_preset("cpu")
    store = ResultStore(tmp_path)
    cwd = {r.extra["scale"]: r for r in plan_points(preset, ["cwd"])}
    pkd = {r.extra["scale"]: r for r in plan_points(preset, ["pkd"])}
    for scale, ap in zip(SCALES, (0.18, 0.20, 0.23)):
        fake_result(store, cwd[scale], ap)
    for scale, ap in zip(SCALES, (0.17, 0.19, 0.19)):
        fake_result(store, pkd[scale], ap)
    fake_result(store, plan_points(preset, ["mgd"])[0], 0.1)  # one point only: no pick yet
    found = {p.method: p for p in picks(store, preset)}
    assert found["cwd"].scale == 3.0 and found["pkd"].scale == 1.0 and found["mgd"].scale is None
    follow = plan_pick_seeds(store, preset)
    assert {(r.extra["method"], r.extra["scale"], r.seed) for r in follow} == {
        ("cwd", 3.0, 1),
        ("cwd", 3.0, 2),
        ("pkd", 1.0, 1),
        ("pkd", 1.0, 2),
    }
    follow_aps = {("cwd", 1): 0.21, ("cwd", 2): 0.25, ("pkd", 1): 0.18, ("pkd", 2): 0.20}
    for run in follow:
        fake_result(store, run, follow_aps[run.extra["method"], run.seed])
    assert pick_aps(store, preset, found["cwd"]) == [0.23, 0.21, 0.25]
    text = "\n".join(equal_tune_section(store, ["cpu"]))
    assert "| cwd | 18.00 | 20.00 | 23.00 | x3 | 23.00 ± 2.00 (n=3) |" in text
    assert "| mgd | 10.00 | missing | missing | grid incomplete | - |" in text
    assert "Ranked at their picked points, every seed in: 1. cwd 23.00, 2. pkd 19.00." in text
    assert "Picked at the edge of the grid, so a wider grid may do better: cwd (x3)." in text


def test_cli_lists_the_grid_and_refuses_unknown_methods_and_scales(tmp_path, capsys):
    base = ["bench", "equal-tune", "--results", str(tmp_path), "--list"]
    assert main([*base, "--methods", "cwd", "--scales", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"missing cwd x3 seed 0 [{plan_points(get_preset('cpu'), ['cwd'])[2].key[:12]}]"
    ]
    assert main([*base, "--methods", "nope"]) == 2
    assert "unknown method(s) nope" in capsys.readouterr().err
    assert main([*base, "--scales", "2"]) == 2
    assert "--scales: valid: 0.333, 1, 3" in capsys.readouterr().err
