"""Checks of a validated ``JobSpec`` against the host: paths inside the configured roots and the
dataset layout on disk. Returns the spec with those paths made absolute (what the worker runs)."""

from __future__ import annotations

from pathlib import Path

from api.settings import Settings
from mar_core.errors import SpecError
from mar_core.names import is_torchvision_weights_name
from mar_core.paths import resolve_under
from mar_core.spec import DatasetSpec, JobSpec


def _dataset_roots(settings: Settings) -> list[Path]:
    """Data roots first (relative paths resolve against the first), then previous jobs' outputs."""
    assert settings.artifact_root is not None
    return [*settings.data_roots, settings.artifact_root]


def _teacher_roots(settings: Settings) -> list[Path]:
    assert settings.checkpoint_root is not None and settings.artifact_root is not None
    return [settings.checkpoint_root, settings.artifact_root]


def check_dataset(ds: DatasetSpec, settings: Settings) -> Path:
    """The dataset folder, resolved; ``SpecError`` naming the field when something is missing."""
    root = resolve_under(ds.path, _dataset_roots(settings), "dataset.path")
    if not root.exists():
        raise SpecError(f"dataset.path: {ds.path!r} does not exist ({root})", param="dataset.path")
    if not root.is_dir():
        raise SpecError(f"dataset.path: {ds.path!r} is not a folder", param="dataset.path")
    splits = {"dataset.train_split": ds.train_split, "dataset.val_split": ds.val_split}
    if ds.format == "coco":
        ann = root / "annotations"
        if not ann.is_dir():
            raise SpecError(
                f"dataset.path: no annotations/ folder in {ds.path!r} (coco)", param="dataset.path"
            )
        for param, split in splits.items():
            if not (ann / f"instances_{split}.json").is_file():
                raise SpecError(f"{param}: missing annotations/instances_{split}.json", param=param)
    elif ds.format == "voc":
        for sub in ("Annotations", "ImageSets/Main"):
            if not (root / sub).is_dir():
                raise SpecError(f"dataset.path: no {sub}/ folder in {ds.path!r} (voc)", param="dataset.path")
        for param, split in splits.items():
            if not (root / "ImageSets" / "Main" / f"{split}.txt").is_file():
                raise SpecError(f"{param}: missing ImageSets/Main/{split}.txt", param=param)
    if ds.images_dir is not None:
        images = resolve_under(root / ds.images_dir, [root], "dataset.images_dir")
        if not images.is_dir():
            raise SpecError(
                f"dataset.images_dir: {ds.images_dir!r} is not a folder", param="dataset.images_dir"
            )
    return root


def check_teacher(checkpoint: str, settings: Settings) -> Path:
    """The teacher checkpoint, resolved inside the checkpoint root or a previous job's folder."""
    path = resolve_under(checkpoint, _teacher_roots(settings), "teacher.checkpoint")
    if path.is_dir():
        if not (path / "model.json").is_file():
            raise SpecError(
                f"teacher.checkpoint: folder {checkpoint!r} has no model.json", param="teacher.checkpoint"
            )
    elif not path.is_file():
        raise SpecError(f"teacher.checkpoint: {checkpoint!r} does not exist", param="teacher.checkpoint")
    return path


def check_model_files(spec: JobSpec, settings: Settings) -> dict[str, str]:
    """The pretrained-start files of ``spec.model`` (a torchvision weights name is resolved by the
    worker under ``$TORCH_HOME``), resolved inside the checkpoint root or a previous job's folder."""
    resolved = {}
    weights = spec.model.backbone_weights
    if weights is not None and not is_torchvision_weights_name(weights):
        path = resolve_under(weights, _teacher_roots(settings), "model.backbone_weights")
        if not path.is_file():
            raise SpecError(
                f"model.backbone_weights: {weights!r} does not exist", param="model.backbone_weights"
            )
        resolved["backbone_weights"] = str(path)
    if spec.model.init_checkpoint is not None:
        path = resolve_under(spec.model.init_checkpoint, _teacher_roots(settings), "model.init_checkpoint")
        if not (path / "model.json").is_file() and not path.is_file():
            raise SpecError(
                f"model.init_checkpoint: {spec.model.init_checkpoint!r} is not a run folder or a weights file",
                param="model.init_checkpoint",
            )
        resolved["init_checkpoint"] = str(path)
    return resolved


def check_spec(spec: JobSpec, settings: Settings) -> JobSpec:
    """Run every host check; the returned copy names absolute dataset, teacher and model-file paths."""
    dataset = spec.dataset.model_copy(update={"path": str(check_dataset(spec.dataset, settings))})
    update: dict[str, object] = {"dataset": dataset}
    model_files = check_model_files(spec, settings)
    if model_files:
        update["model"] = spec.model.model_copy(update=model_files)
    if spec.teacher is not None:
        teacher_path = check_teacher(spec.teacher.checkpoint, settings)
        update["teacher"] = spec.teacher.model_copy(update={"checkpoint": str(teacher_path)})
    return spec.model_copy(update=update)
