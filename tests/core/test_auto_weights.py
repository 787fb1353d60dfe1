"""Automatic KD weights (issue 13 item 4): ``"auto"`` is what a distill job takes for an unset
weight (MAR's gamma excepted: issue 19); each is sized on the first batches so its term starts at ``TARGET_RATIO`` x the
classification loss, used, logged as an event and in ``report.json``, kept on resume; a number
overrides; the measurement leaves no trace (a run with auto weights is the run with the same
weights given as numbers)."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from benchmarks.group_view import GroupView
from benchmarks.plan import student_run
from benchmarks.presets import AUTO_WEIGHTS_STUDENT, RAW_MAR, get_preset
from benchmarks.report import _ablations, _auto_vs_tuned
from benchmarks.store import ResultStore
from mar_core.data import build_train_loader, load_dataset
from mar_core.distill import auto_weights
from mar_core.distill.auto_weights import TARGET_RATIO, measure_kd_terms, resolve_kd_weights
from mar_core.distill.distiller import Distiller
from mar_core.distill.kd_loss import build_kd_loss
from mar_core.errors import JobCancelled
from mar_core.methods import METHODS, parse_distill
from mar_core.methods.mar import MARSpec
from mar_core.models.checkpoint_io import atomic_torch_save, safe_load
from mar_core.models.registry import build_detector
from mar_core.run import run_job
from mar_core.spec import JobSpec, ModelSpec
from tests.conftest import tiny_spec
from tests.core.test_distill_run import distill_spec, teacher_run

# Tolerance of a float32 quantity recomputed by the same ops on the same inputs, then scaled by
# a float64 weight and rounded back to float32: a few units in the last place (2^-24 ~ 6e-8
# each); 1e-6 allows ~16 of them, far below any real mismatch (a weight off by one batch's
# share would be off by percents).
F32_REL = 1e-6
TUNED = MARSpec.WEIGHT_DEFAULTS  # one-stage defaults at index 0
RAW_TUNED = MARSpec.RAW_WEIGHT_DEFAULTS


@pytest.fixture(scope="module")
def teacher(tiny_synth, tmp_path_factory):
    return teacher_run(tiny_synth, tmp_path_factory.mktemp("auto-teacher"), "retinanet")


def job(tiny_synth, teacher, iterations=1, **distill) -> JobSpec:
    base = distill_spec(tiny_synth, teacher, "retinanet", kd_warmup_iters=0, **distill).to_json_dict()
    base["train"].update(iterations=iterations, hflip=0.0, eval_max_images=2)
    return JobSpec.model_validate(base)


def loss_rows(workdir):
    """Per step: the step and every loss term as logged (no timings)."""
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [
        {k: v for k, v in r.items() if k == "step" or k.startswith("loss/")}
        for r in rows
        if "loss/total" in r
    ]


# ------------------------------------------------------------------------------------- spec


def test_every_kd_weight_accepts_auto_and_default_and_refuses_other_strings():
    for method, m in METHODS.items():
        assert set(m.spec.TERM_WEIGHTS.values()) == set(m.spec.WEIGHT_DEFAULTS), method
        for field in m.spec.WEIGHT_DEFAULTS:
            for word in ("auto", "default"):
                assert getattr(parse_distill({"method": method, field: word}), field) == word
            assert getattr(parse_distill({"method": method, field: 0.25}), field) == 0.25
            for bad in ("automatic", "Auto", -1.0):
                spec = {**tiny_spec_dict(), "kind": "distill", "teacher": {"checkpoint": "t"}}
                spec["distill"] = {"method": method, field: bad}
                with pytest.raises(ValidationError) as err:
                    JobSpec.model_validate(spec)
                (e,) = err.value.errors()
                assert e["loc"] == ("distill", field)
                assert "a KD weight is a number in 0.." in e["msg"] and repr(bad) in e["msg"]


def tiny_spec_dict():
    return {"kind": "train", "dataset": {"format": "coco", "path": "d"}, "model": {"arch": "retinanet"}}


def test_unset_weights_in_a_job_are_auto_but_mars_gamma_default_in_the_library_and_auto_must_be_sized():
    spec = MARSpec(alpha=0.1, gamma="default")
    job_cfg = spec.with_job_weights(two_stage=False)
    assert (job_cfg.alpha, job_cfg.beta, job_cfg.gamma) == (0.1, "auto", "default")
    assert job_cfg.auto_weight_fields() == ["beta"]
    assert MARSpec().with_job_weights(two_stage=False).gamma == "default"  # "auto" sizes gamma far too small
    # two-stage: the raw form, whose tuned numbers beat "auto"
    two = MARSpec().with_job_weights(two_stage=True)
    assert (two.feature_norm, two.alpha, two.beta, two.gamma) == ("none", "default", "default", "default")
    assert parse_distill({"method": "pkd"}).with_job_weights(two_stage=False).loss_weight == "auto"
    lib = MARSpec(alpha=0.1).with_weight_defaults(two_stage=False)
    assert (lib.alpha, lib.beta, lib.gamma) == (0.1, TUNED["beta"][0], TUNED["gamma"][0])
    assert job_cfg.with_weight_defaults(two_stage=True).gamma == TUNED["gamma"][1]
    # the raw maps keep their own tuned defaults
    raw = MARSpec(feature_norm="none").with_weight_defaults(two_stage=True)
    assert (raw.alpha, raw.beta, raw.gamma) == tuple(RAW_TUNED[k][1] for k in ("alpha", "beta", "gamma"))
    with pytest.raises(ValueError, match="beta = 'auto' must be sized"):
        build_kd_loss(job_cfg, 32, 5, two_stage=False)


# ------------------------------------------------------------------------------ measurement


def bn_pair(num_classes=4):
    torch.manual_seed(0)
    model = {"arch": "retinanet", "min_size": 64, "max_size": 64, "anchor_scale": 0.5}
    student = build_detector(ModelSpec(**model, fpn_channels=32, norm="batch"), num_classes)
    teacher = build_detector(ModelSpec(**model, fpn_channels=48), num_classes)
    return student, teacher


def test_measure_kd_terms_leaves_no_trace_and_equals_a_direct_forward(tiny_synth):
    ds = load_dataset(tiny_spec(tiny_synth).dataset, "train")
    student, teacher = bn_pair(ds.num_classes)  # BatchNorm: a train-mode forward moves its statistics
    batches = list(build_train_loader(ds, 4, 0, 0, 2))
    distiller = Distiller(student, teacher, MARSpec(alpha=1.0, beta=1.0, gamma=1.0), "retinanet", "retinanet")
    distiller.eval()
    distiller.kd_scale = 0.25
    before = {k: v.clone() for k, v in distiller.state_dict().items()}
    rng = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())

    sizes = measure_kd_terms(distiller, batches)

    after = distiller.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "measuring changed the model's state"
    assert not distiller.training and not distiller.student.training and distiller.kd_scale == 0.25
    assert torch.equal(torch.get_rng_state(), rng[0]) and random.getstate() == rng[1]
    assert np.array_equal(np.random.get_state()[1], rng[2])
    assert sizes.classification_loss == "classification" and sizes.batches == 2
    assert set(sizes.terms) == {"fg", "bg", "relation"}

    distiller.train()  # the same forwards, by hand
    distiller.kd_scale = 1.0
    with torch.no_grad():
        rows = [{k: float(v) for k, v in distiller(*b).items()} for b in batches]
    assert sizes.classification == pytest.approx(sum(r["classification"] for r in rows) / 2, rel=F32_REL)
    for term, value in sizes.terms.items():
        assert value == pytest.approx(sum(r[f"kd/{term}"] for r in rows) / 2, rel=F32_REL), term
    distiller.close()


def test_an_auto_weight_whose_term_is_zero_keeps_the_methods_default():
    student, teacher = bn_pair()
    images = [torch.rand(3, 64, 64) for _ in range(2)]
    no_boxes = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)} for _ in range(2)]

    def build(cfg):
        return Distiller(student, teacher, cfg, "retinanet", "retinanet")

    # no box: the foreground mask is empty, L_fg = 0 at the start: alpha keeps MAR's default
    cfg, record = resolve_kd_weights(
        MARSpec(), False, build, lambda n: [(images, no_boxes)] * n, torch.device("cpu")
    )
    assert cfg.alpha == TUNED["alpha"][0]
    assert record["source"]["alpha"].startswith("default") and record["calibration"]["raw"]["fg"] == 0.0
    assert record["source"]["beta"] == "auto" and cfg.beta > 0  # the other terms are sized
    cfg, record = resolve_kd_weights(
        MARSpec(alpha=0.1), False, build, lambda n: [(images, no_boxes)] * n, torch.device("cpu")
    )
    assert record["source"] == {"alpha": "spec", "beta": "auto", "gamma": "default"} and cfg.beta > 0


# --------------------------------------------------------------------------------- the job


def test_a_distill_job_sizes_unset_weights_to_the_target_ratio_and_reports_them(
    tiny_synth, teacher, tmp_path, monkeypatch
):
    # One batch measured, no flips: the first training step sees exactly the measured batch with
    # the measured model, so each logged KD term is TARGET_RATIO x the classification loss.
    monkeypatch.setattr(auto_weights, "CALIBRATION_BATCHES", 1)
    events = []
    report = run_job(job(tiny_synth, teacher), tmp_path / "s", progress=events.append)

    kd = report["kd_weights"]
    assert kd["source"] == {"alpha": "auto", "beta": "auto", "gamma": "default"}
    assert kd["weights"]["gamma"] == TUNED["gamma"][0]
    sized = {"fg": "alpha", "bg": "beta"}
    cal = kd["calibration"]
    assert (
        cal["target"] == TARGET_RATIO
        and cal["batches"] == 1
        and cal["classification_loss"] == "classification"
    )
    assert set(cal["raw"]) == set(sized)
    for term, field in sized.items():
        assert kd["weights"][field] == pytest.approx(
            TARGET_RATIO * cal["classification"] / cal["raw"][term], rel=1e-12
        )
        assert kd["weights"][field] != TUNED[field][0]
    (first,) = loss_rows(tmp_path / "s")[:1]
    for term in sized:
        ratio = first[f"loss/kd/{term}"] / first["loss/det/classification"]
        assert ratio == pytest.approx(TARGET_RATIO, rel=F32_REL), term
    assert json.loads((tmp_path / "s" / "report.json").read_text())["kd_weights"] == kd
    (event,) = [e for e in events if e.get("type") == "log" and "kd_weights" in e]
    assert event["level"] == "info" and event["kd_weights"] == kd
    assert "alpha" in event["message"] and "(auto)" in event["message"]


def test_a_number_overrides_auto_and_sizing_changes_nothing_but_the_weights(tiny_synth, teacher, tmp_path):
    mixed = run_job(job(tiny_synth, teacher, 2, alpha=0.01, beta="default", gamma="auto"), tmp_path / "mixed")
    kd = mixed["kd_weights"]
    assert kd["source"] == {"alpha": "spec", "beta": "default", "gamma": "auto"}
    assert kd["weights"]["alpha"] == 0.01 and kd["weights"]["beta"] == TUNED["beta"][0]
    assert set(kd["calibration"]["raw"]) == {"relation"}  # only the auto field's term is sized

    numbers = run_job(job(tiny_synth, teacher, 2, **kd["weights"]), tmp_path / "numbers")
    assert numbers["kd_weights"]["source"] == dict.fromkeys(kd["weights"], "spec")
    assert numbers["kd_weights"]["calibration"] is None
    assert numbers["kd_weights"]["weights"] == kd["weights"]
    # the measurement left no trace: same losses at every step, same final weights, bit for bit
    assert loss_rows(tmp_path / "mixed") == loss_rows(tmp_path / "numbers")
    a, b = safe_load(tmp_path / "mixed" / "model.pt"), safe_load(tmp_path / "numbers" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_resumed_run_keeps_the_weights_of_its_start(tiny_synth, teacher, tmp_path, monkeypatch):
    spec = job(tiny_synth, teacher, 4)
    calls = {"n": 0}

    def stop_after_two_steps() -> bool:
        calls["n"] += 1
        return calls["n"] >= 2

    with pytest.raises(JobCancelled):
        run_job(spec, tmp_path / "w", should_stop=stop_after_two_steps)
    ckpt = safe_load(tmp_path / "w" / "checkpoints" / "last.pt")
    started = ckpt["extra"]["kd_weights"]
    assert started["source"]["alpha"] == "auto"
    shutil.copytree(tmp_path / "w", tmp_path / "legacy")

    def no_measuring(*args, **kwargs):
        raise AssertionError("a resumed run must not size its weights again")

    monkeypatch.setattr(auto_weights, "measure_kd_terms", no_measuring)
    events = []
    report = run_job(spec, tmp_path / "w", progress=events.append)
    assert report["resumed_from_step"] == 2 and report["kd_weights"] == started
    assert any(e.get("kd_weights") == started for e in events)

    # a checkpoint from before "auto" existed: its run took the defaults, so its resume does too
    legacy = tmp_path / "legacy" / "checkpoints" / "last.pt"
    state = safe_load(legacy)
    del state["extra"]["kd_weights"]
    atomic_torch_save(state, legacy)
    old = run_job(spec, tmp_path / "legacy")
    assert old["kd_weights"]["weights"] == {k: v[0] for k, v in TUNED.items()}
    assert old["kd_weights"]["source"] == dict.fromkeys(TUNED, "default")


# ------------------------------------------------------------------------------- benchmark


def test_benchmark_raw_mar_keeps_its_tuned_numbers_mar_is_the_job_default_and_raw_auto_sizes_its_own():
    preset = get_preset("cpu")
    bccd = preset.group("retina-bccd")
    assert {"mar", RAW_MAR, AUTO_WEIGHTS_STUDENT} <= set(bccd.students)
    raw = student_run(preset, bccd, RAW_MAR, 0).spec["distill"]
    assert {k: raw[k] for k in RAW_TUNED} == {k: v[0] for k, v in RAW_TUNED.items()}  # pinned before hashing
    assert raw["feature_norm"] == "none"
    auto = student_run(preset, bccd, AUTO_WEIGHTS_STUDENT, 0).spec["distill"]
    assert {k: auto[k] for k in RAW_TUNED} == dict.fromkeys(RAW_TUNED, "auto")
    # "mar" is what a job runs for {"method": "mar"}: standardised maps, alpha / beta sized, gamma tuned
    mar = student_run(preset, bccd, "mar", 0).spec["distill"]
    job = MARSpec().with_job_weights(two_stage=False).with_weight_defaults(two_stage=False)
    assert {k: mar[k] for k in (*TUNED, "feature_norm")} == {
        k: getattr(job, k) for k in (*TUNED, "feature_norm")
    }
    assert (mar["alpha"], mar["beta"], mar["gamma"], mar["feature_norm"]) == (
        "auto",
        "auto",
        150.0,
        "channel",
    )


def test_report_states_auto_against_tuned_with_the_weights(tmp_path):
    preset = get_preset("cpu")
    bccd = preset.group("retina-bccd")
    store = ResultStore(tmp_path)
    picked = {"alpha": 1.7e-4, "beta": 4e-4, "gamma": 3.4}
    for label, aps in ((RAW_MAR, [0.43, 0.44, 0.42]), (AUTO_WEIGHTS_STUDENT, [0.42, 0.43, 0.431])):
        for seed, ap in enumerate(aps):
            run = student_run(preset, bccd, label, seed)
            rec = {"key": run.key, "kind": "student", "preset": "cpu", "group": bccd.name, "label": label}
            rec |= {
                "seed": seed,
                "spec": run.spec,
                "eval": {"AP": ap},
                "wall_seconds": 1.0,
                "params": {"model": 1},
            }
            if label == AUTO_WEIGHTS_STUDENT:
                raw = {"fg": 3000.0, "bg": 1500.0, "relation": 0.2}
                cal = {"target": 0.5, "classification": 1.2, "raw": raw}
                rec["kd_weights"] = {
                    "weights": picked,
                    "source": dict.fromkeys(picked, "auto"),
                    "calibration": cal,
                }
            store.put(rec)
    view = GroupView(ResultStore(tmp_path), preset, bccd)
    (line,) = _auto_vs_tuned(view)
    assert line.startswith(
        "- Auto vs tuned KD weights (`mar_raw_auto` against `mar_raw`, 3 and 3 seeds): difference of means "
        "-0.30 AP, within twice the seed spread (2.00 AP): **goal met**. Same seed: auto above tuned on "
        "1 of 3 seeds (s0 -1.00, s1 -1.00, s2 +1.10; mean -0.30 ± 1.21)."
    )
    assert "s0: alpha 0.00017, beta 0.0004, gamma 3.4" in line
    assert "tuned: alpha 0.0005, beta 0.00015, gamma 150." in line
    # 5e-4 * 3000 / 1.2, 1.5e-4 * 1500 / 1.2, 150 * 0.2 / 1.2
    assert line.endswith(
        "By seed 0's measurement the tuned weights start the terms at fg 1.25x, bg 0.188x, relation 25x "
        "the classification loss; auto starts each at 0.5x."
    )
    assert not any(AUTO_WEIGHTS_STUDENT in x for x in _ablations(view))  # not an ablation of MAR
