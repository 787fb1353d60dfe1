"""``mar bench``: tiny versions of both benchmarks, so that they cannot rot.

``quality --preset smoke`` (64 px, 2 steps, 1 seed, baseline + MAR) twice: the second time
runs nothing; the report is generated from the result files (a number changed in a file shows
up in it, a deleted file is listed as missing). ``perf --preset smoke`` (tiny sizes, ~50 API
requests) holds the ratios. Results and caches live in tmp dirs.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from benchmarks.equal_tune import picks
from benchmarks.plan import LEGACY_PEER_FIELDS, LEGACY_PEER_METHODS, cache_key, student_run
from benchmarks.presets import MAR_VARIANTS, PEERS, get_preset
from benchmarks.roster import plan_runs
from benchmarks.stats import Summary, beats_by_two_spreads
from benchmarks.store import ResultStore, spec_key
from mar_cli.main import main
from mar_core.methods import METHODS
from mar_core.methods.mar import MARSpec
from tests.bench.records import fake_result


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory, one_thread) -> dict:
    """One smoke quality run (teacher + 2 students) shared by the tests of this module."""
    from benchmarks.quality import run_quality

    root = tmp_path_factory.mktemp("bench")
    results, cache = root / "results", root / "cache"
    first = run_quality(get_preset("smoke"), ResultStore(results), cache, command="test")
    return {"root": root, "results": results, "cache": cache, "first": first}


def test_quality_runs_once_then_everything_is_cached(smoke_results, capsys):
    first = smoke_results["first"]
    assert [r["label"] for r in first.ran] == ["baseline", "mar"]
    assert len(first.teachers_trained) == 1
    files = sorted(p.name for p in smoke_results["results"].glob("*.json"))
    assert len(files) == 3 and sum(f.startswith("teacher-") for f in files) == 1
    rec = json.loads(next(smoke_results["results"].glob("student-*-mar-*.json")).read_text())
    for field in ("key", "spec", "eval", "wall_seconds", "params", "machine", "losses"):
        assert field in rec
    assert rec["spec"]["teacher"]["checkpoint"].startswith("teacher:")  # machine-independent spec
    assert "loss/kd/relation" in rec["losses"]["late"]
    assert rec["machine"]["cores"] >= 1 and rec["machine"]["torch"]

    code = main(
        [
            "bench",
            "quality",
            "--preset",
            "smoke",
            "--results",
            str(smoke_results["results"]),
            "--cache",
            str(smoke_results["cache"]),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "ran 0 student runs, trained 0 teachers, 2 cached" in out
    assert "start" not in out


def test_a_trained_teacher_is_published_in_float16_and_reused_by_a_fresh_clone(smoke_results, tmp_path):
    """Students distil from the float16 copy in ``teachers/`` (beside ``results/``); with that
    folder and the results, an empty cache (a fresh clone) trains no teacher again."""
    import shutil

    import torch

    from benchmarks.quality import run_quality

    published = list((smoke_results["root"] / "teachers").iterdir())
    assert len(published) == 1 and published[0].name.startswith("smoke-")
    state = torch.load(published[0] / "model.pt", weights_only=True)
    floats = [v for v in state.values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    report = json.loads((published[0] / "report.json").read_text())
    assert set(report["eval"]) >= {"AP", "AP50"} and report["eval_before_rounding"] is not None
    assert report["model_pt_bytes"] == (published[0] / "model.pt").stat().st_size

    clone = tmp_path / "clone"
    shutil.copytree(smoke_results["results"], clone / "results")
    shutil.copytree(smoke_results["root"] / "teachers", clone / "teachers")
    again = run_quality(
        get_preset("smoke"),
        ResultStore(clone / "results"),
        clone / "cache",
        students=["mar"],
        rerun=True,
        command="test",
    )
    assert [r["label"] for r in again.ran] == ["mar"] and again.teachers_trained == []
    assert not (clone / "cache" / "teachers").exists()


def test_report_is_generated_from_the_results(smoke_results, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    for f in smoke_results["results"].glob("*.json"):
        (results / f.name).write_text(f.read_text())
    mar_file = next(results.glob("student-*-mar-*.json"))
    rec = json.loads(mar_file.read_text())
    rec["eval"]["AP"] = 0.4321  # a number only the result file knows
    mar_file.write_text(json.dumps(rec))
    out = tmp_path / "BENCHMARKS.md"
    assert main(["bench", "report", "--preset", "smoke", "--results", str(results), "--out", str(out)]) == 0
    text = out.read_text()
    assert "43.21" in text and "retina-synth-smoke" in text
    assert "Missing runs: none." in text
    assert "mar bench quality --preset smoke" in text

    mar_file.unlink()
    main(["bench", "report", "--preset", "smoke", "--results", str(results), "--out", str(out)])
    text = out.read_text()
    assert "43.21" not in text
    assert "Missing runs: mar (seed 0)." in text


def test_perf_smoke_reports_the_ratios(tmp_path, capsys):
    code = main(["bench", "perf", "--preset", "smoke", "--results", str(tmp_path), "--no-report"])
    assert code == 0
    files = list(tmp_path.glob("perf-smoke-*.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text())
    steps = data["parts"]["steps"]
    for key in ("teacher_forward_over_student_step", "mar_step_over_student_step", "distillation_overhead"):
        assert math.isfinite(steps["ratios"][key])
    med = steps["median_s"]
    expected = (med["mar_step"] - med["student_step"] - med["teacher_forward"]) / med["student_step"]
    assert steps["ratios"]["distillation_overhead"] == pytest.approx(expected, abs=1e-3)
    forms = {(r["side"], r["form"]) for r in data["parts"]["relation"]["rows"]}
    assert {(8, "gram"), (8, "naive")} <= forms
    assert all(r["max_abs_diff"] == 0.0 for r in data["parts"]["masks"]["rows"])
    api = data["parts"]["api"]
    assert all(run["errors"] == 0 and run["requests"] > 0 for run in api["sqlite"]["runs"])
    paced = [run for run in api["sqlite"]["runs"] if "paced" in run["endpoint"]]
    assert len(paced) == 1 and paced[0]["connect"]["requests"] == 4  # each client opened its connection
    assert "runs" in api["postgresql"] or "skipped" in api["postgresql"]
    assert "Distillation overhead beyond the teacher forward" in capsys.readouterr().out

    out = tmp_path / "B.md"
    main(["bench", "report", "--preset", "smoke", "--results", str(tmp_path), "--out", str(out)])
    assert "Distillation overhead beyond the teacher forward" in out.read_text()


def test_cache_keys_are_stable_and_distinct():
    preset = get_preset("cpu")
    runs = plan_runs(ResultStore(Path("/nonexistent")), preset)
    keys = [r.key for r in runs]
    by_key: dict[str, list[str]] = {}
    for r in runs:
        by_key.setdefault(r.key, []).append(f"{r.group}/{r.label}")
    shared = sorted(sorted(v) for v in by_key.values() if len(v) > 1)
    # the one sharing by design: the small-gap group's baseline is the long group's (same spec)
    assert shared == [["retina-synth-long/baseline", "retina-synth-smallgap/baseline"]] * 3
    # 24 (the short group: baseline, 7 MAR variants, mar_cross, mar_kd_tail, MAR with the teacher
    # cache and with a bf16 teacher, the baseline and MAR trained in bf16, 9 peers, auto) + 9
    # (long: baseline, mar, its two halves, mar_raw, 2 best peers, mar_cross, auto) + 8 (BCCD: with
    # mar_raw, mar_raw_auto) + 7 (small gap: baseline, mar, 2 best peers, mar_cross, mar_inherit,
    # auto) + 5 (small gap, warm: baseline, mar, 2 best peers, auto) + 6 (Faster R-CNN) students,
    # 3 seeds
    assert len(runs) == (24 + 9 + 8 + 7 + 5 + 6) * 3
    again = plan_runs(ResultStore(Path("/nonexistent")), preset)
    assert [r.key for r in again] == keys


def test_two_spreads_verdict():
    assert beats_by_two_spreads(Summary.of([0.30, 0.31, 0.32]), Summary.of([0.20, 0.21, 0.22]))[0] is True
    assert beats_by_two_spreads(Summary.of([0.22, 0.25, 0.28]), Summary.of([0.20, 0.21, 0.22]))[0] is False
    assert beats_by_two_spreads(Summary.of([0.30]), Summary.of([0.20]))[0] is None


def test_same_seed_gains_pair_only_the_seeds_both_have():
    from benchmarks.stats import same_seed_gains

    line = same_seed_gains({0: 0.50, 1: 0.46, 2: 0.49}, {0: 0.49, 1: 0.45, 2: 0.50, 3: 0.1})
    assert line.startswith(
        "above the baseline on 2 of 3 seeds (s0 +1.00, s1 +1.00, s2 -1.00; mean +0.33 ± 1.15"
    )
    assert same_seed_gains({0: 0.5}, {1: 0.4}) is None
    assert same_seed_gains({0: 0.5}, {0: 0.4}).endswith("(s0 +10.00; mean +10.00)")


def test_report_verdicts_from_fake_records(tmp_path):
    """The verdict lines read the numbers of the records (no training here)."""
    from benchmarks.plan import teacher_run
    from benchmarks.report import render_report

    preset = get_preset("cpu")
    long = preset.group("retina-synth-long")
    store = ResultStore(tmp_path)
    trun = teacher_run(preset, preset.teachers[long.teacher])
    store.put(
        {
            "key": trun.key,
            "kind": "teacher",
            "preset": "cpu",
            "group": trun.group,
            "label": "teacher",
            "seed": 0,
            "spec": trun.spec,
            "eval": {"AP": 0.40, "AP50": 0.6},
            "wall_seconds": 1200.0,
            "params": {"model": 26_000_000},
        }
    )
    for seed in preset.seeds:
        for label, ap in (("baseline", 0.250 + seed * 0.002), ("mar", 0.300 + seed * 0.002), ("fgd", 0.27)):
            run = student_run(preset, long, label, seed)
            hist = [
                {"step": s, "AP": ap - (0.05 if s < 960 else 0.001 if s < 1600 else 0)}
                for s in (320, 640, 960, 1280, 1600)
            ]
            store.put(
                {
                    "key": run.key,
                    "kind": "student",
                    "preset": "cpu",
                    "group": long.name,
                    "label": label,
                    "seed": seed,
                    "spec": run.spec,
                    "eval": {"AP": ap, "AP50": ap + 0.2},
                    "eval_history": hist,
                    "wall_seconds": 500.0 + 200 * (label == "mar") * seed,
                    "params": {"model": 11_800_000},
                    "machine": {"torch_threads": 2 if label == "mar" else 1, "load_avg_1m": 1.5 + seed},
                }
            )
    text = render_report(ResultStore(tmp_path), ["cpu"])
    section = text.split("(`retina-synth-long`)")[1].split("###")[0]
    assert "MAR beats the baseline by more than twice the seed spread: yes: gain +5.00 AP" in section
    assert "MAR reaches the teacher: no (MAR 30.20 vs teacher 40.00 AP" in section
    assert (
        "MAR above the baseline on 3 of 3 seeds (s0 +5.00, s1 +5.00, s2 +5.00; mean +5.00 ± 0.00)" in section
    )
    assert "MAR ranks 1 of 2 among MAR and the peers" in section
    assert "Baseline converged" in section and ": yes, mean rise +0.10 AP" in section
    assert "Teacher clearly better than the baseline student" in section
    assert (
        "Missing runs: mar_relation_only (seeds 0, 1, 2); mar_mask_only (seeds 0, 1, 2); mar_raw "
        "(seeds 0, 1, 2); pkd (seeds 0, 1, 2); mar_cross (seeds 0, 1, 2); auto (seeds 0, 1, 2)."
    ) in section
    assert (
        "Run budget (10 min a run): 2 of 9 runs over it; by threads: 1 torch thread(s) a run: 0 of 6 over, "
        "longest baseline s0 8.3 min, 1-minute load at the end 1.5-3.5; 2 torch thread(s) a run: 2 of 3 over, "
        "longest mar s2 15.0 min, 1-minute load at the end 1.5-3.5."
    ) in section
    assert "Ablations" not in section  # no MAR variant ran in this group
    glance = text.split("## At a glance")[1].split("## Commands")[0]
    row = next(line for line in glance.splitlines() if line.startswith("| `retina-synth-long`"))
    assert row.split(" | ")[1:] == [
        "3 / 3",
        "25.20 ± 0.20",
        "30.20 ± 0.20",
        "+5.00",
        "0.40",
        "**yes**",
        "40.00",
        "**no**",
        "0.34",  # (30.20 - 25.20) / (40.00 - 25.20); fgd: (27.00 - 25.20) / 14.80 = 0.12
        "1 of 2 (seeds missing) |",
    ]
    gap_row = next(line for line in glance.splitlines() if line.startswith("| `retina-synth-long` | mar"))
    assert gap_row == "| `retina-synth-long` | mar 0.34, fgd 0.12 | - |"
    assert "| `retina-synth-short`" not in glance  # no result there: no row


def test_relation_memory_exponent_tells_linear_from_quadratic_growth():
    from benchmarks.report_glance import memory_exponent

    ns = [256, 1024, 4096, 16384]
    rows = [{"form": "gram", "N": n, "peak_rss_mb": 3.0 + n * 0.01} for n in ns]
    rows += [{"form": "naive", "N": n, "peak_rss_mb": n * n * 4 / 2**20} for n in ns]
    gram, naive = memory_exponent(rows, "gram"), memory_exponent(rows, "naive")
    assert gram[0] < 1.0 and abs(naive[0] - 2.0) < 1e-6 and naive[1:] == (256, 16384)
    assert memory_exponent(rows[:1], "gram") is None


def test_the_benchmark_compares_every_registered_method():
    """The peers, MAR's variants and the short group's students come from the registry."""
    assert ("mar", *PEERS, *MAR_VARIANTS) == tuple(METHODS) and MAR_VARIANTS == ("mar_cross",)
    short = get_preset("cpu").group("retina-synth-short").students
    assert all(m in short for m in METHODS)


def test_a_new_mar_default_rekeys_mar_runs_but_not_peers():
    """A MAR value that differs (as a changed default would) changes MAR's key; a peer's spec
    cannot hold MAR's fields at all, so neither its spec nor its key can follow them."""
    preset = get_preset("cpu")
    group = preset.group("retina-synth-short")
    default = student_run(preset, group, "mar", 0, distill={"method": "mar"})
    tuned = student_run(preset, group, "mar", 0, distill={"method": "mar", "alpha": 0.123})
    assert default.key != tuned.key and tuned.spec["distill"]["alpha"] == 0.123
    for method in ("fgd", "cwd"):
        peer = student_run(preset, group, method, 0, distill={"method": method})
        assert not set(peer.spec["distill"]) & {"alpha", "beta", "gamma", "kappas", "mask"}, method
        with pytest.raises(ValidationError, match="alpha is a field of method mar, not of " + method):
            student_run(preset, group, method, 0, distill={"method": method, "alpha": 0.123})
    fgd = student_run(preset, group, "fgd", 0)
    assert fgd.key != student_run(preset, group, "fgd", 0, distill={"method": "fgd", "fgd_alpha": 1.0}).key


