"""Benchmark presets: datasets, teachers, schedules and the groups of students compared.

A *group* is a set of students trained with the same data, schedule and budget (iterations,
batch, lr), differing only in their distillation; every student runs once per seed. A *preset*
is a list of groups plus what they share. Everything here is plain data (torch-free): specs are
built in ``benchmarks.plan``.

Schedules of the ``cpu`` preset, calibrated on a 2-core CPU (AMD EPYC, torch 2.14.1): a
RetinaNet-R18 (FPN 64) step at 128 px, batch 8, takes about 0.15 s on an idle machine; ``mar
bench perf`` measured a MAR step with the R50 (FPN 128) teacher at 1.97x a student step (the
teacher forward 0.91x, the KD losses 0.06x), so about 0.30 s. Short: 700 steps (MAR ~3.5 min
with the final eval, baseline ~2 min); long: 1600 steps (MAR ~8.5 min, 5 evals). BCCD: 600
steps of batch 4 at 256 x 341 (~2.7x the pixels of a synthetic batch: MAR ~8 min). Faster
R-CNN-R18 steps cost ~2.9x RetinaNet's (perf ``steps_frcnn``; MAR 1.38x its student step):
its short schedule is 400 steps (MAR ~3.5 min). Teachers:
RetinaNet twice the long schedule (3200 steps, R50 ~0.4 s a step: ~20 min, once), Faster R-CNN
1600 steps, 1200 on BCCD. The
wall time of every run is recorded in its result file and shown in BENCHMARKS.md: re-calibrate
here if the figures drift (that changes the specs, hence the cache keys: a fresh series).

Measured 2026-11-24, two runs side by side with one torch thread each (the way to use both
cores): the synthetic R50 teacher took 45.6 min and the BCCD one 42.1 min; a short-group MAR run
7.3 min (0.55 s a step), a peer run about the same. At that pace a long-group or BCCD MAR run
would take ~15 min, over the 10-minute budget: run those groups one process at a time with
``--threads 2`` (a MAR step ~0.3 s alone, by the perf figures above), where they should fit.

Measured 2026-11-25 on this session's machine (same 2-core shape, ~1.5x slower: a long-group MAR
step took 0.82 s two-at-a-time against 0.55 s for the same step the day before), two at a time:
long-group MAR 24.2 min, baseline 13.5 min; BCCD MAR 23.4 min, baseline 17.0 min; Faster R-CNN MAR
(2.3 s a step) ~16 min; the Faster R-CNN teacher 64.6 min. So on a slow day only the short group
keeps to the 10-minute budget; the report says, per group, how many runs went over it.

Measured 2026-11-25 (a later session, a faster machine of the same shape), one run at a time with
``--threads 2``: long-group baseline 4.6 min, cwd 6.7 min; BCCD baseline 3.4 min, MAR 6.0 min, all
inside the budget, while two 1-thread runs side by side took 5.5 min (a short-group MAR) to 12.9
min (a long-group MAR) each. On this 2-core shape one 2-thread run at a time is the faster way
through a preset, and the one that keeps every group to the 10-minute budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mar_core.methods import DEFAULT_METHOD, METHODS, SEARCH_METHOD

SYNTH_KIND = "synthetic"
BCCD_PATH = "../shared/datasets/BCCD/BCCD"  # relative to the repository root

# The methods MAR (the registry's default method) is compared against: every other registered one
# that is not one of MAR's variants.
PEERS = tuple(m for m, spec in METHODS.items() if m != DEFAULT_METHOD and spec.spec.VARIANT_OF is None)
# MAR's variants (issue 36), each in the short group's ablation
MAR_VARIANTS = tuple(m for m, spec in METHODS.items() if spec.spec.VARIANT_OF == DEFAULT_METHOD)
FALLBACK_PEERS = ("fgd", "pkd")

# Peer weights by the method doc's calibration rule, the one MAR's defaults start from: each KD
# term at 0.5x the classification loss at the start, with the cpu preset's synthetic teacher
# (`mar bench calibrate --preset cpu --group retina-synth-short`). The published weights
# (each method's ``WEIGHT_DEFAULTS``, for COCO-pretrained models) put these terms at 3.5x (PKD) to 130,000x (FGD's
# fg) the classification loss here. One set for every group, as MAR's defaults are one set; a
# method registered without an entry here runs with its published weights.
CALIBRATED_PEERS: dict[str, dict[str, float]] = {
    "feature_mse": {"loss_weight": 2.6e-5},
    "fgd": {"fgd_alpha": 3.8e-9, "fgd_beta": 1.5e-7, "fgd_gamma": 3.0e-4, "fgd_lambda": 2.2e-8},
    "mgd": {"loss_weight": 2.2e-8},
    "pkd": {"loss_weight": 0.14},
    "cwd": {"loss_weight": 0.041},
    # the head peers (issue 19), by the same rule on the same group and teacher
    "pkd_head": {"loss_weight": 0.14},
    "cwd_head": {"loss_weight": 0.33},
    "logit_kd": {"loss_weight": 0.095},
    "crosskd": {"cls_weight": 0.19, "box_weight": 0.96},
}

# The same rule for a two-stage student, where it differs: FGD's one-stage weights above put its
# terms at 8e-5x (fg) to 0.43x the Faster R-CNN classification loss
# (`mar bench calibrate --preset cpu --group frcnn-synth-short`).
CALIBRATED_PEERS_TWO_STAGE: dict[str, dict[str, float]] = {
    "fgd": {"fgd_alpha": 2.3e-5, "fgd_beta": 1.1e-5, "fgd_gamma": 3.5e-4, "fgd_lambda": 3.1e-7},
    # softmax KL on the proposals: 0.095 (the one-stage weight) puts it at 0.094x
    "logit_kd": {"loss_weight": 0.5},
}

# MAR on the raw FPN maps (``feature_norm: none``), its form before issue 19, kept beside the
# default so that its runs stay visible: every ``mar_raw*`` label is an ablation of it.
RAW_MAR = "mar_raw"
# raw MAR with every weight sized by the job (the old job default), against RAW_MAR's tuned numbers
AUTO_WEIGHTS_STUDENT = "mar_raw_auto"
RAW = {"method": "mar", "feature_norm": "none"}
# MAR on standardised maps whatever the family: on a one-stage student the same run as "mar"
STANDARDISED_MAR = "mar_channel"
# The distiller search (``distill.method: "auto"``), in every group
SEARCH_STUDENT = "auto"
KD_TAIL_STUDENT, INHERIT_STUDENT = "mar_kd_tail", "mar_inherit"
RUNTIME_STUDENTS = {
    "mar_teacher_cache": {"teacher_cache": "auto"},
    "mar_bf16_teacher": {"teacher_precision": "bf16"},
}
# issue 37's bf16 training step on a CPU (``train.cpu_bf16``, the demo's): label -> train fields
TRAIN_OVERRIDES: dict[str, dict[str, Any]] = {
    "baseline_bf16": {"cpu_bf16": True},
    "mar_bf16": {"cpu_bf16": True},
}

# Labels renamed when MAR's one-stage default became the standardised form (2026-12-02), in the
# one-stage groups: old -> new. The runs kept their keys; commands recorded before then name the
# old labels. On Faster R-CNN "mar" kept its meaning (the raw form, the two-stage default).
RENAMED_LABELS: dict[str, str] = {
    "mar": RAW_MAR,
    "mar_std": "mar",
    "mar_mask_only": "mar_raw_mask_only",
    "mar_mask_only_std": "mar_mask_only",
    "mar_no_scale_norm": "mar_raw_no_scale_norm",
    "mar_gaussian": "mar_raw_gaussian",
    "mar_auto": AUTO_WEIGHTS_STUDENT,
}

# label -> distill section (None: the baseline, trained without a teacher)
STUDENTS: dict[str, dict[str, Any] | None] = {
    "baseline": None,
    # MAR as a job runs it by default (the plan settles a spec as a job would): on a one-stage
    # student the mask-guided terms on per-channel standardised maps, alpha / beta sized by the
    # calibration rule, the tuned gamma; on a two-stage one the raw form at its tuned weights
    "mar": {"method": "mar"},
    "mar_mask_only": {"method": "mar", "relation_loss": False},
    STANDARDISED_MAR: {"method": "mar", "feature_norm": "channel"},
    # the feature half off, so its form does not matter: pinned to the raw one, its runs' key
    "mar_relation_only": {**RAW, "feature_loss": False},
    RAW_MAR: RAW,
    "mar_raw_mask_only": {**RAW, "relation_loss": False},
    "mar_raw_no_scale_norm": {**RAW, "scale_norm": False},
    "mar_raw_gaussian": {**RAW, "mask": "gaussian"},
    # every weight sized by the job on its first batches (mar_core.distill.auto_weights), against
    # RAW_MAR's tuned defaults (which plan pins as numbers)
    AUTO_WEIGHTS_STUDENT: {**RAW, "alpha": "auto", "beta": "auto", "gamma": "auto"},
    **{v: {"method": v} for v in MAR_VARIANTS},
    # the job searches for its distiller (mar_core.search) at its default budget
    SEARCH_STUDENT: {"method": SEARCH_METHOD},
    # issue 36's options of every method, on MAR: KD off for the last 10% (RTMDet), and the
    # neck and head started from the teacher's (FGD / MGD; needs the teacher's FPN width: small gap)
    KD_TAIL_STUDENT: {"method": "mar", "kd_stop_fraction": 0.1},
    INHERIT_STUDENT: {"method": "mar", "init_from_teacher": True},
    # issue 37's cheaper teacher, on MAR: the same student, the teacher's outputs from the cache
    # or its forward in bf16; their AP must stay within the seed spread of "mar"'s
    **{label: {"method": "mar", **runtime} for label, runtime in RUNTIME_STUDENTS.items()},
    # the baseline and MAR with the training step in bf16 (TRAIN_OVERRIDES); their AP against
    # "baseline"'s and "mar"'s decides whether the demo may train so
    "baseline_bf16": None,
    "mar_bf16": {"method": "mar"},
    **{p: {"method": p, **CALIBRATED_PEERS.get(p, {})} for p in PEERS},
}


def student_distill(label: str, two_stage: bool) -> dict[str, Any] | None:
    """The distill section of student ``label`` for a one- or two-stage student."""
    section = STUDENTS[label]
    if section is None or not two_stage:
        return section
    return {**section, **CALIBRATED_PEERS_TWO_STAGE.get(section["method"], {})}


# The long groups use a step schedule with drops (x0.1) at 50% and 70% of the run, so that the
# last fifth, over which the baseline must have stopped improving, runs entirely at the final LR:
# a drop inside it (or cosine's annealing) would raise the AP whether or not the run had converged.
LONG_SCHEDULE = {"schedule": "step", "lr_steps": [0.5, 0.7]}
# The small-gap groups' teacher: the student's family and FPN width, the long schedule
SMALL_GAP_TEACHER = "retina-synth-samewidth"
# A group's student list may hold this token: the two peers with the best equal-tune picks, each
# at its picked weights (``benchmarks.roster.best_peers``).
BEST_PEERS = "@best_peers"


@dataclass(frozen=True)
class DataDef:
    """A dataset: ``synthetic`` (generated into the cache with ``generate_synthetic``) or a
    ``voc`` folder (``path`` relative to the repository root)."""

    name: str
    kind: str  # "synthetic" | "voc"
    path: str = ""
    synth: dict[str, int] = field(default_factory=dict)  # seed, num_train, num_val, image_size
    train_split: str = "train"
    val_split: str = "val"

    @property
    def logical_path(self) -> str:
        """The path written in the specs that are hashed: machine-independent."""
        if self.kind == SYNTH_KIND:
            s = self.synth
            return f"synthetic/shapes-s{s['seed']}-{s['num_train']}x{s['num_val']}-{s['image_size']}px"
        return self.path


@dataclass(frozen=True)
class TeacherDef:
    """A teacher trained once per preset and dataset, then cached."""

    name: str
    data: str  # DataDef name
    model: dict[str, Any]
    train: dict[str, Any]


@dataclass(frozen=True)
class GroupDef:
    """Students compared under one schedule. ``students`` may contain ``BEST_PEERS``."""

    name: str
    title: str
    data: str
    teacher: str
    student_model: dict[str, Any]
    train: dict[str, Any]
    students: tuple[str, ...]
    check_convergence: bool = False  # evaluate every 1/5 and report whether the baseline converged
    # warm start: every student (its "baseline" continues without KD) starts from the final weights
    # of this group's baseline run of the same seed
    warm_start_from: str | None = None


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    device: str
    seeds: tuple[int, ...]
    datasets: dict[str, DataDef]
    teachers: dict[str, TeacherDef]
    groups: tuple[GroupDef, ...]
    run_budget_minutes: float | None = None  # the "each run under N minutes" (reported)

    def group(self, name: str) -> GroupDef:
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(f"preset {self.name!r} has no group {name!r}; groups: {', '.join(self.group_names)}")

    @property
    def group_names(self) -> list[str]:
        return [g.name for g in self.groups]


def _train(iterations: int, batch: int, **extra: Any) -> dict[str, Any]:
    """A train section with the optimiser pinned (a change of the spec defaults must not change
    a benchmark silently): AdamW 1e-3 + cosine, the project's recipe for from-scratch detectors."""
    out = {
        "iterations": iterations,
        "batch_size": batch,
        "optimizer": "adamw",
        "lr": 1e-3,
        "schedule": "cosine",
        "warmup_iters": min(100, iterations // 5),
        "checkpoint_every": max(1, min(100, iterations // 4)),
        "log_every": max(1, min(20, iterations // 20)),
    }
    out.update(extra)
    return out


def _model(
    arch: str, backbone: str, fpn: int, size: int, max_size: int | None = None, anchor_scale: float = 1.0
) -> dict[str, Any]:
    return {
        "arch": arch,
        "backbone": backbone,
        "fpn_channels": fpn,
        "min_size": size,
        "max_size": max_size or size,
        "anchor_scale": anchor_scale,
    }


def _full_groups(
    synth: str,
    bccd: str,
    *,
    short: dict,
    long: dict,
    warm: dict,
    bccd_train: dict,
    frcnn_short: dict,
    retina_s: dict,
    bccd_s: dict,
    frcnn_s: dict,
) -> tuple[GroupDef, ...]:
    short_students = (
        "baseline",
        "mar",
        SEARCH_STUDENT,
        "mar_mask_only",
        "mar_relation_only",
        RAW_MAR,
        "mar_raw_mask_only",
        "mar_raw_no_scale_norm",
        "mar_raw_gaussian",
        *MAR_VARIANTS,
        KD_TAIL_STUDENT,
        *RUNTIME_STUDENTS,
        *TRAIN_OVERRIDES,
        *PEERS,
    )
    return (
        GroupDef(
            "retina-synth-short",
            "RetinaNet, synthetic shapes, short schedule",
            synth,
            "retina-synth",
            retina_s,
            short,
            short_students,
        ),
        GroupDef(
            "retina-synth-long",
            "RetinaNet, synthetic shapes, long schedule (baseline converged)",
            synth,
            "retina-synth",
            retina_s,
            long,
            # MAR and its two halves alone: the ablation on the long schedule
            (
                "baseline",
                "mar",
                "mar_relation_only",
                "mar_mask_only",
                RAW_MAR,
                BEST_PEERS,
                *MAR_VARIANTS,
                SEARCH_STUDENT,
            ),
            check_convergence=True,
        ),
        GroupDef(
            "retina-bccd",
            "RetinaNet, BCCD (train split; evaluated on val)",
            bccd,
            "retina-bccd",
            bccd_s,
            bccd_train,
            ("baseline", "mar", RAW_MAR, AUTO_WEIGHTS_STUDENT, BEST_PEERS, *MAR_VARIANTS, SEARCH_STUDENT),
        ),
        # The paper's regime (issue 19): teacher and student of one family and FPN width, the teacher
        # on the student's long schedule, so that the gap is the backbone's alone (published
        # "student above teacher" results have gaps of 1.4-2.3 AP); the baseline is the long
        # group's (same spec: the same cached runs).
        GroupDef(
            "retina-synth-smallgap",
            "RetinaNet, synthetic shapes, long schedule, R50 teacher of the student's FPN width (small gap)",
            synth,
            SMALL_GAP_TEACHER,
            retina_s,
            long,
            ("baseline", "mar", BEST_PEERS, *MAR_VARIANTS, INHERIT_STUDENT, SEARCH_STUDENT),
            check_convergence=True,
        ),
        # The same pair, warm: every student starts from its seed's final baseline of the small-gap
        # group, then KD and no KD ("baseline") continue for the same steps at a tenth of the LR;
        # the two best peers too, to tell whether KD in general or MAR's weights lose there.
        GroupDef(
            "retina-synth-smallgap-warm",
            "RetinaNet, synthetic shapes, R50 teacher of the student's width, warm start from the small-gap baseline (end of its long schedule)",
            synth,
            SMALL_GAP_TEACHER,
            retina_s,
            warm,
            ("baseline", "mar", BEST_PEERS, SEARCH_STUDENT),
            warm_start_from="retina-synth-smallgap",
        ),
        GroupDef(
            "frcnn-synth-short",
            "Faster R-CNN, synthetic shapes, short schedule",
            synth,
            "frcnn-synth",
            frcnn_s,
            frcnn_short,
            # "mar" is the raw form here (MAR's two-stage default); mar_channel the standardised one
            ("baseline", "mar", STANDARDISED_MAR, "fgd", "logit_kd", SEARCH_STUDENT),
        ),
    )


def _cpu() -> Preset:
    synth = DataDef(
        "synth", SYNTH_KIND, synth={"seed": 0, "num_train": 600, "num_val": 150, "image_size": 128}
    )
    bccd = DataDef("bccd", "voc", path=BCCD_PATH)
    retina_t = _model("retinanet", "resnet50", 128, 128, anchor_scale=0.5)
    retina_s = _model("retinanet", "resnet18", 64, 128, anchor_scale=0.5)
    frcnn_t = _model("fasterrcnn", "resnet50", 128, 128, anchor_scale=0.5)
    frcnn_s = _model("fasterrcnn", "resnet18", 64, 128, anchor_scale=0.5)
    bccd_t = _model("retinanet", "resnet50", 128, 256, 352)
    bccd_s = _model("retinanet", "resnet18", 64, 256, 352)
    teachers = {
        "retina-synth": TeacherDef("retina-synth", "synth", retina_t, _train(3200, 8, eval_every=800)),
        # Faster R-CNN learns these shapes ~5x faster than RetinaNet (R18: AP 49 at 400 steps) and
        # an R50 step costs ~2x RetinaNet's: 1600 steps (~25 min) instead of 3200.
        "frcnn-synth": TeacherDef("frcnn-synth", "synth", frcnn_t, _train(1600, 8, eval_every=400)),
        "retina-bccd": TeacherDef("retina-bccd", "bccd", bccd_t, _train(1200, 4, eval_every=400)),
        # the small-gap group's: the student's FPN width and long schedule, a larger backbone. An
        # R34-FPN64 first (2026-12-02, ``teacher-cpu-retina-synth-r34-...json``): 24.07 AP, below the
        # R18 baseline on the same schedule (26.37 ± 1.82; its eval history tracked seed 0's step
        # for step), so depth alone adds nothing here. This R50-FPN64 (2026-12-02): 31.03 AP after
        # float16 rounding, 4.66 above that baseline, beyond twice its seed spread (3.64): the gap
        # the group needs, in the published 1.4-5 AP range.
        SMALL_GAP_TEACHER: TeacherDef(
            SMALL_GAP_TEACHER,
            "synth",
            _model("retinanet", "resnet50", 64, 128, anchor_scale=0.5),
            _train(1600, 8, eval_every=320, **LONG_SCHEDULE),
        ),
    }
    groups = _full_groups(
        "synth",
        "bccd",
        short=_train(700, 8),
        long=_train(1600, 8, eval_every=320, **LONG_SCHEDULE),
        warm=_train(800, 8, lr=1e-4),
        bccd_train=_train(600, 4),
        frcnn_short=_train(400, 8),
        retina_s=retina_s,
        bccd_s=bccd_s,
        frcnn_s=frcnn_s,
    )
    return Preset(
        "cpu",
        "2-core CPU: 128 px synthetic shapes (600 train / 150 val), BCCD at 256 px; "
        "RetinaNet / Faster R-CNN, R50-FPN128 teachers, R18-FPN64 students",
        "cpu",
        (0, 1, 2),
        {"synth": synth, "bccd": bccd},
        teachers,
        groups,
        run_budget_minutes=10,
    )


def _gpu() -> Preset:
    synth = DataDef(
        "synth", SYNTH_KIND, synth={"seed": 0, "num_train": 4000, "num_val": 500, "image_size": 512}
    )
    bccd = DataDef("bccd", "voc", path=BCCD_PATH)
    retina_t = _model("retinanet", "resnet101", 256, 512)
    retina_s = _model("retinanet", "resnet18", 128, 512)
    frcnn_t = _model("fasterrcnn", "resnet101", 256, 512)
    frcnn_s = _model("fasterrcnn", "resnet18", 128, 512)
    bccd_t = _model("retinanet", "resnet101", 256, 480, 640)
    bccd_s = _model("retinanet", "resnet18", 128, 480, 640)
    teachers = {
        "retina-synth": TeacherDef("retina-synth", "synth", retina_t, _train(24000, 16, eval_every=4000)),
        "frcnn-synth": TeacherDef("frcnn-synth", "synth", frcnn_t, _train(24000, 16, eval_every=4000)),
        "retina-bccd": TeacherDef("retina-bccd", "bccd", bccd_t, _train(6000, 8, eval_every=1000)),
        SMALL_GAP_TEACHER: TeacherDef(
            SMALL_GAP_TEACHER,
            "synth",
            _model("retinanet", "resnet50", 128, 512),
            _train(12000, 16, eval_every=2400, **LONG_SCHEDULE),
        ),
    }
    groups = _full_groups(
        "synth",
        "bccd",
        short=_train(4000, 16),
        long=_train(12000, 16, eval_every=2400, **LONG_SCHEDULE),
        warm=_train(6000, 16, lr=1e-4),
        bccd_train=_train(3000, 8),
        frcnn_short=_train(4000, 16),
        retina_s=retina_s,
        bccd_s=bccd_s,
        frcnn_s=frcnn_s,
    )
    return Preset(
        "gpu",
        "one CUDA GPU: 512 px synthetic shapes (4000 train / 500 val), BCCD at 480 px; "
        "R101-FPN256 teachers, R18-FPN128 students (1x1 adapters)",
        "cuda",
        (0, 1, 2),
        {"synth": synth, "bccd": bccd},
        teachers,
        groups,
    )


def _smoke() -> Preset:
    synth = DataDef("synth", SYNTH_KIND, synth={"seed": 3, "num_train": 8, "num_val": 4, "image_size": 64})
    student = _model("retinanet", "resnet18", 32, 64, anchor_scale=0.5)
    tiny = {"warmup_iters": 1, "checkpoint_every": 100, "log_every": 1}
    teachers = {"retina-synth": TeacherDef("retina-synth", "synth", student, {**_train(3, 2), **tiny})}
    groups = (
        GroupDef(
            "retina-synth-smoke",
            "RetinaNet, tiny synthetic set, a few steps (smoke test)",
            "synth",
            "retina-synth",
            student,
            {**_train(2, 2), **tiny},
            ("baseline", "mar"),
        ),
    )
    return Preset(
        "smoke",
        "seconds: 64 px synthetic shapes (8 / 4 images), 2 steps, 1 seed, 2 students",
        "cpu",
        (0,),
        {"synth": synth},
        teachers,
        groups,
    )


PRESETS: dict[str, Preset] = {p.name: p for p in (_cpu(), _gpu(), _smoke())}
REPORTED_PRESETS = ("cpu", "gpu")


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; valid: {', '.join(PRESETS)}")
    return PRESETS[name]
