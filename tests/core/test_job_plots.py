"""What the dashboard plots, as a job writes it: PR curves per class whose mean is the class's AP,
and drawn sample predictions of the student (and of the teacher, for a distill job), at the end
and at each evaluation before it (rewritten under the same names by a resumed run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mar_core.data import load_dataset
from mar_core.eval import coco_evaluation
from mar_core.eval.pr_curves import IOU_50, IOU_50_95
from mar_core.eval_outputs import PR_CURVES, pr_curves_name
from mar_core.run import run_job
from mar_core.samples import SAMPLE_COUNT, sample_indices
from mar_core.spec import JobSpec
from tests.conftest import tiny_spec


def test_pr_curves_average_to_each_class_ap(tiny_synth):
    val = load_dataset(tiny_spec(tiny_synth).dataset, "val")
    rng = np.random.default_rng(0)
    results = []
    for ann in val.coco.loadAnns(val.coco.getAnnIds()):  # every box found, half of them shifted
        x, y, w, h = ann["bbox"]
        dx = float(rng.integers(0, 2)) * w * 0.4
        score = float(rng.uniform(0.1, 1.0))
        results.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "bbox": [x + dx, y, w, h],
                "score": score,
            }
        )
    ev = coco_evaluation(val.coco, results, val.class_names)
    assert 0 < ev.metrics["AP"] < 1
    for name in val.class_names:
        ap = ev.metrics[f"AP/{name}"]
        assert np.mean(ev.pr_curves["iou"][IOU_50_95][name]) == pytest.approx(ap, abs=1e-3)
        assert np.mean(ev.pr_curves["iou"][IOU_50][name]) >= ap - 1e-3


def test_sample_indices_are_spread_and_fixed():
    assert sample_indices(3) == [0, 1, 2]
    assert sample_indices(8, 4) == [0, 2, 5, 7]
    assert sample_indices(8, 1) == [0]


@pytest.fixture(scope="module")
def teacher_dir(tiny_synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    run_job(tiny_spec(tiny_synth, train={"iterations": 2}), out)
    return out


def test_train_job_writes_pr_curves_and_samples(teacher_dir):
    report = json.loads((teacher_dir / "report.json").read_text())
    curves = json.loads((teacher_dir / PR_CURVES).read_text())
    assert curves["step"] == 2
    assert len(curves["recall"]) == 101 and curves["recall"][0] == 0 and curves["recall"][-1] == 1
    for name in report["class_names"]:
        ap = report["eval"][f"AP/{name}"]
        curve = curves["iou"][IOU_50_95][name]
        if ap < 0:
            assert curve is None
        else:
            assert np.mean(curve) == pytest.approx(ap, abs=1e-3)
            assert len(curves["iou"][IOU_50][name]) == 101
    drawn = sorted((teacher_dir / "samples").iterdir())
    assert [p.name for p in drawn] == [f"student-{n}.png" for n in range(1, SAMPLE_COUNT + 1)]
    with Image.open(drawn[0]) as im:
        assert im.size == (64, 64)


def test_distill_job_draws_teacher_samples(tiny_synth, teacher_dir, tmp_path):
    base = tiny_spec(tiny_synth, train={"iterations": 1}).to_json_dict()
    base.update(kind="distill", teacher={"checkpoint": str(teacher_dir)})
    run_job(JobSpec.model_validate(base), tmp_path / "student")
    names = sorted(p.name for p in (tmp_path / "student" / "samples").iterdir())
    assert names == sorted(
        [f"student-{n}.png" for n in range(1, SAMPLE_COUNT + 1)]
        + [f"teacher-{n}.png" for n in range(1, SAMPLE_COUNT + 1)]
    )


def _student_samples(step: int | None) -> list[str]:
    folder = "" if step is None else f"step-{step}/"
    return [f"samples/{folder}student-{n}.png" for n in range(1, SAMPLE_COUNT + 1)]


class WorkerKilled(Exception):
    pass


def test_each_eval_leaves_its_outputs_and_a_resume_rewrites_them(tiny_synth, tmp_path):
    spec = tiny_spec(tiny_synth, train={"iterations": 3, "eval_every": 1, "checkpoint_every": 1})
    registered: list[list[str]] = [[], []]

    def progress(run: int):
        def on_event(event: dict) -> None:
            if event["type"] != "artifact":
                return
            assert Path(event["path"]).is_file()
            registered[run].append(event["name"])
            if run == 0 and event["name"] == "samples/step-2/student-1.png":
                raise WorkerKilled  # before step 2's checkpoint: the resumed run evaluates step 2 again

        return on_event

    with pytest.raises(WorkerKilled):
        run_job(spec, tmp_path, progress=progress(0))
    first, second = registered
    assert first == [pr_curves_name(1), *_student_samples(1), pr_curves_name(2), _student_samples(2)[0]]
    report = run_job(spec, tmp_path, progress=progress(1))
    assert report["resumed_from_step"] == 1
    assert second[:5] == [pr_curves_name(2), *_student_samples(2)]  # the same names again
    assert len(second) == len(set(second)) and not [n for n in second if "step-1" in n or "step-3" in n]
    assert {PR_CURVES, *_student_samples(None)} <= set(second)
    by_step = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.glob("**/*") if "step-" in str(p))
    assert by_step == sorted(
        [f"{d}/step-{n}" for d in ("samples",) for n in (1, 2)]
        + [pr_curves_name(1), pr_curves_name(2), *_student_samples(1), *_student_samples(2)]
    )
    for step in (1, 2):
        curves = json.loads((tmp_path / pr_curves_name(step)).read_text())
        assert curves["step"] == step and len(curves["recall"]) == 101
    assert json.loads((tmp_path / PR_CURVES).read_text())["step"] == 3
