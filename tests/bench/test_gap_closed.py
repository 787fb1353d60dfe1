"""The fraction of the teacher-baseline gap a student closes is stated only where there is a gap:
where the teacher is not clearly better than the baseline (by more than ``TEACHER_MARGIN`` and
twice the baseline's seed spread), a fraction of it is noise and the report shows none."""

from __future__ import annotations

import pytest

from benchmarks.group_view import TEACHER_MARGIN, GroupView
from benchmarks.plan import student_run, teacher_run
from benchmarks.presets import get_preset
from benchmarks.report_glance import gap_rows, quality_rows
from benchmarks.store import ResultStore
from tests.bench.records import fake_result

GROUP = "retina-synth-short"


def _view(tmp_path, teacher: float, baseline: list[float], mar: list[float]) -> GroupView:
    cpu = get_preset("cpu")
    group = cpu.group(GROUP)
    store = ResultStore(tmp_path / "results")
    fake_result(store, teacher_run(cpu, cpu.teachers[group.teacher]), teacher)
    for seed, ap in enumerate(baseline):
        fake_result(store, student_run(cpu, group, "baseline", seed), ap)
    for seed, ap in enumerate(mar):
        fake_result(store, student_run(cpu, group, "mar", seed), ap)
    return GroupView(store, cpu, group)


def test_a_clear_gap_gives_the_fraction_closed(tmp_path):
    v = _view(tmp_path, teacher=0.32, baseline=[0.26, 0.26], mar=[0.30, 0.30])
    assert v.teacher_margin() == TEACHER_MARGIN  # no baseline spread
    assert v.gap_closed("mar") == pytest.approx((0.30 - 0.26) / (0.32 - 0.26))
    (row,) = quality_rows([v])
    assert row[9] == "0.67"
    assert gap_rows([v])[0][2] == "mar 0.67 (n=2)"  # two of three seeds: listed apart


def test_a_teacher_within_the_margin_leaves_no_fraction(tmp_path):
    # teacher 0.33 AP above the baseline: within the 2-point margin, so (0.2835 - 0.307) / 0.0033
    # = -7.1 would be noise dressed as a number
    v = _view(tmp_path, teacher=0.3103, baseline=[0.307, 0.307], mar=[0.2835, 0.2835])
    assert v.teacher_gap() == pytest.approx(0.0033)
    assert v.gap_closed("mar") is None
    (row,) = quality_rows([v])
    assert row[9] == "-"
    assert gap_rows([v]) == []


def test_the_margin_grows_with_the_baselines_seed_spread(tmp_path):
    # gap 0.07 is above the 2-point floor but below twice the baseline's spread (2 x 0.0424)
    v = _view(tmp_path, teacher=0.30, baseline=[0.20, 0.26], mar=[0.28, 0.28])
    assert v.teacher_margin() == pytest.approx(2 * 0.06 / 2**0.5)
    assert v.gap_closed("mar") is None
    # the same gap with a tight baseline is clear
    tight = _view(tmp_path / "tight", teacher=0.30, baseline=[0.23, 0.23], mar=[0.28, 0.28])
    assert tight.gap_closed("mar") == pytest.approx(5 / 7)
