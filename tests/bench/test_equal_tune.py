"""``mar bench equal-tune``: one grid for every KD method, one rule for the pick (no training here:
records are written by hand)."""

from __future__ import annotations

import pytest

from benchmarks.equal_tune import pick_aps, picks, plan_pick_seeds, plan_points, third_scale
from benchmarks.equal_tune_report import equal_tune_section
from benchmarks.group_view import GroupView
from benchmarks.plan import student_run
from benchmarks.presets import CALIBRATED_PEERS, FALLBACK_PEERS, PEERS, Preset, get_preset
from benchmarks.report_glance import glance_section
from benchmarks.roster import best_peers, plan_runs
from benchmarks.store import ResultStore
from benchmarks.tune_points import CALIBRATION_POINTS, FIRST_SCALES, parse_point, point_label, scaled
from mar_cli.main import main
from tests.bench.records import fake_result


def test_every_method_starts_with_the_same_two_points_and_a_peers_calibration_point_is_its_group_run(
    tmp_path,
):
    preset = get_preset("cpu")
    short = preset.group("retina-synth-short")
    runs = plan_points(ResultStore(tmp_path), preset)
    assert len(runs) == len(CALIBRATION_POINTS) * len(FIRST_SCALES)  # the third waits for them
    assert {r.extra["method"] for r in runs} == {
        "mar",
        "mar_raw",
        *(p for p in PEERS if p in CALIBRATED_PEERS),
    }
    for peer in PEERS:
        at_one = next(r for r in runs if r.extra == {"method": peer, "scale": 1.0})
        assert at_one.key == student_run(preset, short, peer, 0).key  # trained once
    assert len({r.key for r in runs}) == len(runs)


def test_the_third_point_steps_on_in_the_direction_that_helped():
    assert third_scale({1.0: 0.20, 3.0: 0.23}) == 9.0
    assert third_scale({1.0: 0.20, 3.0: 0.18}) == 1 / 3
    assert third_scale({1.0: 0.20, 3.0: 0.20}) == 1 / 3  # no gain from x3: look below
    assert third_scale({1.0: 0.20, 3.0: None}) is None


def test_scaling_touches_the_kd_weights_only():
    mar = scaled(CALIBRATION_POINTS["mar"], 3.0)
    assert (mar["alpha"], mar["beta"], mar["gamma"]) == (0.84, 1.38, 90.0)
    assert mar["feature_norm"] == "channel"
    fgd = scaled({"method": "fgd", **CALIBRATED_PEERS["fgd"], "temperature": 0.5}, 1 / 3)
    # 3 significant digits: 1.27e-9
    assert fgd["fgd_alpha"] == pytest.approx(3.8e-9 / 3, rel=5e-3) and fgd["temperature"] == 0.5


def put_points(store: ResultStore, preset: Preset, method: str, aps: dict[float, float]) -> None:
    """Record ``method``'s seed-0 points in the order the search plans them."""
    for scale, ap in aps.items():
        run = next(r for r in plan_points(store, preset, [method]) if r.extra["scale"] == scale)
        fake_result(store, run, ap)


def put_pick_seeds(store: ResultStore, preset: Preset, method: str, aps: list[float]) -> None:
    """Record ``method``'s picked point on the other seeds (``aps`` in seed order)."""
    for run, ap in zip(plan_pick_seeds(store, preset, [method]), aps, strict=True):
        fake_result(store, run, ap)


def test_the_pick_is_the_best_seed0_point_a_tie_keeps_the_calibration_point(tmp_path):
    preset = get_preset("cpu")
    store = ResultStore(tmp_path)

    def put(method: str, aps: dict[float, float]) -> None:
        put_points(store, preset, method, aps)

    put("cwd", {1.0: 0.20, 3.0: 0.23, 9.0: 0.21})  # best inside: x3
    put("pkd", {1.0: 0.19, 3.0: 0.17, 1 / 3: 0.19})  # tie with x1/3: keeps x1
    put("mgd", {1.0: 0.10, 3.0: 0.12, 9.0: 0.15})  # best at the end of the search
    put("fgd", {1.0: 0.1})  # one point only: no pick yet
    found = {p.method: p for p in picks(store, preset)}
    assert (found["cwd"].scale, found["pkd"].scale, found["mgd"].scale) == (3.0, 1.0, 9.0)
    assert found["fgd"].scale is None and found["fgd"].third is None
    assert [p.method for p in found.values() if p.at_edge] == ["mgd"]
    follow = plan_pick_seeds(store, preset, ["cwd", "pkd"])
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
    assert "| cwd | 20.00 | 23.00 | x9: 21.00 | x3 | 23.00 ± 2.00 (n=3) |" in text
    assert "| pkd | 19.00 | 17.00 | x0.333: 19.00 | x1 | 19.00 ± 1.00 (n=3) |" in text
    assert "| fgd | 10.00 | missing | after x1 and x3 | grid incomplete | - |" in text
    assert "Ranked at their picked points, every seed in: 1. cwd 23.00, 2. pkd 19.00." in text
    assert (
        "Picked at the end of the search (the third point), so a longer search may do better: mgd (x9)."
        in text
    )
    assert "1. cwd x3 23.00, 2. pkd x1 19.00, 3. mgd x9 15.00." in text  # seed 0 at the picks
    heavier = "2 of the 3 peers searched did better with heavier weights on seed 0: mgd (x9), cwd (x3)."
    assert heavier in text
    # the glance warns that the groups' ranks compare MAR with peers at x1
    fake_result(store, student_run(preset, preset.group("retina-synth-short"), "baseline", 0), 0.09)
    glance = "\n".join(glance_section(store, ["cpu"]))
    assert "2 of 3 peers searched did better with heavier weights on seed 0 (mgd x9, cwd x3)" in glance


