"""What a preset runs: the logical specs and cache keys of its teachers and student runs.

Torch-free (the report uses it too). Which students a group runs is ``benchmarks.roster``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmarks.presets import (
    STUDENTS,
    SYNTH_KIND,
    TRAIN_OVERRIDES,
    DataDef,
    GroupDef,
    Preset,
    TeacherDef,
    student_distill,
)
from benchmarks.store import spec_key
from benchmarks.tune_points import parse_point, point_distill
from mar_core.methods import SEARCH_METHOD, AutoSpec
from mar_core.names import is_two_stage
from mar_core.search.candidates import search_candidates
from mar_core.spec import JobSpec

# Tuning (``mar bench tune`` and ``mar bench equal-tune``) runs on seed 0 of the short group.
TUNE_GROUP_SUFFIX = "-short"
TUNE_SEED = 0

TEACHER_PREFIX = "teacher:"
# A warm-started student's model.init_checkpoint in the hashed spec: the source run's key (the
# runner puts that run's folder in its place)
WARM_PREFIX = "run:"

# The cache keys of the peers' runs (every peer result in BENCHMARKS.md) were made when one flat
# distill model held every method's fields: a peer's hashed distill section held all the peer
# fields of that model, those it does not read at their defaults. ``cache_key`` puts them back,
# so these runs keep their keys; a method registered since hashes its own fields only.
LEGACY_PEER_METHODS = ("feature_mse", "fgd", "mgd", "pkd", "cwd")
LEGACY_PEER_FIELDS: dict[str, Any] = {
    "loss_weight": None,
    "temperature": 1.0,
    "mgd_ratio": None,
    "fgd_alpha": None,
    "fgd_beta": None,
    "fgd_gamma": None,
    "fgd_lambda": None,
}

# MAR fields added after its runs were cached, with the default that reproduces those runs: a
# section holding one at that default hashes without it, so the cached MAR runs keep their keys.
MAR_FIELDS_ADDED: dict[str, Any] = {"feature_norm": "none"}

# A search job's result depends on the registry's candidates, which its spec does not name: its key
# holds their labels (``search_candidates`` in the hashed spec), except for the sets its first runs
# were made with (one-stage, two-stage), so those runs keep their keys.
SEARCH_CANDIDATES_FIRST: tuple[tuple[str, ...], tuple[str, ...]] = (
    ("mar", "cwd_head_x9", "crosskd_x9", "none"),
    ("mar", "logit_kd", "none"),
)


@dataclass(frozen=True)
class RunDef:
    """One run: a teacher or a student (``label``) of ``group`` with ``seed``."""

    kind: str  # "teacher" | "student" | "tune"
    preset: str
    group: str
    label: str
    seed: int
    spec: dict[str, Any]  # logical spec (validated, defaults filled)
    key: str
    teacher_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. peer_selection


def dataset_section(data: DataDef) -> dict[str, Any]:
    """The spec's ``dataset`` section for ``data`` (its machine-independent logical path)."""
    fmt = "coco" if data.kind == SYNTH_KIND else data.kind
    return {
        "format": fmt,
        "path": data.logical_path,
        "train_split": data.train_split,
        "val_split": data.val_split,
    }


