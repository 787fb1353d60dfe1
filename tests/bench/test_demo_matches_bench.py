"""The demo reads the published teacher as data and writes its students out; these tests keep it
in step with the benchmark group it reproduces (``retina-synth-short``, seed 0: its students trained
in bf16)."""

from __future__ import annotations

from benchmarks.plan import settled_spec, student_run, teacher_run
from benchmarks.presets import get_preset
from benchmarks.teachers import DEFAULT_TEACHERS, published_dir
from mar_core.methods.base import RUNTIME_FIELDS
from mar_core.spec import JobSpec
from worker import demo_specs

GROUP = "retina-synth-short"


def test_the_demo_uses_the_groups_published_teacher_and_its_data():
    preset = get_preset("cpu")
    group = preset.group(GROUP)
    trun = teacher_run(preset, preset.teachers[group.teacher])
    assert demo_specs.PUBLISHED_TEACHER == published_dir(DEFAULT_TEACHERS, trun)
    assert demo_specs.PUBLISHED_DATA == dict(preset.datasets[group.data].synth)
    folder, report = demo_specs.published_teacher()
    assert folder == demo_specs.PUBLISHED_TEACHER and report["eval"]["AP"] > 0.4


def test_the_demo_students_are_the_groups_students():
    preset = get_preset("cpu")
    demo = demo_specs.published_student_specs("DATA", "TEACHER")
    for label, bench_label in (("baseline", "baseline_bf16"), ("mar", "mar_bf16")):
        bench = dict(student_run(preset, preset.group(GROUP), bench_label, 0).spec)
        bench.pop("resources", None)
        bench["dataset"] = {**bench["dataset"], "path": "DATA"}
        if bench.get("teacher"):
            bench["teacher"] = {**bench["teacher"], "checkpoint": "TEACHER"}
        want = JobSpec.model_validate(bench).to_json_dict()
        got = settled_spec(demo[label])  # as a job runs it: MAR's form and unset weights settled
        if got.get("distill"):  # how the teacher runs (the demo's cache) is not what is learnt
            got["distill"] = {k: v for k, v in got["distill"].items() if k not in RUNTIME_FIELDS}
        assert {**got, "name": None} == {**want, "name": None}, label
    assert demo["mar"]["distill"]["teacher_cache"] == "auto"
    assert demo["mar"]["distill"]["teacher_precision"] == "bf16"
