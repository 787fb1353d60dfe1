"""The fields every distillation method shares, and how unset loss weights take their defaults.

Torch-free, like every spec model under ``mar_core.methods``.
"""

from __future__ import annotations

from typing import ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MethodSpec"]

_Spec = TypeVar("_Spec", bound="MethodSpec")


class MethodSpec(BaseModel):
    """Base of the spec model of every method: the ``distill`` fields the distiller itself reads.

    A subclass narrows ``method`` to ``Literal["<name>"]`` with that default, declares its own
    fields, and sets:

    - ``WEIGHT_DEFAULTS``: loss-weight field -> (one-stage, two-stage) default, taken by a field
      left ``None`` (``with_weight_defaults``);
    - ``TERM_WEIGHTS``: name of a KD term its loss module returns -> the field that weights it
      (``mar bench calibrate`` reports each term with its weight).
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    WEIGHT_DEFAULTS: ClassVar[dict[str, tuple[float, float]]] = {}
    TERM_WEIGHTS: ClassVar[dict[str, str]] = {}

    method: str
    adapter: Literal["auto", "always"] = "auto"  # auto: identity when the channels match, else a 1x1 conv
    kd_warmup_iters: int | None = Field(default=None, ge=0)  # None: min(500, 10% of the run)

    @classmethod
    def own_fields(cls) -> frozenset[str]:
        """The fields of this method alone (not the shared ones above)."""
        return frozenset(cls.model_fields) - frozenset(MethodSpec.model_fields)

    def with_weight_defaults(self: _Spec, two_stage: bool) -> _Spec:
        """A copy whose unset loss weights take ``WEIGHT_DEFAULTS`` for a one- or two-stage student."""
        fill = {
            k: v[1 if two_stage else 0] for k, v in self.WEIGHT_DEFAULTS.items() if getattr(self, k) is None
        }
        return self.model_copy(update=fill)
