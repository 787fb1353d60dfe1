"""The cached records of one benchmark group, and the verdicts the report states about them.

``GroupView`` gathers a group's student records by label and seed (and its teacher's), and answers
the questions BENCHMARKS.md asks per group: does MAR beat the baseline by more than twice the seed
spread, does it reach the teacher, where does it rank among the peers. The detailed group section
(``report``) and the summary table (``report_glance``) both read them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchmarks.plan import student_run, takes_tuning_points, teacher_run, tune_group, warm_start_run
from benchmarks.presets import GroupDef, Preset
from benchmarks.roster import group_students
from benchmarks.stats import Summary
from benchmarks.store import ResultStore
from benchmarks.teachers import published_report, teachers_beside
from benchmarks.tune_points import is_peer_label, peer_labels
from benchmarks.warm_start import current_record

# AP: the least gap at which a teacher is "clearly better" than the baseline student (the larger of
# this and twice the baseline's seed spread); below it there is no gap to close.
TEACHER_MARGIN = 0.02


def record_ap(rec: dict[str, Any] | None, key: str = "AP") -> float | None:
    """A record's COCO metric ``key`` in [0, 1]; None without a record."""
    return None if rec is None else float(rec["eval"].get(key, 0.0))


@dataclass(frozen=True)
class Rank:
    """MAR's place among MAR and the peers that have results, by mean AP (1 = best)."""

    place: int
    of: int
    ranked: list[tuple[str, float]]  # (label, mean AP), best first
    complete: bool  # every seed of MAR and of every peer planned in the group is in


class GroupView:
    """The cached records of one group, by student label and seed."""

    def __init__(self, store: ResultStore, preset: Preset, group: GroupDef):
        self.preset, self.group = preset, group
        # what the group runs now, and every label shown: those and the peers that ran in this
        # group before (a choice made earlier stays reported, but is no longer owed seeds), at any
        # tuning point in the one-stage groups beyond the tuning group (whose points the equal
        # tuning section reports)
        planned, self.choice = group_students(store, preset, group)
        self.planned: tuple[str, ...] = tuple(planned)
        self.labels = list(planned)
        with_points = takes_tuning_points(group) and group != tune_group(preset)
        for peer in peer_labels(with_points):
            if peer not in self.labels and any(
                store.has(student_run(preset, group, peer, s).key) for s in preset.seeds
            ):
                self.labels.append(peer)
        self.recs: dict[str, dict[int, dict[str, Any]]] = {}
        for label in self.labels:
            for seed in preset.seeds:
                # a warm-started result continued from an earlier start than the one on record is
                # left out (``warm_start``)
                rec = current_record(store, preset, student_run(preset, group, label, seed))
                if rec is not None:
                    self.recs.setdefault(label, {})[seed] = rec
        # a warm-started group's starts: each seed's run whose final weights its students load
        self.starts: dict[int, dict[str, Any]] = {}
        if group.warm_start_from:
            for seed in preset.seeds:
                rec = store.get(warm_start_run(preset, group, seed).key)
                if rec is not None:
                    self.starts[seed] = rec
        trun = teacher_run(preset, preset.teachers[group.teacher])
        self.teacher = store.get(trun.key)
        # what the students distil from: the float16 copy, with its AP re-measured
        self.published = published_report(teachers_beside(store.root), trun)

    @property
    def runs_cached(self) -> int:
        return sum(len(self.recs.get(label, {})) for label in self.planned)

    @property
    def runs_planned(self) -> int:
        return len(self.planned) * len(self.preset.seeds)

    def teacher_ap(self, key: str = "AP") -> float | None:
        """The teacher's AP as the students see it (published float16 weights when published)."""
        return record_ap(self.published, key) if self.published else record_ap(self.teacher, key)

    def summary(self, label: str) -> Summary:
        return Summary.of([record_ap(r) for r in self.recs.get(label, {}).values()])

    def teacher_margin(self) -> float:
        """The teacher-baseline gap (AP) above which the teacher is clearly better: the larger of
        ``TEACHER_MARGIN`` and twice the baseline's seed spread."""
        return max(TEACHER_MARGIN, 2 * (self.summary("baseline").std or 0.0))

    def teacher_gap(self) -> float | None:
        """Teacher AP minus the baseline's mean AP; None without either."""
        base, t_ap = self.summary("baseline").mean, self.teacher_ap()
        return None if base is None or t_ap is None else t_ap - base

    def teacher_clearly_better(self) -> bool | None:
        """Whether the teacher-baseline gap exceeds ``teacher_margin``; None without either AP."""
        gap = self.teacher_gap()
        return None if gap is None else gap > self.teacher_margin()

    def gap_closed(self, label: str) -> float | None:
        """The fraction of the teacher-baseline gap that ``label`` closes by mean AP (1: reaches
        the teacher; negative: below the baseline). None without both means and a teacher, and
        None where the teacher is not clearly better than the baseline (``teacher_margin``): a
        fraction of a gap within the seed noise says nothing."""
        mean = self.summary(label).mean
        if mean is None or not self.teacher_clearly_better():
            return None
        return (mean - self.summary("baseline").mean) / self.teacher_gap()

    def ap_by_seed(self, label: str) -> dict[int, float]:
        return {seed: record_ap(r) for seed, r in self.recs.get(label, {}).items()}

    def gains_over_start(self, label: str) -> dict[int, float]:
        """Per seed, ``label``'s AP minus the AP of the run it started from (warm-started groups;
        seeds with both records)."""
        return {
            seed: ap - record_ap(self.starts[seed])
            for seed, ap in self.ap_by_seed(label).items()
            if seed in self.starts
        }

    def mar_rank(self) -> Rank | None:
        """None until MAR and at least one peer have a result."""
        peers = [p for p in self.labels if is_peer_label(p) and self.summary(p).n]
        if not self.summary("mar").n or not peers:
            return None
        ranked = sorted(((x, self.summary(x).mean) for x in ["mar", *peers]), key=lambda t: -t[1])
        # every planned peer, those without any result too; earlier peers are not owed seeds
        owed = ["mar", *(p for p in self.planned if is_peer_label(p))]
        complete = all(self.summary(x).n == len(self.preset.seeds) for x in owed)
        return Rank([x for x, _ in ranked].index("mar") + 1, len(ranked), ranked, complete)

    def missing(self) -> list[str]:
        out = []
        for label in self.planned:
            seeds = [s for s in self.preset.seeds if s not in self.recs.get(label, {})]
            if seeds:
                out.append(f"{label} (seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})")
        return out
