"""The distiller search (``distill.method: "auto"``): its plan keeps to the budget, it ranks on
images held out of the training split, every trial is recorded, and it resumes and cancels like
any job. Tiny jobs: 64 px, a handful of steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mar_core.data import load_dataset
from mar_core.errors import JobCancelled, MarError, NonFiniteLossError, SpecError
from mar_core.methods import NO_KD, parse_distill
from mar_core.models.loading import load_detector
from mar_core.run import run_job
from mar_core.search.candidates import search_candidates
from mar_core.search.halving import EVAL_RESERVE, halving_plan, planned_steps
from mar_core.search.selection import split_for_selection
from mar_core.spec import JobSpec
from tests.conftest import tiny_spec

ITERATIONS = 8


@pytest.mark.parametrize("n", range(2, 11))
@pytest.mark.parametrize("budget", [1.5, 2.0, 3.0])
def test_plan_keeps_to_the_budget(n, budget):
    iterations = 700
    plan = halving_plan(n, budget, iterations)
    steps = [r.step for r in plan]
    assert steps == sorted(set(steps)) and 0 < steps[0] and steps[-1] < iterations
    assert [r.keep for r in plan][-1] == 1 and all(a.keep > b.keep for a, b in zip(plan, plan[1:]))
    cost = planned_steps(n, plan, iterations)
    assert cost <= budget * iterations and cost <= (budget - EVAL_RESERVE) * iterations + n  # n: rounding up


def test_plan_names_what_to_change_when_the_run_is_too_short():
    assert halving_plan(1, 2.0, 10) == []
    with pytest.raises(SpecError) as err:
        halving_plan(10, 1.5, 6)
    assert err.value.param == "train.iterations"


def test_selection_split_is_fixed_by_the_seed_and_disjoint():
    fit, select = split_for_selection(600, 0.15, seed=3)
    assert (fit, select) == split_for_selection(600, 0.15, seed=3)
    assert split_for_selection(600, 0.15, seed=4)[1] != select
    assert len(select) == 90 and not set(fit) & set(select) and sorted(fit + select) == list(range(600))
    assert split_for_selection(2, 0.5, 0) in (([0], [1]), ([1], [0]))
    with pytest.raises(SpecError):
        split_for_selection(1, 0.15, 0)


def test_candidates_come_from_the_registry():
    auto = parse_distill({"method": "auto"})
    one = search_candidates(auto, two_stage=False)
    assert [c.label for c in one] == ["mar", "cwd_head_x9", "mar_cross", NO_KD]
    assert one[1].distill == {"method": "cwd_head", "auto_scale": 9.0}
    assert [c.label for c in search_candidates(auto, two_stage=True)] == ["mar", "logit_kd", NO_KD]
    named = parse_distill({"method": "auto", "candidates": ["pkd", "mar"], "kd_warmup_iters": 0})
    assert [(c.label, c.distill) for c in search_candidates(named, False)] == [
        ("mar", {"method": "mar", "kd_warmup_iters": 0}),
        ("pkd", {"method": "pkd", "kd_warmup_iters": 0}),
    ]


def test_spec_errors_name_the_field():
    with pytest.raises(ValueError, match="unknown candidate"):
        parse_distill({"method": "auto", "candidates": ["nope"]})
    with pytest.raises(ValueError, match="budget"):
        parse_distill({"method": "auto", "budget": 1.0})


@pytest.fixture(scope="module")
def teacher_dir(tiny_synth, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("search") / "teacher"
    run_job(
        tiny_spec(tiny_synth, model={"backbone": "resnet34", "fpn_channels": 48}, train={"iterations": 2}),
        out,
    )
    return out


def auto_spec(data: Path, teacher: Path, **distill) -> JobSpec:
    base = tiny_spec(
        data, train={"iterations": ITERATIONS, "log_every": 1, "checkpoint_every": 1}
    ).to_json_dict()
    base.update(kind="distill", teacher={"checkpoint": str(teacher)}, distill={"method": "auto", **distill})
    return JobSpec.model_validate(base)


@pytest.fixture(scope="module")
def searched(tiny_synth, teacher_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("search") / "job"
    events: list[dict] = []
    report = run_job(auto_spec(tiny_synth, teacher_dir), workdir, progress=events.append)
    return workdir, report, events


def test_search_records_every_trial_and_trains_the_winner(searched, tiny_synth):
    workdir, report, events = searched
    search = report["search"]
    board = {row["label"]: row for row in search["leaderboard"]}
    assert set(board) == {"mar", "cwd_head_x9", "mar_cross", NO_KD}
    first, last = (r["step"] for r in search["rungs"])
    assert all(str(first) in row["rungs"] for row in board.values())  # every candidate ranked once
    assert sum(str(last) in row["rungs"] for row in board.values()) == 2  # the better half again
    assert [row["label"] for row in search["leaderboard"] if row["chosen"]] == [search["chosen"]]
    assert search["compute"]["planned_multiple"] <= 2.0
    assert report["spec"]["distill"]["method"] == "auto" and report["iterations"] == ITERATIONS
    # per-trial metrics and events reach the job, under the trial's name
    names = {k for e in events if e["type"] == "metrics" for k in e["values"]}
    for label in board:
        assert f"search/{label}/select/AP" in names and f"search/{label}/loss/total" in names
    assert "loss/total" in names and "eval/AP" in names  # the winner's own series
    steps = [e["step"] for e in events if e["type"] == "progress"]
    assert steps == sorted(steps) and steps[-1] == search["compute"]["planned_steps"]
    assert not any(e["type"] == "checkpoint" and "trials" in e["path"] for e in events)
    # the winner's model is the job's and loads as a plain detector
    assert load_detector(workdir).model is not None
    assert json.loads((workdir / "report.json").read_text())["search"]["chosen"] == search["chosen"]


def test_selection_images_are_training_images_never_validation(searched, tiny_synth):
    _, report, _ = searched
    selection = report["search"]["selection"]
    spec = JobSpec.model_validate(report["spec"])
    train, val = load_dataset(spec.dataset, "train"), load_dataset(spec.dataset, "val")
    train_files = {train.image_path(i).resolve() for i in range(len(train))}
    val_files = {val.image_path(i).resolve() for i in range(len(val))}
    index = {train.image_info(i)["id"]: i for i in range(len(train))}
    chosen = {train.image_path(index[i]).resolve() for i in selection["image_ids"]}
    assert selection["split"] == "train" and len(chosen) == selection["images"] == round(0.15 * len(train))
    assert chosen <= train_files and not chosen & val_files
    assert selection["train_images"] == len(train) - selection["images"]


def test_search_resumes_after_a_kill_without_running_ranked_trials_again(tiny_synth, teacher_dir, tmp_path):
    spec = auto_spec(tiny_synth, teacher_dir)
    steps: list[int] = []

    def count(event):
        if event["type"] == "progress":
            steps.append(event["step"])

    # rungs at steps 1 and 3: stopped in the first rung's third trial, after its first step
    with pytest.raises(JobCancelled):
        run_job(spec, tmp_path / "job", progress=count, should_stop=lambda: len(steps) >= 3)
    state = json.loads((tmp_path / "job" / "search" / "state.json").read_text())
    assert [r["step"] for r in state["rungs"]] == [1, 3]
    assert set(state["results"]) == {"mar", "cwd_head_x9"}

    logs: list[str] = []
    report = run_job(spec, tmp_path / "job", progress=lambda e: logs.append(e.get("message", "")))
    ranked_again = [
        m
        for m in logs
        if m.startswith(("search trial mar at step 1:", "search trial cwd_head_x9 at step 1:"))
    ]
    assert ranked_again == []
    # the interrupted trial had its step: it is ranked from its checkpoint, not trained again
    assert sum(m.startswith("search trial mar_cross at step 1:") for m in logs) == 1
    assert not any(m.startswith("[search mar_cross]") and "KD weights" in m for m in logs)
    board = {row["label"]: row for row in report["search"]["leaderboard"]}
    assert board["mar"]["rungs"]["1"] == state["results"]["mar"]["1"]
    assert report["search"]["chosen"] in board and (tmp_path / "job" / "model.pt").exists()


def test_cancel_stops_the_search_and_starts_no_other_trial(tiny_synth, teacher_dir, tmp_path):
    with pytest.raises(JobCancelled):
        run_job(auto_spec(tiny_synth, teacher_dir), tmp_path / "job", should_stop=lambda: True)
    trials = tmp_path / "job" / "search" / "trials"
    assert [p.name for p in trials.iterdir()] == ["mar"]
    assert not (tmp_path / "job" / "model.pt").exists()


def test_warm_student_no_better_teacher_trains_without_kd(tiny_synth, teacher_dir, tmp_path):
    """The student starts from the teacher's own weights: the teacher is not clearly better, so the
    job warns and trains without KD, with no search."""
    base = auto_spec(tiny_synth, teacher_dir).to_json_dict()
    base["model"] = {**base["model"], "backbone": "resnet34", "fpn_channels": 48}
    base["model"]["init_checkpoint"] = str(teacher_dir / "model.pt")
    events: list[dict] = []
    report = run_job(JobSpec.model_validate(base), tmp_path / "job", progress=events.append)
    search = report["search"]
    assert search["chosen"] == NO_KD and search["rungs"] == [] and not search["kd_expected"]
    assert search["start_check"]["teacher_clearly_better"] is False
    assert any(
        e["type"] == "log" and e["level"] == "warning" and "not expected to help" in e["message"]
        for e in events
    )
    assert report["kind"] == "train" and report.get("kd_weights") is None


def test_a_diverging_candidate_is_ranked_last_and_the_search_goes_on(
    tiny_synth, teacher_dir, tmp_path, monkeypatch
):
    import mar_core.search.runner as runner

    real = runner.run_single_job

    def diverge_mar_cross(spec, workdir, **kwargs):
        if Path(workdir).name == "mar_cross":
            raise NonFiniteLossError("kd/crosskd/cls", 1, {"kd/crosskd/cls": float("inf")})
        return real(spec, workdir, **kwargs)

    monkeypatch.setattr(runner, "run_single_job", diverge_mar_cross)
    events: list[dict] = []
    report = run_job(auto_spec(tiny_synth, teacher_dir), tmp_path / "job", progress=events.append)
    board = {row["label"]: row for row in report["search"]["leaderboard"]}
    assert board["mar_cross"]["rungs"]["1"]["failed"].startswith("loss 'kd/crosskd/cls' is not finite")
    assert board["mar_cross"]["stopped_at"] == 1 and report["search"]["chosen"] != "mar_cross"
    assert any(e["type"] == "log" and "mar_cross diverged" in e["message"] for e in events)


def test_a_diverged_candidate_is_not_kept_when_too_few_healthy_ones_remain(
    tiny_synth, teacher_dir, tmp_path, monkeypatch
):
    import mar_core.search.runner as runner

    real = runner.run_single_job
    calls: list[str] = []

    def diverge_all_kd(spec, workdir, **kwargs):
        calls.append(Path(workdir).name)
        if Path(workdir).name in ("mar", "cwd_head_x9", "mar_cross"):
            raise NonFiniteLossError("kd/total", 1, {"kd/total": float("nan")})
        return real(spec, workdir, **kwargs)

    monkeypatch.setattr(runner, "run_single_job", diverge_all_kd)
    report = run_job(auto_spec(tiny_synth, teacher_dir), tmp_path / "job")
    board = {row["label"]: row for row in report["search"]["leaderboard"]}
    # the first rung keeps 2 of 4; only "none" is healthy, so it alone goes on
    for label in ("mar", "cwd_head_x9", "mar_cross"):
        assert board[label]["stopped_at"] == 1 and calls.count(label) == 1
    assert report["search"]["chosen"] == NO_KD


def test_when_every_candidate_diverges_the_job_fails_naming_them(
    tiny_synth, teacher_dir, tmp_path, monkeypatch
):
    import mar_core.search.runner as runner

    def diverge(spec, workdir, **kwargs):
        raise NonFiniteLossError("det/classification", 1, {"det/classification": float("nan")})

    monkeypatch.setattr(runner, "run_single_job", diverge)
    with pytest.raises(
        MarError, match="every candidate of the distiller search diverged by step 1"
    ) as failed:
        run_job(auto_spec(tiny_synth, teacher_dir), tmp_path / "job")
    for label in ("mar", "cwd_head_x9", "mar_cross", NO_KD):
        assert f"{label}: loss 'det/classification' is not finite" in failed.value.message