def test_peer_cache_keys_keep_the_layout_of_their_cached_runs():
    """Peers' runs were keyed when one flat distill model held every method's fields: their key
    hashes that layout (the peer fields they do not read at their defaults), so every cached run
    keeps its key; the logical spec holds only the method's own fields."""
    preset = get_preset("cpu")
    group = preset.group("retina-synth-short")
    cwd = student_run(preset, group, "cwd", 0)
    assert set(cwd.spec["distill"]) == {"method", "adapter", "kd_warmup_iters", "loss_weight", "temperature"}
    legacy = {**cwd.spec, "distill": {**LEGACY_PEER_FIELDS, **cwd.spec["distill"]}}
    assert legacy["distill"]["fgd_alpha"] is None and cwd.key == cache_key(cwd.spec) == spec_key(legacy)
    raw = student_run(preset, group, "mar_raw", 0)
    # MAR's section is its own fields; those added since (feature_norm) at the value that reproduces
    # the runs made before them ("none") are left out of the key, so those runs keep theirs (under
    # the raw-map labels); another value is a new run
    assert raw.spec["distill"]["feature_norm"] == "none"
    assert raw.key == spec_key(
        {**raw.spec, "distill": {k: v for k, v in raw.spec["distill"].items() if k != "feature_norm"}}
    )
    assert ResultStore().has(raw.key)
    mar = student_run(preset, group, "mar", 0)
    assert mar.spec["distill"]["feature_norm"] == "channel" and mar.key == spec_key(mar.spec) != raw.key
    assert ResultStore().has(mar.key)
    store = ResultStore()  # the committed results: each cached peer run is found under its key
    for label in LEGACY_PEER_METHODS:  # the peers registered since have no cached run yet
        rec = store.get(student_run(preset, group, label, 0).key)
        assert rec is not None and rec["label"] == label, label