def settled_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec with defaults filled as a job would run it: a method's per-family form and its
    unset weights as a job takes them (``with_job_weights``: "auto" stays "auto"), the rest
    pinned as numbers (``with_weight_defaults``: a new default weight re-keys its runs). A distill
    section holds only its method's fields, so a new MAR default does not re-key a peer's run (and
    vice versa)."""
    job = JobSpec.model_validate(spec)
    if job.distill is not None:
        two_stage = job.model.two_stage
        job = job.model_copy(
            update={"distill": job.distill.with_job_weights(two_stage).with_weight_defaults(two_stage)}
        )
    return job.to_json_dict()


def cache_key(logical_spec: dict[str, Any]) -> str:
    """The key of a run's logical spec: ``spec_key`` of it, a legacy peer's distill section laid
    out as when its runs were made (``LEGACY_PEER_FIELDS``), MAR's without the fields added since
    at their defaults (``MAR_FIELDS_ADDED``), a search's with its candidates' labels
    (``SEARCH_CANDIDATES_FIRST``)."""
    distill = logical_spec.get("distill")
    if distill and distill["method"] in LEGACY_PEER_METHODS:
        logical_spec = {**logical_spec, "distill": {**LEGACY_PEER_FIELDS, **distill}}
    elif distill and distill["method"] == "mar":
        kept = {k: v for k, v in distill.items() if k not in MAR_FIELDS_ADDED or v != MAR_FIELDS_ADDED[k]}
        logical_spec = {**logical_spec, "distill": kept}
    elif distill and distill["method"] == SEARCH_METHOD:
        two_stage = is_two_stage(logical_spec["model"]["arch"])
        labels = tuple(c.label for c in search_candidates(AutoSpec.model_validate(distill), two_stage))
        if labels != SEARCH_CANDIDATES_FIRST[two_stage]:
            logical_spec = {**logical_spec, "search_candidates": list(labels)}
    return spec_key(logical_spec)


def takes_tuning_points(group: GroupDef) -> bool:
    """Whether ``group`` can run a tuning point's weights: they are one-stage weights."""
    return not is_two_stage(group.student_model["arch"])


def tune_group(preset: Preset) -> GroupDef:
    """The synthetic short group of the preset (the first group whose name ends in ``-short``)."""
    for g in preset.groups:
        if g.name.endswith(TUNE_GROUP_SUFFIX) or preset.name == "smoke":
            return g
    raise KeyError(f"preset {preset.name} has no short group to tune on")


def teacher_run(preset: Preset, teacher: TeacherDef) -> RunDef:
    spec = settled_spec(
        {
            "kind": "train",
            "name": f"{preset.name}-teacher-{teacher.name}",
            "dataset": dataset_section(preset.datasets[teacher.data]),
            "model": teacher.model,
            "train": teacher.train,
            "seed": 0,
            "resources": {"device": preset.device},
        }
    )
    return RunDef("teacher", preset.name, teacher.name, "teacher", 0, spec, cache_key(spec))


def student_run(
    preset: Preset,
    group: GroupDef,
    label: str,
    seed: int,
    distill: dict[str, Any] | None = None,
    kind: str = "student",
    train_overrides: dict[str, Any] | None = None,
) -> RunDef:
    """The run of student ``label``: a key of ``STUDENTS`` or a tuning point's label
    (``tune_points.point_label``, one-stage groups only) unless ``distill`` is given."""
    two_stage = is_two_stage(group.student_model["arch"])
    point = parse_point(label)
    if distill is None and point is not None:
        if not takes_tuning_points(group):
            raise ValueError(f"tuning point {label!r}: its weights are one-stage, {group.name} is two-stage")
        distill = point_distill(*point)
    elif distill is None and label in STUDENTS:
        distill = student_distill(label, two_stage)
    train = {**group.train, **TRAIN_OVERRIDES.get(label, {}), **(train_overrides or {})}
    model = dict(group.student_model)
    if group.warm_start_from:
        model["init_checkpoint"] = WARM_PREFIX + warm_start_run(preset, group, seed).key
    spec: dict[str, Any] = {
        "kind": "train",
        "name": f"{preset.name}-{group.name}-{label}-s{seed}",
        "dataset": dataset_section(preset.datasets[group.data]),
        "model": model,
        "train": train,
        "seed": seed,
        "resources": {"device": preset.device},
    }
    teacher_key = None
    if distill is not None:
        teacher_key = teacher_run(preset, preset.teachers[group.teacher]).key
        spec.update(kind="distill", teacher={"checkpoint": TEACHER_PREFIX + teacher_key}, distill=distill)
    spec = settled_spec(spec)
    return RunDef(kind, preset.name, group.name, label, seed, spec, cache_key(spec), teacher_key)


def warm_start_run(preset: Preset, group: GroupDef, seed: int) -> RunDef:
    """The run whose final weights a warm-started group's students of ``seed`` start from."""
    assert group.warm_start_from is not None
    return student_run(preset, preset.group(group.warm_start_from), "baseline", seed)
