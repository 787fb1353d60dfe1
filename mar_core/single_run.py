"""Run one training or distillation (one method, or none) in a work folder: a job, or one trial
of a job's distiller search (``mar_core.search``). ``mar_core.run.run_job`` is the entry point.

Outputs in ``workdir``: ``metrics.jsonl``, ``pr_curves.json`` and ``samples/*.png`` (PR curves and
predictions on a few validation images; each evaluation before the last leaves its own under
``pr_curves/step-<N>.json`` and ``samples/step-<N>/``, see ``mar_core.eval_outputs``),
``tensorboard/events.out.tfevents.*`` (every metric by step; ``mar_core.tracking``),
``checkpoints/last.pt`` (exact resume) and ``checkpoints/best.pt`` (best-AP weights), ``model.pt``
(plain torchvision state_dict of the final detector), ``model.json`` (how to rebuild it) and
``report.json``. A workdir that holds a checkpoint of the same spec resumes from it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from mar_core.atomic import atomic_write_json
from mar_core.checkpoint_files import BEST_CHECKPOINT, CHECKPOINT_DIR, LAST_CHECKPOINT
from mar_core.data import build_train_loader, load_dataset
from mar_core.data.dataset import DetectionDataset
from mar_core.distill.auto_weights import TARGET_RATIO, resolve_kd_weights
from mar_core.distill.distiller import build_distiller
from mar_core.distill.inherit import inherit_neck_and_head
from mar_core.distill.teacher_cache import TEACHER_CACHE_DIR, TeacherCache
from mar_core.engine.distributed import SINGLE, RankInfo, launch
from mar_core.engine.hooks import (
    CheckpointHook,
    EvalHook,
    LRScheduleHook,
    MetricsHook,
    StopHook,
    device_of,
    load_training_checkpoint,
)
from mar_core.engine.lr import lr_factor_fn
from mar_core.engine.memory_check import check_batch_fits
from mar_core.engine.precision import (
    PRECISION_CHECK_BATCH,
    small_image_refusal,
    training_autocast,
    usable_precision,
)
from mar_core.engine.rng import seed_everything
from mar_core.engine.trainer import Trainer
from mar_core.errors import SpecError
from mar_core.export import export_detector
from mar_core.models.checkpoint_io import write_model_output
from mar_core.models.pretrained import load_pretrained_start
from mar_core.models.registry import build_detector, count_parameters
from mar_core.progress import ProgressCallback, ignore_progress
from mar_core.run_eval import RunEvaluation
from mar_core.samples import SAMPLES_DIR, draw_samples
from mar_core.spec import JobSpec, MlflowSpec, TrainSpec
from mar_core.spec_hash import run_fingerprint
from mar_core.teacher import Teacher, load_teacher
from mar_core.tracking.tracking import Tracking

log = logging.getLogger(__name__)


def build_optimizer(model: nn.Module, cfg: TrainSpec) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def _resume_state(last: Path, fingerprint: str, workdir: Path) -> dict | None:
    """The checkpoint this run resumes from (None: a fresh start); one of another spec is refused."""
    if not last.exists():
        return None
    state = load_training_checkpoint(last)
    if state.get("extra", {}).get("spec_fingerprint") != fingerprint:
        raise SpecError(f"{workdir} holds a checkpoint of a different spec; use another workdir", "workdir")
    return state


ReportHook = Callable[[dict[str, Any]], dict[str, Any]]


def run_single_job(
    spec: JobSpec,
    workdir: Path,
    *,
    data_roots: list[Path] | None = None,
    checkpoint_roots: list[Path] | None = None,
    progress: ProgressCallback = ignore_progress,
    should_stop: Callable[[], bool] = lambda: False,
    device: str | None = None,
    mlflow: MlflowSpec | None = None,
    train_subset: Sequence[int] | None = None,
    finish_report: ReportHook | None = None,
) -> dict:
    """Train or distil as ``spec`` says (its ``distill`` one registered method); return the
    report (also written to ``report.json``). ``mlflow``: the deployment's MLflow server, used
    when the spec names none; ``train_subset``: train on these indices of the training split
    only (a search trial); ``finish_report``: applied to the report before it is written.

    With ``resources.gpus > 1`` this process becomes rank 0 of that many torch.distributed
    processes (``mar_core.engine.distributed``); it alone calls ``progress`` and ``should_stop``.
    """
    if spec.resources.gpus > 1:
        return launch(
            _run,
            spec,
            Path(workdir),
            device_of(device or spec.resources.device).type,
            progress=progress,
            should_stop=should_stop,
            data_roots=data_roots,
            checkpoint_roots=checkpoint_roots,
            device=device,
            mlflow=mlflow,
            train_subset=train_subset,
            finish_report=finish_report,
        )
    return _run(
        spec,
        workdir,
        data_roots=data_roots,
        checkpoint_roots=checkpoint_roots,
        progress=progress,
        should_stop=should_stop,
        device=device,
        mlflow=mlflow,
        train_subset=train_subset,
        finish_report=finish_report,
    )


@dataclass
class RunData:
    """The splits of one run: ``fit`` is what it trains on (the training split, or a search
    trial's part of it)."""

    train: DetectionDataset
    val: DetectionDataset
    fit: Dataset

    @property
    def class_names(self) -> list[str]:
        return self.train.class_names


def load_run_data(
    spec: JobSpec, data_roots: list[Path] | None, train_subset: Sequence[int] | None
) -> RunData:
    train_ds = load_dataset(spec.dataset, spec.dataset.train_split, data_roots)
    val_ds = load_dataset(spec.dataset, spec.dataset.val_split, data_roots)
    if train_ds.class_names != val_ds.class_names:
        raise SpecError(
            f"dataset: train classes {train_ds.class_names} differ from val classes {val_ds.class_names}",
            "dataset",
        )
    fit_ds = train_ds if train_subset is None else Subset(train_ds, list(train_subset))
    return RunData(train_ds, val_ds, fit_ds)


@dataclass
class Distillation:
    """What a distill job adds to the student: the module trained (student + KD losses), the
    method's hooks, the teacher and the loss weights (None for a plain training run)."""

    trainable: nn.Module
    hooks: list = field(default_factory=list)
    teacher: Teacher | None = None
    teacher_params: int | None = None
    kd_weights: dict[str, Any] | None = None
    teacher_cache: TeacherCache | None = None


def set_up_distillation(
    spec: JobSpec,
    workdir: Path,
    student: nn.Module,
    data: RunData,
    checkpoint_roots: list[Path] | None,
    resumed: dict | None,
    dev: torch.device,
    ranks: RankInfo,
    progress: ProgressCallback,
) -> Distillation:
    """The teacher and the method's losses, their "auto" weights sized now or read back from the
    checkpoint ``resumed`` from; a train job gets the student alone."""
    if spec.kind != "distill":
        return Distillation(student)
    cfg = spec.train
    teacher = load_teacher(spec, checkpoint_roots, student, data.class_names, progress)
    spec = with_usable_teacher_precision(spec, teacher.model, dev, progress)

    def distiller(distill_cfg):
        return build_distiller(
            student,
            teacher.model,
            distill_cfg,
            spec.model.family,
            teacher.spec.family,
            cfg.iterations,
            teacher.class_map,
        )

    if spec.distill.init_from_teacher and resumed is None:  # a resumed run has its own weights
        _inherit_from_teacher(spec, student, teacher, progress)
    distill_cfg, kd_weights = resolve_kd_weights(
        spec.distill,
        spec.model.two_stage,
        lambda c: distiller(c)[0],
        lambda n: build_train_loader(data.fit, cfg.batch_size, spec.seed, 0, n),
        dev,
        resumed=None if resumed is None else resumed.get("extra", {}),
        ranks=ranks,
        progress=progress,
        target=TARGET_RATIO * spec.distill.auto_scale,
    )
    trainable, hooks = distiller(distill_cfg)
    cache = attach_teacher_cache(trainable, spec, workdir, progress)
    return Distillation(trainable, list(hooks), teacher, count_parameters(teacher.model), kd_weights, cache)


def with_usable_teacher_precision(
    spec: JobSpec, teacher: nn.Module, dev: torch.device, progress: ProgressCallback
) -> JobSpec:
    """``spec``, with ``distill.teacher_precision`` fp32 when the reduced one it asks for is slower
    on this device (measured on a CPU: ``engine.precision.usable_precision``), said as a warning."""
    asked = spec.distill.teacher_precision
    sizes = spec.model.min_size
    size = min(sizes) if isinstance(sizes, list) else sizes
    used, why = usable_precision(asked, teacher, dev, min(PRECISION_CHECK_BATCH, spec.train.batch_size), size)
    if used == asked:
        return spec
    log.warning("%s", why)
    progress({"type": "log", "level": "warning", "message": why})
    return spec.model_copy(update={"distill": spec.distill.model_copy(update={"teacher_precision": used})})


def usable_training_autocast(
    spec: JobSpec, student: nn.Module, dev: torch.device, progress: ProgressCallback
) -> torch.dtype | None:
    """The autocast dtype of the job's training step (``engine.precision.training_autocast``);
    ``train.cpu_bf16`` stays on only where the images are large enough
    (``engine.precision.small_image_refusal``) and the student's forward measures faster in bf16,
    else float32 and a warning."""
    dtype = training_autocast(spec.train.amp, spec.train.cpu_bf16, dev)
    if dtype is not torch.bfloat16:  # bf16 only ever on a CPU
        return dtype
    min_sizes, max_size = spec.model.sizes
    size = min(min_sizes)
    why = small_image_refusal(min(size, max_size))
    if why is None:
        batch = min(PRECISION_CHECK_BATCH, spec.train.batch_size)
        _, why = usable_precision(
            "bf16", student, dev, batch, size, field="train.cpu_bf16", channels_last=False
        )
    if why is None:
        return dtype
    log.warning("%s", why)
    progress({"type": "log", "level": "warning", "message": why})
    return None


def teacher_cache_refusal(spec: JobSpec) -> str | None:
    """Why the teacher's outputs cannot be kept for this job (None: they can): the teacher's
    input must be a function of (image, flip) alone."""
    sizes = spec.model.min_size
    if isinstance(sizes, list) and len(set(sizes)) > 1:
        return f"multi-scale training (model.min_size {sizes}) shows the teacher each image at a random size"
    return None


def attach_teacher_cache(
    distiller: nn.Module, spec: JobSpec, workdir: Path, progress: ProgressCallback
) -> TeacherCache | None:
    """Give the distiller a teacher cache where the spec asks for one and the input allows."""
    cfg = spec.distill
    if cfg.teacher_cache == "off":
        return None
    refusal = teacher_cache_refusal(spec)
    if refusal is not None:
        message = f"teacher cache off, the teacher runs on every step: {refusal}"
        log.info("%s", message)
        progress({"type": "log", "level": "info", "message": message})
        return None
    cache = TeacherCache(
        cfg.teacher_cache_memory_mib * 2**20,
        cfg.teacher_cache_disk_mib * 2**20,
        workdir / TEACHER_CACHE_DIR if cfg.teacher_cache_disk_mib > 0 else None,
        cfg.teacher_cache_dtype,
    )
    distiller.teacher_cache = cache
    return cache


def _inherit_from_teacher(
    spec: JobSpec, student: nn.Module, teacher: Teacher, progress: ProgressCallback
) -> None:
    if teacher.spec.family != spec.model.family:
        raise SpecError(
            f"distill.init_from_teacher copies the teacher's neck and head: it needs a teacher of the "
            f"student's family ({spec.model.family}); the teacher is {teacher.spec.family}",
            "distill.init_from_teacher",
        )
    copied, left = inherit_neck_and_head(student, teacher.model, spec.model.two_stage)
    message = f"student neck and head initialised from the teacher: {copied} tensors copied, {left} left"
    progress({"type": "log", "level": "info" if copied else "warning", "message": message})


def build_hooks(
    spec: JobSpec,
    ckpt_dir: Path,
    fingerprint: str,
    distillation: Distillation,
    evaluation: RunEvaluation,
    metrics: MetricsHook,
    tracking: Tracking | None,
    ranks: RankInfo,
    progress: ProgressCallback,
    should_stop: Callable[[], bool],
) -> list:
    """The LR schedule and the method's hooks on every rank; metrics, evaluation, checkpoints
    and tracking on rank 0; the stop check last."""
    cfg = spec.train
    hooks = [
        LRScheduleHook(lr_factor_fn(cfg.iterations, cfg.warmup_iters, cfg.schedule, cfg.lr_steps)),
        *distillation.hooks,
    ]
    if ranks.is_main:
        checkpoint_extra = {"spec_fingerprint": fingerprint, "kd_weights": distillation.kd_weights}
        hooks += [
            metrics,
            EvalHook(
                evaluation.evaluate,
                cfg.eval_every,
                metrics,
                evaluation.save_best,
                progress,
                evaluation.mid_run_outputs,
            ),
            CheckpointHook(ckpt_dir, cfg.checkpoint_every, checkpoint_extra, progress),
            tracking,
        ]
    hooks.append(StopHook((lambda: ranks.any_rank(should_stop())) if ranks.distributed else should_stop))
    return hooks


def build_trainer(
    spec: JobSpec,
    trainable: nn.Module,
    fit_ds: Dataset,
    dev: torch.device,
    hooks: list,
    ranks: RankInfo,
    autocast: torch.dtype | None = None,
) -> Trainer:
    cfg = spec.train
    return Trainer(
        ranks.wrap(trainable),
        build_optimizer(trainable, cfg),
        lambda start: build_train_loader(
            fit_ds,
            cfg.batch_size,
            spec.seed,
            start,
            cfg.iterations,
            cfg.num_workers,
            ranks.rank,
            ranks.world_size,
        ),
        cfg.iterations,
        dev,
        hooks,
        autocast=autocast,
        grad_clip=cfg.grad_clip,
        hflip=cfg.hflip,
        ranks=ranks,
    )


def write_outputs(
    spec: JobSpec,
    workdir: Path,
    student: nn.Module,
    data: RunData,
    step: int,
    evaluation: RunEvaluation,
    teacher: Teacher | None,
) -> dict[str, Path]:
    """The model files (state_dict, card, exports), the last evaluation's outputs and the
    teacher's sample predictions."""
    # The card says how to rebuild the model, not how it started: no pretrained-start paths in it.
    card_spec = spec.model.model_copy(update={"backbone_weights": None, "init_checkpoint": None})
    outputs = write_model_output(workdir, student, card_spec, data.class_names)
    if spec.export:
        exported = export_detector(student, workdir, spec.export, class_names=data.class_names)
        outputs.update({path.name: path for path in exported.values()})
    outputs.update(evaluation.final_outputs(step))
    if teacher is not None:
        samples_dir = workdir / SAMPLES_DIR
        outputs.update(
            draw_samples(
                teacher.model, data.val, evaluation.samples, samples_dir, "teacher", teacher.class_names
            )
        )
    return outputs


def evaluate_teacher(teacher: Teacher | None, evaluation: RunEvaluation) -> dict[str, float] | None:
    """The teacher's metrics on the student's evaluation images; None (logged) when its labels are
    not the dataset's, where its AP would not compare with the student's."""
    if teacher is None or teacher.class_map is None or not teacher.class_map.identity:
        log.warning("teacher.evaluate: the teacher's labels are not the dataset's; not evaluated")
        return None
    metrics = evaluation.evaluate_other(teacher.model)
    log.info("teacher AP %.4f on the evaluation images", metrics.get("AP", 0.0))
    return metrics


def build_report(
    spec: JobSpec,
    data: RunData,
    student: nn.Module,
    distillation: Distillation,
    eval_hook: EvalHook,
    start_iter: int,
    times: tuple[float, float, float],
    dev: torch.device,
    ranks: RankInfo,
) -> dict[str, Any]:
    """``report.json``'s content; ``times``: (run start, training start, training end), epoch s."""
    cfg = spec.train
    t_start, t_train, t_trained = times
    train_seconds = t_trained - t_train
    return {
        "kind": spec.kind,
        "name": spec.name,
        "spec": spec.report_dict(),
        "iterations": cfg.iterations,
        "resumed_from_step": start_iter,
        "eval": eval_hook.last_results,
        "best": {"AP": eval_hook.best_ap, "step": eval_hook.best_step},
        "class_names": data.class_names,
        "device": str(dev),
        "world_size": ranks.world_size,
        "params": {"model": count_parameters(student), "teacher": distillation.teacher_params},
        # distill: each loss weight, how it was chosen ("auto": sized at the start)
        "kd_weights": distillation.kd_weights,
        "teacher_cache": None
        if distillation.teacher_cache is None
        else distillation.teacher_cache.stats.to_dict(),
        "train_seconds": round(train_seconds, 2),
        "images_per_second": round(
            (cfg.iterations - start_iter) * cfg.batch_size / max(train_seconds, 1e-9), 2
        ),
        "wall_seconds": round(time.time() - t_start, 2),
        "dataset": {
            "train_images": len(data.fit),
            "val_images": len(data.val),
            "train_validation": data.train.validation.to_dict(),
            "val_validation": data.val.validation.to_dict(),
        },
    }


def _run(
    spec: JobSpec,
    workdir: Path,
    *,
    data_roots: list[Path] | None = None,
    checkpoint_roots: list[Path] | None = None,
    progress: ProgressCallback = ignore_progress,
    should_stop: Callable[[], bool] = lambda: False,
    device: str | None = None,
    mlflow: MlflowSpec | None = None,
    ranks: RankInfo = SINGLE,
    train_subset: Sequence[int] | None = None,
    finish_report: ReportHook | None = None,
) -> dict:
    """The job on one rank; only rank 0 evaluates and writes (the others return ``{}``)."""
    t_start = time.time()
    workdir = Path(workdir)
    if ranks.is_main:
        workdir.mkdir(parents=True, exist_ok=True)
    seed_everything(spec.seed)
    dev = ranks.device or device_of(device or spec.resources.device)
    cfg = spec.train

    data = load_run_data(spec, data_roots, train_subset)
    student = build_detector(spec.model, data.train.num_classes)
    load_pretrained_start(student, spec.model, checkpoint_roots, progress)
    fingerprint = run_fingerprint(spec.to_json_dict())
    ckpt_dir = workdir / CHECKPOINT_DIR
    last = ckpt_dir / LAST_CHECKPOINT
    state = _resume_state(last, fingerprint, workdir)
    distillation = set_up_distillation(
        spec, workdir, student, data, checkpoint_roots, state, dev, ranks, progress
    )
    trainable = distillation.trainable.to(dev)
    # a dry step of one and of two images: a batch the device cannot hold fails here, not the host
    local_batch = -(-cfg.batch_size // ranks.world_size)
    autocast = usable_training_autocast(spec, student, dev, progress)
    check_batch_fits(
        trainable, [data.fit[0], data.fit[min(1, len(data.fit) - 1)]], local_batch, dev, autocast
    )

    tracking = None
    if ranks.is_main:  # every metric from here on goes to TensorBoard (and MLflow)
        start_step = 0 if state is None else int(state["iteration"])
        tracking = Tracking(spec, workdir, progress, start_step=start_step, mlflow=mlflow)
        progress = tracking
    metrics = MetricsHook(workdir / "metrics.jsonl", cfg.log_every, progress)
    evaluation = RunEvaluation(student, data.val, data.class_names, cfg, dev, workdir, ckpt_dir, progress)
    hooks = build_hooks(
        spec, ckpt_dir, fingerprint, distillation, evaluation, metrics, tracking, ranks, progress, should_stop
    )
    trainer = build_trainer(spec, trainable, data.fit, dev, hooks, ranks, autocast)
    if state is not None:
        trainer.load_state_dict(state)
        trainer.rng_state_to_restore = state["rng"]
        log.info("resuming from %s at step %d", last, trainer.iter)
        progress({"type": "log", "level": "info", "message": f"resumed from step {trainer.iter}"})

    progress({"type": "phase", "phase": "train"})
    start_iter = trainer.iter
    t_train = time.time()
    trainer.train()
    t_trained = time.time()
    if not ranks.is_main:
        return {}

    progress({"type": "phase", "phase": "export"})
    outputs = write_outputs(spec, workdir, student, data, trainer.iter, evaluation, distillation.teacher)
    eval_hook = next(h for h in hooks if isinstance(h, EvalHook))
    report = build_report(
        spec, data, student, distillation, eval_hook, start_iter, (t_start, t_train, t_trained), dev, ranks
    )
    report["train_autocast"] = None if autocast is None else str(autocast).removeprefix("torch.")
    if spec.teacher is not None and spec.teacher.evaluate:
        report["teacher_eval"] = evaluate_teacher(distillation.teacher, evaluation)
    if finish_report is not None:
        report = finish_report(report)
    atomic_write_json(workdir / "report.json", report)
    outputs["report.json"] = workdir / "report.json"
    if (ckpt_dir / BEST_CHECKPOINT).exists():
        outputs["best.pt"] = ckpt_dir / BEST_CHECKPOINT
    outputs["last.pt"] = last
    assert tracking is not None  # rank 0
    outputs.update(tracking.finish(report, outputs))
    for name, path in outputs.items():
        progress({"type": "artifact", "name": name, "path": str(path)})
    log.info(
        "done: AP %.4f in %.0f s; outputs in %s",
        report["eval"].get("AP", 0.0),
        report["wall_seconds"],
        workdir,
    )
    return report