def test_tune_runs_the_chosen_grid_points_and_refuses_unknown_ones(smoke_results, tmp_path, capsys):
    shutil.copytree(smoke_results["root"] / "teachers", tmp_path / "teachers")
    paths = ["--results", str(tmp_path / "results"), "--cache", str(tmp_path / "cache")]
    assert main(["bench", "tune", "--preset", "smoke", "--point", "beta=1.5e-3", *paths]) == 0
    assert "ran 1 tuning runs" in capsys.readouterr().out
    (rec_file,) = (tmp_path / "results").glob("tune-*.json")
    rec = json.loads(rec_file.read_text())
    assert rec["label"] == "beta=1.5e-3" and rec["spec"]["distill"]["beta"] == 1.5e-3
    assert main(["bench", "tune", "--preset", "smoke", "--point", "beta=9", *paths]) == 2
    assert "unknown grid point(s) 'beta=9'" in capsys.readouterr().err


def test_tune_points_spell_out_every_tuned_value():
    """Grid points carry GRID_BASE in full, so a change of MAR's defaults keeps their keys."""
    from benchmarks.tune import GRID_BASE, plan_tune

    assert set(GRID_BASE) <= set(MARSpec.model_fields)
    runs = plan_tune(get_preset("cpu"))
    assert len({r.label for r in runs}) == len(runs) and len({r.key for r in runs}) == len(runs)
    for run in runs:
        for field, value in GRID_BASE.items():
            assert run.spec["distill"][field] == run.extra["params"].get(field, value), (run.label, field)


