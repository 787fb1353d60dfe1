"""Checks of a validated ``JobSpec`` against the host: paths inside the configured roots, the
uploaded dataset a spec names, and the dataset's data on disk. Returns the spec with those paths made absolute (what the worker runs)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from api.services.datasets import dataset_for_job
from api.settings import Settings
from mar_core.annotations.inspect import inspect_dataset
from mar_core.errors import SpecError
from mar_core.names import is_torchvision_weights_name
from mar_core.paths import resolve_under
from mar_core.spec import DatasetSpec, JobSpec


def check_dataset(ds: DatasetSpec, settings: Settings, session: Session) -> DatasetSpec:
    """The dataset spec with an absolute ``path`` (from the upload for ``dataset.id``) after
    validating the data on disk (torch-free readers: files, boxes, classes, splits); ``SpecError``
    / ``DatasetError`` naming the field when something is wrong."""
    if ds.id is not None:
        row = dataset_for_job(session, ds)
        return ds.model_copy(update={"path": row.path, "format": row.format})
    assert ds.path is not None
    root = resolve_under(ds.path, settings.dataset_read_roots, "dataset.path")
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise SpecError(f"dataset.path: {ds.path!r} {what}", param="dataset.path")
    if ds.images_dir is not None:
        for split in (ds.train_split, ds.val_split):
            rel = ds.images_dir.replace("{split}", split)
            if not resolve_under(root / rel, [root], "dataset.images_dir").is_dir():
                raise SpecError(f"dataset.images_dir: {rel!r} is not a folder", param="dataset.images_dir")
    checked = ds.model_copy(update={"path": str(root)})
    inspect_dataset(checked, settings.dataset_read_roots, splits=[ds.train_split, ds.val_split])
    return checked


def check_teacher(checkpoint: str, settings: Settings) -> Path:
    """The teacher checkpoint, resolved inside the checkpoint root or a previous job's folder."""
    path = resolve_under(checkpoint, settings.checkpoint_read_roots, "teacher.checkpoint")
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
        path = resolve_under(weights, settings.checkpoint_read_roots, "model.backbone_weights")
        if not path.is_file():
            raise SpecError(
                f"model.backbone_weights: {weights!r} does not exist", param="model.backbone_weights"
            )
        resolved["backbone_weights"] = str(path)
    if spec.model.init_checkpoint is not None:
        path = resolve_under(
            spec.model.init_checkpoint, settings.checkpoint_read_roots, "model.init_checkpoint"
        )
        if not (path / "model.json").is_file() and not path.is_file():
            raise SpecError(
                f"model.init_checkpoint: {spec.model.init_checkpoint!r} is not a run folder or a weights file",
                param="model.init_checkpoint",
            )
        resolved["init_checkpoint"] = str(path)
    return resolved


def check_spec(spec: JobSpec, settings: Settings, session: Session) -> JobSpec:
    """Run every host check; the returned copy names absolute dataset, teacher and model-file paths."""
    update: dict[str, object] = {"dataset": check_dataset(spec.dataset, settings, session)}
    model_files = check_model_files(spec, settings)
    if model_files:
        update["model"] = spec.model.model_copy(update=model_files)
    if spec.teacher is not None:
        teacher_path = check_teacher(spec.teacher.checkpoint, settings)
        update["teacher"] = spec.teacher.model_copy(update={"checkpoint": str(teacher_path)})
    return spec.model_copy(update=update)
