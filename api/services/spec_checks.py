"""Checks of a validated ``JobSpec`` against the host: paths inside the configured roots and the
dataset layout on disk. Returns the spec with those paths made absolute (what the worker runs)."""

from __future__ import annotations

from pathlib import Path

from api.settings import Settings
from mar_core.errors import SpecError
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


def check_spec(spec: JobSpec, settings: Settings) -> JobSpec:
    """Run every host check; the returned copy names absolute dataset and teacher paths."""
    dataset = spec.dataset.model_copy(update={"path": str(check_dataset(spec.dataset, settings))})
    update: dict[str, object] = {"dataset": dataset}
    if spec.teacher is not None:
        teacher_path = check_teacher(spec.teacher.checkpoint, settings)
        update["teacher"] = spec.teacher.model_copy(update={"checkpoint": str(teacher_path)})
    return spec.model_copy(update=update)