def test_teachers_only_trains_and_publishes_without_students(tmp_path, capsys):
    paths = ["--results", str(tmp_path / "results"), "--cache", str(tmp_path / "cache")]
    assert main(["bench", "quality", "--preset", "smoke", "--teachers-only", *paths]) == 0
    assert "ran 0 student runs, trained 1 teachers" in capsys.readouterr().out
    assert [p.name.split("-")[0] for p in (tmp_path / "results").glob("*.json")] == ["teacher"]
    (published,) = (tmp_path / "teachers").iterdir()
    assert (published / "model.pt").is_file()


def test_peer_weights_are_in_the_spec_that_is_hashed():
    """A peer's weights are resolved before hashing as a job resolves them: the benchmark's
    calibrated ones for its students, "default" the published ones, unset "auto"; a different
    weight is a different run."""
    from benchmarks.presets import CALIBRATED_PEERS, CALIBRATED_PEERS_TWO_STAGE

    preset = get_preset("cpu")
    group = preset.group("retina-synth-short")
    fgd = student_run(preset, group, "fgd", 0)
    assert fgd.spec["distill"]["fgd_alpha"] == CALIBRATED_PEERS["fgd"]["fgd_alpha"]
    published = student_run(preset, group, "pkd", 0, distill={"method": "pkd", "loss_weight": "default"})
    assert published.spec["distill"]["loss_weight"] == 1.0
    assert published.key != student_run(preset, group, "pkd", 0).key
    unset = student_run(preset, group, "pkd", 0, distill={"method": "pkd"})
    assert unset.spec["distill"]["loss_weight"] == "auto" and unset.key != published.key
    frcnn = preset.group("frcnn-synth-short")  # a two-stage student: its own calibration
    two_stage = student_run(preset, frcnn, "fgd", 0).spec["distill"]
    assert (
        two_stage["fgd_alpha"]
        == CALIBRATED_PEERS_TWO_STAGE["fgd"]["fgd_alpha"]
        != CALIBRATED_PEERS["fgd"]["fgd_alpha"]
    )
    mar = student_run(preset, frcnn, "mar", 0).spec["distill"]  # MAR's two-stage default: raw, tuned
    assert (mar["feature_norm"], mar["alpha"], mar["gamma"]) == ("none", 0.29, 42.0)


