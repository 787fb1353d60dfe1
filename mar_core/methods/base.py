"""The fields every distillation method shares, and how loss weights are given and resolved.

Torch-free, like every spec model under ``mar_core.methods``.

A KD loss weight (``KDWeight``: MAR's ``alpha`` / ``beta`` / ``gamma``, a peer's
``loss_weight`` or ``fgd_*``) is one of:

- a finite number in 0 .. ``MAX_LOSS_WEIGHT``: used as given;
- ``"auto"``: sized by the job on its first batches so that the term starts at
  ``mar_core.distill.auto_weights.TARGET_RATIO`` x the detection classification loss
  (``docs/mar-method.md`` section 4);
- ``"default"``: the method's ``WEIGHT_DEFAULTS`` for a one- or two-stage student (MAR's tuned
  weights, the peers' published ones);
- unset (``None``): in a job ``"auto"``, or what the method's ``job_unset()`` names for that
  field (``with_job_weights``; MAR keeps its tuned ``gamma``); the library's ``Distiller`` /
  ``build_kd_loss`` take ``"default"`` for it (``with_weight_defaults``).

Both first settle the fields whose default depends on the detector family (``with_family_form``:
MAR's ``feature_norm``).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_serializer,
)
from pydantic_core import PydanticCustomError

from mar_core.spec_limits import MAX_LOSS_WEIGHT, MAX_STEPS

__all__ = ["AUTO", "DEFAULT", "KDWeight", "MethodSpec", "SearchPoints"]

_Spec = TypeVar("_Spec", bound="MethodSpec")

# (one-stage, two-stage) candidates of a method in the distiller search, each a dict of field overrides
SearchPoints = tuple[tuple[dict[str, Any], ...], tuple[dict[str, Any], ...]]

AUTO = "auto"  # sized on the job's first batches
DEFAULT = "default"  # the method's WEIGHT_DEFAULTS for the detector family


def _kd_weight(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """One error naming what a KD weight may be, instead of one per member of the union."""
    try:
        return handler(value)
    except ValidationError:
        raise PydanticCustomError(
            "kd_weight",
            "a KD weight is a number in 0..{top}, 'auto' or 'default'; got {value}",
            {"value": repr(value), "top": MAX_LOSS_WEIGHT},
        ) from None


KDWeight = Annotated[
    Annotated[float, Field(ge=0, le=MAX_LOSS_WEIGHT, allow_inf_nan=False)]
    | Literal["auto", "default"]
    | None,
    WrapValidator(_kd_weight),
]


# Shared fields added after specs were hashed: left out of the JSON at these defaults, so that
# earlier specs keep their hash (and their cached results).
SHARED_DEFAULTS_LEFT_OUT: dict[str, Any] = {
    "auto_scale": 1.0,
    "teacher_precision": "fp32",
    "kd_stop_fraction": 0.0,
    "init_from_teacher": False,
    "teacher_cache": "off",
    "teacher_cache_dtype": "fp32",
    "teacher_cache_memory_mib": 2048,
    "teacher_cache_disk_mib": 0,
}


# Shared fields that say how a run computes, not what it learns: a distiller search gives its
# trials the values its own section holds (mar_core.search).
RUNTIME_FIELDS = (
    "teacher_precision",
    "teacher_cache",
    "teacher_cache_dtype",
    "teacher_cache_memory_mib",
    "teacher_cache_disk_mib",
)


class MethodSpec(BaseModel):
    """Base of the spec model of every method: the ``distill`` fields the distiller itself reads.

    A subclass narrows ``method`` to ``Literal["<name>"]`` with that default, declares its own
    fields, and sets:

    - ``WEIGHT_DEFAULTS``: loss-weight field (a ``KDWeight``) -> (one-stage, two-stage)
      default, taken by a field set to ``"default"``, or left ``None`` outside a job
      (``with_weight_defaults``; a method whose defaults depend on its other fields overrides
      ``weight_defaults`` and ``job_unset``);
    - ``JOB_UNSET``: field -> what a job takes when it is unset, where that is not ``"auto"``;
    - ``TERM_WEIGHTS``: name of a KD term its loss module returns -> the field that weights it
      (``"auto"`` sizes each field from its term; ``mar bench calibrate`` reports each term with
      its weight);
    - ``SEARCH_POINTS``: this method's candidates in the distiller search (``distill.method:
      "auto"``, ``mar_core.search``), as (one-stage, two-stage) tuples of field overrides; an
      empty tuple: not a candidate for that family;
    - ``AUTO_SCALES``: loss-weight field -> a multiplier of its ``"auto"`` size (its term starts at
      that many times the calibration target): per-term automatic weights;
    - ``VARIANT_OF``: the method this one extends (its fields are that method's, named as such
      in errors), or None.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)

    WEIGHT_DEFAULTS: ClassVar[dict[str, tuple[float, float]]] = {}
    JOB_UNSET: ClassVar[dict[str, str]] = {}
    TERM_WEIGHTS: ClassVar[dict[str, str]] = {}
    SEARCH_POINTS: ClassVar[SearchPoints] = ((), ())
    AUTO_SCALES: ClassVar[dict[str, float]] = {}
    VARIANT_OF: ClassVar[str | None] = None

    method: str
    adapter: Literal["auto", "always"] = "auto"  # auto: identity when the channels match, else a 1x1 conv
    kd_warmup_iters: int | None = Field(default=None, ge=0, le=MAX_STEPS)  # None: min(500, 10% of the run)
    # Multiplies the calibration target of every "auto" weight: each such term starts at
    # auto_scale x TARGET_RATIO x the classification loss (the equal tuning budget found the
    # peers best at 9x the rule). Left out of the JSON at 1.0, so earlier specs keep their hash.
    auto_scale: float = Field(default=1.0, gt=0, le=100)
    # The dtype of the teacher's forward (autocast; channels_last when not fp32): bf16 needs a CPU
    # with bf16 instructions (avx512_bf16 / AMX) or a GPU; fp16 is for CUDA. Its outputs go to the
    # KD losses in float32. Left out of the JSON at fp32, so earlier specs keep their hash.
    teacher_precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    # The last fraction of the schedule trains without KD (RTMDet's distillation does so): the
    # student settles on its own loss. 0: KD to the end.
    kd_stop_fraction: float = Field(default=0.0, ge=0.0, lt=1.0)
    # Start the student's neck and head from the teacher's weights where the shapes match (FGD's
    # and MGD's "inherit" start); the backbone stays the student's own.
    init_from_teacher: bool = False
    # Keep the teacher's outputs per (image, flip) and run it only for samples it has not seen
    # (mar_core.distill.teacher_cache): "auto" where the input allows (one input size), "off".
    # In memory up to teacher_cache_memory_mib, then in the work folder up to teacher_cache_disk_mib.
    teacher_cache: Literal["off", "auto"] = "off"
    teacher_cache_dtype: Literal["fp32", "fp16"] = "fp32"
    teacher_cache_memory_mib: int = Field(default=2048, ge=0, le=1 << 20)
    teacher_cache_disk_mib: int = Field(default=0, ge=0, le=1 << 24)

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for name, default in SHARED_DEFAULTS_LEFT_OUT.items():
            if name in data and data[name] == default:
                del data[name]
        return data

    @classmethod
    def own_fields(cls) -> frozenset[str]:
        """The fields of this method alone (not the shared ones above)."""
        return frozenset(cls.model_fields) - frozenset(MethodSpec.model_fields)

    def weight_defaults(self) -> dict[str, tuple[float, float]]:
        """Loss-weight field -> its (one-stage, two-stage) default: ``WEIGHT_DEFAULTS``."""
        return self.WEIGHT_DEFAULTS

    def job_unset(self) -> dict[str, str]:
        """Loss-weight field -> what a job takes when it is unset, where not ``"auto"``: ``JOB_UNSET``."""
        return self.JOB_UNSET

    def with_family_form(self: _Spec, two_stage: bool) -> _Spec:
        """A copy whose fields with a per-family default are settled for a one- or two-stage
        student (none here)."""
        return self

    def with_weight_defaults(self: _Spec, two_stage: bool) -> _Spec:
        """A copy settled for the family (``with_family_form``) whose loss weights set to
        ``"default"`` or unset take ``weight_defaults()`` for a one- or two-stage student;
        ``"auto"`` ones stay."""
        spec = self.with_family_form(two_stage)
        fill = {
            k: v[1 if two_stage else 0]
            for k, v in spec.weight_defaults().items()
            if getattr(spec, k) in (None, DEFAULT)
        }
        return spec.model_copy(update=fill)

    def with_job_weights(self: _Spec, two_stage: bool) -> _Spec:
        """A copy settled for the family whose unset loss weights are what a job takes for them:
        ``"auto"``, or the method's ``job_unset()`` entry."""
        spec = self.with_family_form(two_stage)
        unset = spec.job_unset()
        return spec.model_copy(
            update={k: unset.get(k, AUTO) for k in spec.WEIGHT_DEFAULTS if getattr(spec, k) is None}
        )

    def auto_weight_fields(self) -> list[str]:
        """The loss-weight fields set to ``"auto"``, in ``WEIGHT_DEFAULTS`` order."""
        return [k for k in self.WEIGHT_DEFAULTS if getattr(self, k) == AUTO]
