"""``distill.method: "auto"``: the job searches for its distiller instead of being given one.

Torch-free, like every spec model here. Not a method of ``METHODS`` (it has no loss module of its
own): the candidates are the registered methods' ``SEARCH_POINTS`` and "no KD", run by
``mar_core.search``; see ``docs/mar-method.md`` ("The distiller search").
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from mar_core.methods.base import MethodSpec

__all__ = ["NO_KD", "SEARCH_METHOD", "AutoSpec"]

SEARCH_METHOD = "auto"
NO_KD = "none"  # the candidate trained without a teacher


class AutoSpec(MethodSpec):
    """The search's settings; every field has a default, so ``{"method": "auto"}`` is a spec.

    ``budget``: the whole job (every trial and the winner's full run) at most this many times one
    plain distill run of the job's schedule, in training steps; ``selection_fraction``: the share
    of the training split held out to rank the trials (never the validation split); ``candidates``:
    restrict the search to these methods (registered names, or ``"none"`` for no KD), each with
    its registered search points; unset: every registered candidate for the student's family.
    """

    # What ``candidates`` may name: set by ``mar_core.methods`` from its registry (and NO_KD).
    KNOWN_CANDIDATES: ClassVar[tuple[str, ...]] = ()

    method: Literal["auto"] = "auto"
    budget: float = Field(default=2.0, ge=1.2, le=20.0)
    selection_fraction: float = Field(default=0.15, gt=0.0, le=0.5)
    candidates: list[str] | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("auto_scale")
    @classmethod
    def _no_scale(cls, v: float) -> float:
        if v != 1.0:
            raise ValueError("auto_scale is a field of the searched methods, not of auto")
        return v

    @field_validator("candidates")
    @classmethod
    def _known(cls, v: list[str] | None) -> list[str] | None:
        unknown = [c for c in v or [] if c not in cls.KNOWN_CANDIDATES]
        if unknown:
            raise ValueError(
                f"unknown candidate(s) {', '.join(map(repr, unknown))}; valid: {', '.join(cls.KNOWN_CANDIDATES)}"
            )
        return v