def test_calibrate_reports_every_term_against_the_classification_loss(smoke_results, tmp_path, capsys):
    import shutil

    shutil.copytree(smoke_results["root"] / "teachers", tmp_path / "teachers")
    group = get_preset("smoke").groups[0].name
    paths = ["--results", str(tmp_path / "results"), "--cache", str(tmp_path / "cache")]
    assert (
        main(
            [
                "bench",
                "calibrate",
                "--preset",
                "smoke",
                "--group",
                group,
                "--batches",
                "1",
                "--methods",
                "mar,pkd",
                *paths,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| mar | fg |" in out and "| pkd | pkd/pearson |" in out
    result = json.loads((tmp_path / "results" / f"calibrate-smoke-{group}.json").read_text())
    terms = result["methods"]["mar"]["terms"]
    assert set(terms) == {"fg", "bg", "relation"}
    fg = terms["fg"]
    assert fg["ratio"] == pytest.approx(fg["value"] / result["methods"]["mar"]["classification"])
    assert fg["weight_for_target"] == pytest.approx(fg["weight"] * 0.5 / fg["ratio"])
    assert result["methods"]["pkd"]["terms"]["pkd/pearson"]["weight_field"] == "loss_weight"
    assert main(["bench", "calibrate", "--preset", "smoke", "--group", "nope", *paths]) == 2
    capsys.readouterr()
    assert (
        main(["bench", "calibrate", "--preset", "smoke", "--group", group, "--methods", "mar,kd", *paths])
        == 2
    )
    assert "unknown method(s) kd; valid: " + ", ".join(METHODS) in capsys.readouterr().err


def test_a_diverging_run_is_reported_and_the_next_one_still_runs(smoke_results, tmp_path):
    import shutil

    from benchmarks.plan import student_run
    from benchmarks.quality import Runner

    shutil.copytree(smoke_results["root"] / "teachers", tmp_path / "teachers")
    preset = get_preset("smoke")
    group = preset.groups[0]
    bad = student_run(  # the largest weights and learning rate a spec allows: the loss overflows
        preset,
        group,
        "mar-inf",
        0,
        distill={"method": "mar", "alpha": 1e6, "beta": 1e6, "gamma": 1e6, "kd_warmup_iters": 0},
        train_overrides={
            "optimizer": "sgd",
            "lr": 10.0,
            "grad_clip": None,
            "warmup_iters": 0,
            "iterations": 6,
        },
    )
    good = student_run(preset, group, "baseline", 0)
    events = []
    runner = Runner(
        preset,
        ResultStore(tmp_path / "results"),
        tmp_path / "cache",
        on_event=lambda what, run, rec: events.append((what, run.label)),
    )
    assert runner.run(bad) and runner.run(good)
    assert [(r.label, "not finite" in err) for r, err in runner.summary.failed] == [("mar-inf", True)]
    assert [r["label"] for r in runner.summary.ran] == ["baseline"]
    assert ("failed", "mar-inf") in events
    assert not ResultStore(tmp_path / "results").has(bad.key)  # not stored: tried again next time


def test_the_raw_defaults_are_the_tuning_grids_chosen_point():
    """Raw MAR's defaults are a grid point, so the group's ``mar_raw`` seed 0 is that tune run (one
    key); update STAGE_2 / the grid with the defaults."""
    from benchmarks.tune import plan_tune

    preset = get_preset("cpu")
    mar_s0 = student_run(preset, preset.group("retina-synth-short"), "mar_raw", 0).key
    assert [r.label for r in plan_tune(preset) if r.key == mar_s0] == ["beta=1.5e-4 + gamma=150"]


def test_a_dataset_being_generated_by_another_process_is_waited_for(tmp_path):
    """Two bench processes started together both need the synthetic set: the second waits for
    the first's generation instead of giving up on its run (it used to report it "busy")."""
    import fcntl
    import threading
    import time

    from benchmarks.quality import prepare_dataset

    data = get_preset("smoke").datasets["synth"]
    out = tmp_path / "data" / data.logical_path.split("/", 1)[1]
    out.mkdir(parents=True)
    holder = open(out / ".lock", "w")
    fcntl.flock(holder, fcntl.LOCK_EX)  # "another process" is generating the set
    result: dict = {}
    waiter = threading.Thread(target=lambda: result.update(path=prepare_dataset(data, tmp_path)))
    waiter.start()
    time.sleep(0.5)
    assert waiter.is_alive() and "path" not in result  # still waiting for the lock
    fcntl.flock(holder, fcntl.LOCK_UN)
    holder.close()
    waiter.join(timeout=60)
    assert result["path"] == out and (out / ".complete").exists()


def test_tune_outcome_names_the_best_point_and_those_too_close_to_tell_apart():
    from types import SimpleNamespace

    from benchmarks.report import _tune_outcome

    def point(label, ap):
        return SimpleNamespace(label=label, key=f"k-{label}"), {"key": f"k-{label}", "eval": {"AP": ap}}

    done = [
        point("base", 0.233),
        point("default", 0.272),
        point("near", 0.265),
        point("far", 0.212),
        (SimpleNamespace(label="missing", key="k-missing"), None),
    ]
    line = _tune_outcome(done, {"key": "k-default"}, 0.0064)[0]
    assert line == (
        "- Best of the 4 points run: `default` (27.20 AP), the current default. Within twice "
        "MAR's seed spread of it (1.28 AP): `near`."
    )
    assert "not the current default" in _tune_outcome(done, {"key": "k-near"}, None)[0]


def test_ablations_are_set_against_full_mar(tmp_path):
    from benchmarks.group_view import GroupView
    from benchmarks.report import _ablations

    preset = get_preset("cpu")
    short = preset.group("retina-synth-short")
    store = ResultStore(tmp_path)
    for label, aps in (
        ("mar", [0.29, 0.30, 0.31]),
        ("mar_mask_only", [0.20]),
        ("mar_raw", [0.26, 0.27, 0.28]),
        ("mar_raw_mask_only", [0.10, 0.11, 0.12]),
        ("mar_raw_gaussian", [0.27, 0.28]),
        ("mar_raw_no_scale_norm", [0.25]),
        ("mar_raw_auto", [0.05, 0.05, 0.05]),  # another weighting, not an ablation: not listed
        ("baseline", [0.08, 0.09, 0.10]),
        ("baseline_bf16", [0.09, 0.09, 0.09]),
    ):
        for seed, ap in enumerate(aps):
            fake_result(store, student_run(preset, short, label, seed), ap)
    lines = _ablations(GroupView(ResultStore(tmp_path), preset, short))
    assert lines == [
        "- Ablations against `baseline` (mean AP difference): baseline_bf16 +0.00 (within twice the spread, "
        "2.00).",
        "- Ablations against `mar` (mean AP difference): mar_mask_only -10.00 (cannot tell yet (one seed)).",
        "- Ablations against `mar_raw` (mean AP difference): mar_raw_mask_only -16.00 (beyond twice the "
        "spread, 2.00); mar_raw_no_scale_norm -2.00 (cannot tell yet (one seed)); mar_raw_gaussian +0.50 "
        "(within twice the spread, 2.00).",
    ]


def test_what_each_half_adds_is_the_full_method_against_the_other_half_alone(tmp_path):
    from benchmarks.group_view import GroupView
    from benchmarks.report import _halves

    preset = get_preset("cpu")
    short = preset.group("retina-synth-short")
    store = ResultStore(tmp_path)
    for label, aps in (
        ("mar", [0.29, 0.30, 0.31]),
        ("mar_relation_only", [0.28, 0.27, 0.29]),  # 2 AP below: exactly twice the spread, not more
        ("mar_mask_only", [0.20, 0.21, 0.22]),
    ):
        for seed, ap in enumerate(aps):
            fake_result(store, student_run(preset, short, label, seed), ap)
    lines = _halves(GroupView(ResultStore(tmp_path), preset, short))
    assert len(lines) == 2  # raw mar has no result here: no lines for it
    assert lines[0].startswith(
        "- What the mask-guided half adds in `mar` (`mar` against `mar_relation_only`): beats it by "
        "more than twice the seed spread: no: gain +2.00 AP, twice the seed spread 2.00 AP"
    )
    assert "same seed: mar above mar_relation_only on 3 of 3 seeds (s0 +1.00, s1 +3.00, s2 +2.00" in lines[0]
    assert "What the relation half adds in `mar` (`mar` against `mar_mask_only`): beats it by " in lines[1]
    assert "yes: gain +9.00 AP" in lines[1]


def test_renamed_labels_point_at_students_that_exist():
    """The rename note in the report's commands section names today's labels only."""
    from benchmarks.presets import RENAMED_LABELS, STUDENTS

    assert set(RENAMED_LABELS.values()) <= set(STUDENTS)
    # the old names still in use now mean another run: "mar" and "mar_mask_only" changed meaning
    assert set(RENAMED_LABELS) & set(STUDENTS) == {"mar", "mar_mask_only"}


def test_equal_tune_runs_a_methods_whole_search_in_one_call(smoke_results, tmp_path, capsys):
    """x1 and x3 first, then the third point their APs decide, in the same command."""
    shutil.copytree(smoke_results["root"] / "teachers", tmp_path / "teachers")
    paths = ["--results", str(tmp_path / "results"), "--cache", str(tmp_path / "cache"), "--no-report"]
    assert main(["bench", "equal-tune", "--preset", "smoke", "--methods", "cwd", *paths]) == 0
    assert "ran 3 runs, 0 cached, 0 failed" in capsys.readouterr().out
    (cwd,) = (p for p in picks(ResultStore(tmp_path / "results"), get_preset("smoke")) if p.method == "cwd")
    assert cwd.third in (9.0, 1 / 3) and None not in cwd.ap_by_scale.values() and cwd.scale is not None