def test_cli_lists_the_grid_and_refuses_unknown_methods_and_scales(tmp_path, capsys):
    base = ["bench", "equal-tune", "--results", str(tmp_path), "--list"]
    cwd = plan_points(ResultStore(tmp_path), get_preset("cpu"), ["cwd"])
    assert main([*base, "--methods", "cwd", "--scales", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"missing cwd x3 seed 0 [{cwd[1].key[:12]}]",
        "waits   cwd: third point (x9 or x0.333) once x1 and x3 are in",
    ]
    # x1 and x3 in, x3 better: the third point is x9
    fake_result(ResultStore(tmp_path), cwd[0], 0.20)
    fake_result(ResultStore(tmp_path), cwd[1], 0.23)
    assert main([*base, "--methods", "cwd"]) == 0
    assert capsys.readouterr().out.splitlines()[2].startswith("missing cwd x9 seed 0 [")
    assert main([*base, "--methods", "nope"]) == 2
    assert "unknown method(s) nope" in capsys.readouterr().err
    assert main([*base, "--scales", "2"]) == 2
    assert "--scales: valid: 0.333, 1, 3, 9" in capsys.readouterr().err


def test_the_other_groups_run_the_two_best_picks_each_at_its_picked_weights(tmp_path):
    preset = get_preset("cpu")
    store = ResultStore(tmp_path)
    smallgap = preset.group("retina-synth-smallgap")
    choice = best_peers(store, preset)
    assert choice.fallback and choice.peers == FALLBACK_PEERS and "cwd (search incomplete)" in choice.source
    put_points(store, preset, "cwd", {1.0: 0.20, 3.0: 0.23, 9.0: 0.21})  # pick x3
    put_points(store, preset, "pkd", {1.0: 0.19, 3.0: 0.17, 1 / 3: 0.18})  # pick x1
    put_points(store, preset, "mgd", {1.0: 0.10, 3.0: 0.12, 9.0: 0.30})  # best pick, seed 0 only
    put_points(store, preset, "fgd", {1.0: 0.1})
    put_pick_seeds(store, preset, "cwd", [0.21, 0.25])
    put_pick_seeds(store, preset, "pkd", [0.18, 0.20])
    choice = best_peers(store, preset)
    assert choice.peers == ("cwd x3", "pkd") and not choice.fallback  # x1: the plain peer's label
    assert "cwd x3 23.0, pkd 19.0" in choice.source
    assert "mgd x9 (1/3 seeds)" in choice.source and "fgd (search incomplete)" in choice.source

    runs = {r.label: r for r in plan_runs(store, preset, [smallgap.name], seeds=[0])}
    assert set(runs) == {"baseline", "mar", "cwd x3", "pkd", "mar_cross", "mar_inherit", "auto"}
    assert runs["cwd x3"].spec["distill"]["loss_weight"] == pytest.approx(
        3 * CALIBRATED_PEERS["cwd"]["loss_weight"]
    )
    assert runs["cwd x3"].spec["train"] == runs["baseline"].spec["train"]  # the group's schedule
    assert runs["pkd"].key == student_run(preset, smallgap, "pkd", 0).key

    # peers that ran in the group before (at x1 or at another tuning point) stay shown and ranked,
    # but are owed no seeds
    fake_result(store, student_run(preset, smallgap, "crosskd", 0), 0.30)
    fake_result(store, student_run(preset, smallgap, "mgd x9", 0), 0.28)
    for label, ap in (("mar", 0.26), ("cwd x3", 0.27)):
        for seed in preset.seeds:
            fake_result(store, student_run(preset, smallgap, label, seed), ap)
    view = GroupView(store, preset, smallgap)
    assert {"crosskd", "mgd x9"} <= set(view.labels) and "mgd" not in view.labels
    assert not {"crosskd", "mgd x9"} & set(view.planned)
    assert not any(m.startswith(("crosskd", "mgd", "cwd x3", "mar ")) for m in view.missing())
    rank = view.mar_rank()
    assert [x for x, _ in rank.ranked] == ["crosskd", "mgd x9", "cwd x3", "mar"] and rank.place == 4
    assert not rank.complete  # pkd (planned) has no seed yet
    # a two-stage group looks for its peers at their calibration points only, and so does the
    # tuning group (its points are the equal tuning section's, not its table's)
    assert "mgd x9" not in GroupView(store, preset, preset.group("frcnn-synth-short")).labels
    short = preset.group("retina-synth-short")
    fake_result(store, student_run(preset, short, "mgd x9", 0), 0.28)
    fake_result(store, student_run(preset, short, "mgd", 0), 0.20)
    short_labels = GroupView(store, preset, short).labels
    assert "mgd" in short_labels and "mgd x9" not in short_labels


def test_a_points_label_names_its_weights_in_one_stage_groups_only(tmp_path, capsys):
    assert parse_point(point_label("fgd", 1 / 3)) == ("fgd", 1 / 3)
    assert parse_point("cwd x2") is None and parse_point("cwd") is None
    preset = get_preset("cpu")
    with pytest.raises(ValueError, match="two-stage"):
        student_run(preset, preset.group("frcnn-synth-short"), "cwd x9", 0)
    base = ["bench", "quality", "--results", str(tmp_path), "--list", "--group", "retina-synth-smallgap"]
    assert main([*base, "--students", "cwd x2"]) == 2
    assert "unknown student(s) cwd x2" in capsys.readouterr().err
    assert main([*base, "--students", "mar,pkd x9"]) == 0
