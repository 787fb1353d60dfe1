"""The job spec: one pydantic model shared by the CLI, the API and the worker.

Torch-free on purpose (the API validates specs without importing torch). A bad spec raises
``pydantic.ValidationError`` whose ``loc`` names the field; ``format_spec_errors`` turns it into
``"train.lr: Input should be greater than 0"`` lines. The ``distill`` section is one model per
distillation method, from the registry in ``mar_core.methods``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from mar_core import names
from mar_core.errors import SpecError
from mar_core.methods import DEFAULT_METHOD, METHODS, DistillSpec
from mar_core.spec_limits import (
    MAX_ANCHOR_SCALE,
    MAX_BATCH_SIZE,
    MAX_CLASSES,
    MAX_GPUS,
    MAX_GRAD_CLIP,
    MAX_IMAGE_SIZE,
    MAX_IMAGES,
    MAX_KEYPOINTS,
    MAX_LIST,
    MAX_LR,
    MAX_NUM_WORKERS,
    MAX_SEED,
    MAX_STEPS,
    MAX_TRAINABLE_LAYERS,
    MAX_WEIGHT_DECAY,
    SpecPath,
    SpecText,
)
from mar_core.url_guard import URL_PATTERN

# Class names that mark an unused label of a teacher (torchvision's COCO list has both).
PLACEHOLDER_CLASS_NAMES = frozenset({"N/A", "__background__"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)


def _check_name(value: str, valid: tuple[str, ...], what: str) -> str:
    if value not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


class DatasetSpec(_Strict):
    """Where the data is: ``path`` (resolved under the configured data roots) or ``id`` (a dataset
    uploaded to the service, ``POST /datasets``; the API fills ``path`` and ``format`` from it).

    coco: ``{path}/annotations/instances_{split}.json`` with images in ``{path}/{split}/``, or
          ``annotation_file`` (relative to ``path``, ``{split}`` replaced), or a Roboflow / CVAT
          export (``{split}/_annotations.coco.json`` beside the images).
    voc:  ``{path}/Annotations``, ``{path}/JPEGImages``, splits from ``{path}/ImageSets/Main``.
    yolo: Ultralytics layout: ``{path}/data.yaml`` naming the classes and each split's images
          folder; labels in the matching ``labels/`` folder (``class cx cy w h``, normalised).
    """

    format: SpecText = "coco"
    path: SpecPath | None = None
    id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    train_split: SpecText = "train"
    val_split: SpecText = "val"
    images_dir: SpecText | None = None
    annotation_file: SpecPath | None = None  # coco: relative to path; "{split}" is replaced
    class_names: list[SpecText] | None = Field(
        default=None, max_length=MAX_CLASSES
    )  # VOC: fixes the class order; default sorted names
    max_images: int | None = Field(default=None, gt=0, le=MAX_IMAGES)  # truncate each split (smoke runs)
    # an image file that cannot be decoded: "refuse" the dataset (naming it), or "skip" it (counted)
    on_bad_image: SpecText = "refuse"

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: str) -> str:
        return _check_name(v, names.DATASET_FORMATS, "dataset format")

    @field_validator("on_bad_image")
    @classmethod
    def _known_policy(cls, v: str) -> str:
        return _check_name(v, names.ON_BAD_IMAGE, "on_bad_image policy")

    @field_validator("path", "annotation_file")
    @classmethod
    def _non_empty(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be empty")
        return v

    @model_validator(mode="after")
    def _path_or_id(self) -> DatasetSpec:
        if self.path is None and self.id is None:
            raise ValueError("path: required unless dataset.id names an uploaded dataset")
        if self.annotation_file is not None and self.format != "coco":
            raise ValueError("annotation_file: only for the coco format")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)  # the newer fields only when set: no earlier run is re-keyed
        unset = {"id": None, "annotation_file": None, "on_bad_image": "refuse"}
        return {k: v for k, v in data.items() if not (k in unset and v == unset[k])}


# The fields of this project's own detectors, and their defaults when ``torchvision`` is not set.
OWN_ARCH_DEFAULTS: dict[str, Any] = {
    "arch": "retinanet",
    "backbone": "resnet18",
    "fpn_channels": 256,
    "norm": "group",
    "anchor_scale": 1.0,
}
OWN_ARCH_SIZES: dict[str, Any] = {"min_size": 128, "max_size": 1333}
# Fields left out of a dump while unset, so that adding one re-keys no earlier run (run
# fingerprints, benchmark cache keys and API idempotency hashes hash the dump).
DUMPED_WHEN_SET = (
    "torchvision",
    "trainable_backbone_layers",
    "num_keypoints",
    "backbone_weights",
    "init_checkpoint",
)


class ModelSpec(_Strict):
    """A detector, built from scratch (nothing is downloaded): a torchvision builder named by
    ``torchvision`` (its stock architecture; ``min_size`` / ``max_size`` default to the
    builder's), or this project's own detector (``arch``, ``backbone``, ``fpn_channels``,
    ``norm``, ``anchor_scale``; the small GroupNorm students). The two exclude each other (a
    spec setting both is refused naming the field); on a builder's spec the own-arch fields are
    ``None`` but ``arch``, which holds the builder's family. ``family`` / ``two_stage`` answer
    for both kinds. A dump holds only the fields of its kind (``DUMPED_WHEN_SET``)."""

    torchvision: SpecText | None = None  # a key of names.TORCHVISION_BUILDERS
    arch: SpecText | None = None
    backbone: SpecText | None = None
    fpn_channels: int | None = Field(default=None, ge=8, le=1024)
    norm: SpecText | None = None
    min_size: int | list[int] | None = (
        None  # 32..MAX_IMAGE_SIZE each; a list = multi-scale training (one value drawn per batch)
    )
    max_size: int | None = Field(default=None, ge=32, le=MAX_IMAGE_SIZE)
    anchor_scale: float | None = Field(
        default=None, gt=0, le=MAX_ANCHOR_SCALE
    )  # multiplies torchvision's default anchor sizes
    trainable_backbone_layers: int | None = Field(
        default=None, ge=0, le=MAX_TRAINABLE_LAYERS
    )  # torchvision: the last N trunk stages
    num_keypoints: int | None = Field(
        default=None, ge=1, le=MAX_KEYPOINTS
    )  # keypointrcnn_resnet50_fpn only (default 17)
    # Pretrained starts, offline (mar_core.models.pretrained): ImageNet weights of the trunk, a file
    # path (under the checkpoint roots) or a torchvision weights name ("ResNet18_Weights.IMAGENET1K_V1",
    # the file torchvision caches under $TORCH_HOME/hub/checkpoints); an own-arch trunk then defaults
    # to norm frozen_batch, as torchvision runs a pretrained trunk.
    backbone_weights: SpecText | None = Field(default=None, min_length=1)
    # A whole detector's weights to start from (warm start): a run folder or a state_dict file.
    init_checkpoint: SpecText | None = Field(default=None, min_length=1)

    @field_validator("torchvision")
    @classmethod
    def _known_builder(cls, v: str | None) -> str | None:
        if v in names.NON_FPN_BUILDERS:
            raise ValueError(
                f"{v} is an SSD / SSDlite detector, without an FPN: MAR's mask-guided and relation losses "
                f"read FPN levels; valid: {', '.join(names.TORCHVISION_BUILDERS)}"
            )
        return v if v is None else _check_name(v, tuple(names.TORCHVISION_BUILDERS), "torchvision builder")

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str | None) -> str | None:
        return v if v is None else _check_name(v, names.DETECTOR_ARCHS, "architecture")

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, v: str | None) -> str | None:
        return v if v is None else _check_name(v, names.BACKBONES, "backbone")

    @field_validator("norm")
    @classmethod
    def _known_norm(cls, v: str | None) -> str | None:
        return v if v is None else _check_name(v, names.NORM_LAYERS, "norm layer")

    @field_validator("min_size")
    @classmethod
    def _positive_sizes(cls, v: int | list[int] | None) -> int | list[int] | None:
        sizes = v if isinstance(v, list) else [v] if v is not None else [32]
        if not sizes or len(sizes) > MAX_LIST or any(not 32 <= s <= MAX_IMAGE_SIZE for s in sizes):
            raise ValueError(f"1 to {MAX_LIST} sizes, each in 32..{MAX_IMAGE_SIZE}")
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> ModelSpec:
        """Refuse the other kind's fields (naming the field), then fill the defaults."""
        if self.torchvision is None:
            for field in ("trainable_backbone_layers", "num_keypoints"):
                if getattr(self, field) is not None:
                    raise ValueError(f"{field}: only with torchvision (a builder of torchvision's)")
            defaults = {**OWN_ARCH_DEFAULTS, **OWN_ARCH_SIZES}
            if self.backbone_weights is not None:
                defaults["norm"] = "frozen_batch"
        else:
            builder = names.TORCHVISION_BUILDERS[self.torchvision]
            for field in OWN_ARCH_DEFAULTS:
                if getattr(self, field) is not None:
                    raise ValueError(
                        f"{field}: not with torchvision: the builder {self.torchvision} fixes the "
                        f"architecture ({field} is a field of this project's own detectors)"
                    )
            if self.num_keypoints is not None and builder.extra_head != "keypoint":
                raise ValueError(
                    f"num_keypoints: only with keypointrcnn_resnet50_fpn, not {self.torchvision}"
                )
            top = builder.max_trainable_layers
            if self.trainable_backbone_layers is not None and self.trainable_backbone_layers > top:
                raise ValueError(f"trainable_backbone_layers: {self.torchvision} has {top} trunk stages")
            sizes = builder.min_size
            defaults = {
                "min_size": sizes[0] if len(sizes) == 1 else list(sizes),
                "max_size": builder.max_size,
            }
        for field, value in defaults.items():
            if getattr(self, field) is None:
                object.__setattr__(self, field, value)
        if self.torchvision is not None:  # arch: the family, derived (never dumped) for every reader of it
            object.__setattr__(self, "arch", names.TORCHVISION_BUILDERS[self.torchvision].family)
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        other_kind = OWN_ARCH_DEFAULTS if self.torchvision else ()
        return {
            k: v for k, v in data.items() if k not in other_kind and not (k in DUMPED_WHEN_SET and v is None)
        }

    @property
    def family(self) -> str:
        """``retinanet``, ``fcos`` or ``fasterrcnn`` (Mask / Keypoint R-CNN included), for
        every spec; the one place to ask which detector family a spec builds."""
        assert self.arch is not None  # filled at validation: the builder's family for a builder
        return self.arch

    @property
    def two_stage(self) -> bool:
        return names.is_two_stage(self.family)

    @property
    def sizes(self) -> tuple[list[int], int]:
        """The training ``min_size`` values (one, or several drawn per batch) and ``max_size``."""
        assert self.min_size is not None and self.max_size is not None
        return (list(self.min_size) if isinstance(self.min_size, list) else [self.min_size]), self.max_size


# A resource of the service named in a spec (a job, an upload, a dataset)
ResourceId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
TEACHER_SOURCES = ("checkpoint", "job", "upload")


class TeacherSpec(_Strict):
    """The teacher, named one of three ways: ``job`` (a finished job of the project: its output
    folder), ``upload`` (a checkpoint uploaded to the service, ``POST /checkpoints``' id), or
    ``checkpoint`` (a path: a run's output folder, ``model.json`` + weights, or a state_dict file
    ``.pt`` / ``.pth`` / ``.safetensors``; on the service a path under its roots, the form for
    admins and older specs). A state_dict needs ``model`` naming its architecture
    (``{"torchvision": "<builder>"}`` for a torchvision checkpoint). Its classes are matched to
    the dataset's by name: from its model card, or ``class_names`` (its labels 1..K-1 in order;
    ``"N/A"`` marks an unused id, as in torchvision's COCO list; a leading ``"__background__"`` is
    skipped). The service resolves ``job`` and ``upload`` when it runs the job
    (``with_checkpoint``)."""

    checkpoint: SpecText | None = Field(default=None, min_length=1)
    job: ResourceId | None = None
    upload: ResourceId | None = None
    model: ModelSpec | None = None
    class_names: list[SpecText] | None = Field(default=None, max_length=MAX_CLASSES)
    # Evaluate the teacher too on the job's validation split once training ends (report.json's
    # ``teacher_eval``), where its labels are the dataset's: the student's AP beside the teacher's.
    evaluate: bool = False

    @field_validator("class_names")
    @classmethod
    def _distinct_names(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            real = [n for n in v if n not in PLACEHOLDER_CLASS_NAMES]
            if not real:
                raise ValueError("must name at least one class")
            dupes = sorted({n for n in real if real.count(n) > 1})
            if dupes:
                raise ValueError(f"names a class twice: {', '.join(dupes)}")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> TeacherSpec:
        named = [f for f in TEACHER_SOURCES if getattr(self, f) is not None]
        if len(named) != 1:
            got = f"got {', '.join(named)}" if named else "got none"
            raise ValueError(f"checkpoint: name the teacher one way: checkpoint, job or upload ({got})")
        return self

    @property
    def source(self) -> str:
        """``checkpoint``, ``job`` or ``upload``: how the spec names the teacher."""
        return next(f for f in TEACHER_SOURCES if getattr(self, f) is not None)

    def with_checkpoint(self, path: str) -> TeacherSpec:
        """This teacher named by ``path`` (what the service resolved ``job`` / ``upload`` to)."""
        return self.model_copy(update={"checkpoint": path, "job": None, "upload": None})

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)  # the optional fields only when set: no earlier run is re-keyed
        optional = ("class_names", "job", "upload", "checkpoint")
        data = {k: v for k, v in data.items() if not (k in optional and v is None)}
        return {k: v for k, v in data.items() if not (k == "evaluate" and v is False)}


class TrainSpec(_Strict):
    iterations: int = Field(default=1000, ge=1, le=MAX_STEPS)
    batch_size: int = Field(default=8, ge=1, le=MAX_BATCH_SIZE)
    # From-scratch detectors here train better with AdamW + cosine than with the SGD + step
    # recipe of pretrained backbones (RetinaNet-R18, 128 px shapes, 600 steps: AP 0.070 vs 0.046
    # for SGD 0.01 + step; AdamW reached 0.278 at 1000 steps).
    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: float = Field(default=1e-3, gt=0, le=MAX_LR)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    weight_decay: float = Field(default=1e-4, ge=0, le=MAX_WEIGHT_DECAY)
    warmup_iters: int = Field(default=100, ge=0, le=MAX_STEPS)
    schedule: Literal["step", "cosine", "constant"] = "cosine"
    lr_steps: list[float] = Field(
        default_factory=lambda: [0.67, 0.89], max_length=MAX_LIST
    )  # fractions of the run
    grad_clip: float | None = Field(default=10.0, gt=0, le=MAX_GRAD_CLIP)
    amp: bool = True  # float16 autocast, only on CUDA
    # bfloat16 autocast of the training step on a CPU (the KD losses still reduce in float32);
    # kept only where it measures faster than float32 at the job's start, else float32 with a
    # warning. Off by default: it changes the numbers (BENCHMARKS.md, the short group's *_bf16 rows).
    cpu_bf16: bool = False
    hflip: float = Field(default=0.5, ge=0, le=1)
    eval_every: int = Field(default=0, ge=0, le=MAX_STEPS)  # 0: evaluate once at the end
    checkpoint_every: int = Field(default=100, ge=1, le=MAX_STEPS)
    log_every: int = Field(default=10, ge=1, le=MAX_STEPS)
    num_workers: int = Field(default=0, ge=0, le=MAX_NUM_WORKERS)
    eval_max_images: int | None = Field(default=None, gt=0, le=MAX_IMAGES)

    @field_validator("lr_steps")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0 < f < 1 for f in v) or v != sorted(v):
            raise ValueError("must be increasing fractions of the run, each in (0, 1)")
        return v

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)  # cpu_bf16 only when on: no earlier run is re-keyed
        return {k: v for k, v in data.items() if not (k == "cpu_bf16" and v is False)}


