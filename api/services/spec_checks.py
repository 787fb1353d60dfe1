"""Checks of a validated ``JobSpec`` against the host: paths inside the configured roots and
visible to the submitting project, the uploaded dataset a spec names, the dataset's data on
disk, the webhook URLs, and that no weights file it names is a pickle that runs code. Returns the spec with those paths made absolute (what the worker runs).
A spec's MLflow URI must name a tracking server (http/https): a local store would write into the
workers' files.

A project sees the shared roots (data roots, the checkpoint root but its ``uploads/``), its own
uploads (``uploads/<project>/``), its own uploaded datasets and its own jobs' folders. A path
into another project's files reads as missing, exactly like a path that does not exist.

A dataset named by path is read in full (every image decoded) the first time; later submissions
of the same spec re-read it only when its ``tree_fingerprint`` (every file's path, size and
modification time, one ``stat`` each) changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from api.db import datasets_repo, jobs_repo
from api.db.models import DEFAULT_PROJECT
from api.locked_lru import LockedLRU
from api.services.datasets import bad_image_policy, dataset_for_job
from api.services.mlflow_urls import check_mlflow_uri
from api.services.teacher_source import teacher_path as teacher_path_of
from api.services.uploads import UPLOADS
from api.services.webhook_urls import check_webhook_url
from api.settings import Settings
from mar_core.annotations.containment import tree_fingerprint
from mar_core.annotations.inspect import inspect_dataset
from mar_core.errors import SpecError
from mar_core.names import is_torchvision_weights_name
from mar_core.paths import resolve_under
from mar_core.pickle_scan import ForbiddenPickle, UnsafePickle, scan_checkpoint
from mar_core.spec import DatasetSpec, JobSpec

# keys of the dataset checks that passed in this process (a key holds the dataset's fingerprint)
_CHECKED_DATASETS = LockedLRU(512)


@dataclass(frozen=True)
class Host:
    """What a submission is checked against: the settings, the database, and the project whose
    files the spec may name (``scope`` None: every project's, an admin key)."""

    settings: Settings
    session: Session
    scope: str | None

    def resolve(self, value: str, roots: list[Path], param: str) -> Path:
        """``value`` resolved inside ``roots``; ``SpecError`` naming ``param`` when it is outside
        them or inside a folder of another project (reported as missing)."""
        path = resolve_under(value, roots, param)
        if self.scope is not None and not self._visible(path):
            raise SpecError(f"{param}: {value!r} does not exist", param=param)
        return path

    def _visible(self, path: Path) -> bool:
        st = self.settings
        assert st.artifact_root is not None and st.dataset_root is not None and st.checkpoint_root
        if path.is_relative_to(st.artifact_root) and path != st.artifact_root:
            job_id = path.relative_to(st.artifact_root).parts[0]
            return jobs_repo.get_job(self.session, job_id, project=self.scope) is not None
        if path.is_relative_to(st.dataset_root) and path != st.dataset_root:
            dataset_id = path.relative_to(st.dataset_root).parts[0]
            return datasets_repo.get_dataset(self.session, dataset_id, project=self.scope) is not None
        uploads = st.checkpoint_root / UPLOADS
        if path.is_relative_to(uploads):
            parts = path.relative_to(uploads).parts
            owner = parts[0] if len(parts) > 1 else DEFAULT_PROJECT  # uploads from before projects
            return owner == self.scope
        return True


def check_dataset(ds: DatasetSpec, host: Host) -> DatasetSpec:
    """The dataset spec after validating the data on disk (torch-free readers: files, boxes,
    classes, splits): an absolute ``path``, or for ``dataset.id`` the upload's format and bad-image
    policy (its path is resolved by the worker: no server path in a stored spec); ``SpecError`` /
    ``DatasetError`` naming the field when something is wrong."""
    if ds.id is not None:
        row = dataset_for_job(host.session, ds, host.scope)
        return ds.model_copy(update={"format": row.format, "on_bad_image": bad_image_policy(ds, row)})
    assert ds.path is not None
    roots = host.settings.dataset_read_roots
    root = host.resolve(ds.path, roots, "dataset.path")
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise SpecError(f"dataset.path: {ds.path!r} {what}", param="dataset.path")
    if ds.images_dir is not None:
        for split in (ds.train_split, ds.val_split):
            rel = ds.images_dir.replace("{split}", split)
            if not resolve_under(root / rel, [root], "dataset.images_dir").is_dir():
                raise SpecError(f"dataset.images_dir: {rel!r} is not a folder", param="dataset.images_dir")
    checked = ds.model_copy(update={"path": str(root)})
    key = (checked.model_dump_json(), tuple(map(str, roots)), tree_fingerprint(root, roots))
    if not _CHECKED_DATASETS.get(key):  # unchanged since it passed: its files are not re-read
        inspect_dataset(checked, roots, splits=[ds.train_split, ds.val_split])
        _CHECKED_DATASETS.put(key, True)
    return checked


def check_no_code(path: Path, param: str) -> None:
    """A weights file named by a spec whose pickles ``torch.load(weights_only=True)`` would refuse
    (one that may run code: ``mar_core.pickle_scan``) is a ``SpecError`` naming ``param`` and the
    first forbidden global; one that is not a readable checkpoint is left to the worker to report."""
    if not path.is_file() or path.suffix.lower() == ".safetensors":
        return
    try:
        scan_checkpoint(path)
    except ForbiddenPickle as e:
        raise SpecError(f"{param}: {e}", param=param) from None
    except UnsafePickle:
        pass


def check_teacher(checkpoint: str, host: Host) -> Path:
    """The teacher checkpoint, resolved inside the checkpoint root or a previous job's folder."""
    path = host.resolve(checkpoint, host.settings.checkpoint_read_roots, "teacher.checkpoint")
    if path.is_dir():
        if not (path / "model.json").is_file():
            raise SpecError(
                f"teacher.checkpoint: folder {checkpoint!r} has no model.json", param="teacher.checkpoint"
            )
    elif not path.is_file():
        raise SpecError(f"teacher.checkpoint: {checkpoint!r} does not exist", param="teacher.checkpoint")
    check_no_code(path, "teacher.checkpoint")
    return path


def check_model_files(spec: JobSpec, host: Host) -> dict[str, str]:
    """The pretrained-start files of ``spec.model`` (a torchvision weights name is resolved by the
    worker under ``$TORCH_HOME``), resolved inside the checkpoint root or a previous job's folder."""
    resolved = {}
    roots = host.settings.checkpoint_read_roots
    weights = spec.model.backbone_weights
    if weights is not None and not is_torchvision_weights_name(weights):
        path = host.resolve(weights, roots, "model.backbone_weights")
        if not path.is_file():
            raise SpecError(
                f"model.backbone_weights: {weights!r} does not exist", param="model.backbone_weights"
            )
        check_no_code(path, "model.backbone_weights")
        resolved["backbone_weights"] = str(path)
    if spec.model.init_checkpoint is not None:
        path = host.resolve(spec.model.init_checkpoint, roots, "model.init_checkpoint")
        if not (path / "model.json").is_file() and not path.is_file():
            raise SpecError(
                f"model.init_checkpoint: {spec.model.init_checkpoint!r} is not a run folder or a weights file",
                param="model.init_checkpoint",
            )
        check_no_code(path, "model.init_checkpoint")
        resolved["init_checkpoint"] = str(path)
    return resolved


def check_tracking(spec: JobSpec, settings: Settings) -> None:
    """``tracking.mlflow.uri`` of a submitted spec: a server the workers may call
    (``api.services.mlflow_urls``), never a path on the workers."""
    mlflow = spec.tracking.mlflow if spec.tracking else None
    if mlflow is not None:
        check_mlflow_uri(mlflow.uri, settings)


def check_spec(spec: JobSpec, settings: Settings, session: Session, scope: str | None = None) -> JobSpec:
    """Run every host check for a submission seeing ``scope`` (a project, None: all); the
    returned copy names absolute dataset, teacher and model-file paths."""
    check_tracking(spec, settings)
    host = Host(settings, session, scope)
    update: dict[str, object] = {"dataset": check_dataset(spec.dataset, host)}
    model_files = check_model_files(spec, host)
    if model_files:
        update["model"] = spec.model.model_copy(update=model_files)
    if spec.teacher is not None and spec.teacher.checkpoint is not None:
        teacher_path = check_teacher(spec.teacher.checkpoint, host)
        update["teacher"] = spec.teacher.model_copy(update={"checkpoint": str(teacher_path)})
    elif spec.teacher is not None:  # by id: checked here, kept as the id (the worker resolves it)
        check_no_code(
            teacher_path_of(spec.teacher, settings, session, scope), f"teacher.{spec.teacher.source}"
        )
    for hook in spec.webhooks:
        check_webhook_url(hook.url, settings, "webhooks.url")
    return spec.model_copy(update=update)