class ResourcesSpec(_Strict):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    gpus: int = Field(default=1, ge=1, le=MAX_GPUS)  # >1: torch.distributed processes (gloo on CPU)
    # the worker pool that runs it (the deployment's MAR_POOLS; None: its first pool)
    pool: str | None = Field(default=None, pattern=names.POOL_NAME_PATTERN)

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)  # pool only when named: no earlier run is re-keyed
        return {k: v for k, v in data.items() if not (k == "pool" and v is None)}


# Where a spec's MLflow section may point: a tracking server (http/https), a local file store or a
# database store of the training host (the service refuses the last two from a submitted spec).
MLFLOW_URI_SCHEMES = ("http", "https", "file", "sqlite", "postgresql", "mysql")


class MlflowSpec(_Strict):
    """Log the job to MLflow: params from the spec, every metric by step, the final AP and the
    exported model (``mar_core.tracking.mlflow_log``). Needs the ``tracking`` extra."""

    uri: str = Field(min_length=1, max_length=2000)  # the tracking URI (MLflow's MLFLOW_TRACKING_URI)
    experiment: str = Field(default="mar", min_length=1, max_length=200)

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        scheme = v.split(":", 1)[0].split("+", 1)[0].lower() if ":" in v else ""
        if scheme not in MLFLOW_URI_SCHEMES:
            raise ValueError(f"must be a URI with one of the schemes {', '.join(MLFLOW_URI_SCHEMES)}")
        return v


class TrackingSpec(_Strict):
    """Experiment tracking besides the TensorBoard files every job writes."""

    mlflow: MlflowSpec | None = None


class WebhookSpec(_Strict):
    """A URL told of the job's events (signed per Standard Webhooks with the job's
    ``webhook_secret``, returned when the job is created); ``events`` default: all of them."""

    url: str = Field(max_length=2048, pattern=URL_PATTERN)  # the host is checked by mar_core.url_guard
    events: list[str] | None = Field(default=None, min_length=1, max_length=len(names.WEBHOOK_EVENTS))

    @field_validator("events")
    @classmethod
    def _known_events(cls, v: list[str] | None) -> list[str] | None:
        for event in v or ():
            _check_name(event, names.WEBHOOK_EVENTS, "webhook event")
        return v


class JobSpec(_Strict):
    """A training or distillation job. ``model`` is the detector trained (the student when
    ``kind`` is ``distill``); ``student`` is accepted as an alias for it."""

    kind: Literal["train", "distill"]
    name: SpecText | None = Field(default=None, max_length=200)
    dataset: DatasetSpec
    model: ModelSpec = Field(default_factory=ModelSpec, alias="student")
    teacher: TeacherSpec | None = None
    distill: DistillSpec | None = None
    train: TrainSpec = Field(default_factory=TrainSpec)
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    max_attempts: int = Field(default=3, ge=1, le=20)
    # Extra formats of the finished model, added to the job's outputs: names.EXPORT_FORMATS.
    export: list[SpecText] = Field(default_factory=list, max_length=MAX_LIST)
    webhooks: list[WebhookSpec] = Field(default_factory=list, max_length=10)
    # Experiment tracking (MLflow); it does not shape the run (spec_hash.NOT_RUN_SHAPING).
    tracking: TrackingSpec | None = None
    # Its place in the queue (names.PRIORITIES); it does not shape the run either.
    priority: SpecText = "normal"

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, protected_namespaces=(), allow_inf_nan=False
    )

    @field_validator("priority")
    @classmethod
    def _known_priority(cls, v: str) -> str:
        return _check_name(v, names.PRIORITIES, "priority")

    @field_validator("export")
    @classmethod
    def _known_formats(cls, v: list[str]) -> list[str]:
        for fmt in v:
            _check_name(fmt, names.EXPORT_FORMATS, "export format")
        return list(dict.fromkeys(v))

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)  # export, webhooks, tracking, priority only when asked: no run is re-keyed
        return {
            k: v
            for k, v in data.items()
            if not (k in ("export", "webhooks", "tracking") and not v)
            and not (k == "priority" and v == "normal")
        }

    @model_validator(mode="after")
    def _kind_fields(self) -> JobSpec:
        if self.kind == "distill":
            if self.teacher is None:
                raise ValueError("teacher: required when kind is 'distill'")
            if self.distill is None:
                self.distill = METHODS[DEFAULT_METHOD].spec()
        elif self.teacher is not None or self.distill is not None:
            raise ValueError("teacher/distill: only allowed when kind is 'distill'")
        return self

    # The spec as its submitter wrote it (ids, not the server paths they resolve to), reported in
    # report.json instead of this one; set by the service's worker (``reported_as``).
    _as_submitted: dict[str, Any] | None = PrivateAttr(default=None)

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=False)

    def reported_as(self, submitted: dict[str, Any]) -> JobSpec:
        """This spec (what runs), with ``submitted`` the form report.json records; copies keep it."""
        out = self.model_copy()
        out._as_submitted = submitted
        return out

    def report_dict(self) -> dict[str, Any]:
        """The spec report.json records: as submitted when the service set it, else this one."""
        return self._as_submitted if self._as_submitted is not None else self.to_json_dict()


def error_param(err: dict[str, Any]) -> str:
    """Dotted field path of one pydantic error, e.g. ``train.lr``; model-level errors name
    the field from their message prefix (``teacher: required ...``)."""
    loc = [str(p) for p in err.get("loc", ()) if not isinstance(p, int)]
    msg = str(err.get("msg", ""))
    if msg.startswith("Value error, "):
        head = msg[len("Value error, ") :].split(":", 1)[0]
        if head.replace("_", "").replace("/", "").replace(".", "").isalnum() and ":" in msg:
            return ".".join(loc + [head.split("/")[0]]) if loc else head.split("/")[0]
    return ".".join(loc) or "spec"


def _error_message(err: dict[str, Any]) -> str:
    msg = str(err.get("msg", "")).removeprefix("Value error, ")
    head, sep, rest = msg.partition(": ")
    return rest if sep and " " not in head else msg


def format_spec_errors(exc: ValidationError) -> list[str]:
    return [f"{error_param(e)}: {_error_message(e)}" for e in exc.errors()]


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """The JSON object of a spec file, unvalidated; ``SpecError`` when it is missing or not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SpecError(f"spec file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise SpecError(f"spec file {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise SpecError(f"spec file {path} must hold a JSON object")
    return data


def parse_spec(data: dict[str, Any] | str | Path) -> JobSpec:
    """Validate a spec from a dict, a JSON string or a JSON file; raise ``SpecError``."""
    if isinstance(data, Path) or (isinstance(data, str) and not data.lstrip().startswith("{")):
        data = read_spec_file(data)
    elif isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as e:
            raise SpecError(f"spec is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise SpecError("spec must be a JSON object")
    try:
        return JobSpec.model_validate(data)
    except ValidationError as e:
        lines = format_spec_errors(e)
        raise SpecError("invalid spec: " + "; ".join(lines), param=error_param(e.errors()[0])) from None
