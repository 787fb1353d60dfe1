"""The candidates of a distiller search: every registered method's ``SEARCH_POINTS`` for the
student's family, and training without KD. The registry is the only list of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mar_core.methods import METHODS, NO_KD, AutoSpec

__all__ = ["Candidate", "search_candidates"]

# Fields of the search's own spec passed on to every KD candidate, when the spec sets them.
SHARED_FIELDS = ("adapter", "kd_warmup_iters")


@dataclass(frozen=True)
class Candidate:
    """``label``: a name for metrics and files (``mar``, ``crosskd_x9``, ``none``); ``distill``:
    the candidate's ``distill`` section, None for training without KD."""

    label: str
    distill: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "distill": self.distill}


def _label(method: str, point: dict[str, Any], index: int, count: int) -> str:
    extra = {k: v for k, v in point.items() if k != "auto_scale"}
    label = method if "auto_scale" not in point else f"{method}_x{point['auto_scale']:g}"
    return f"{label}_{index}" if extra and count > 1 else label


def search_candidates(auto: AutoSpec, two_stage: bool) -> list[Candidate]:
    """The candidates in registry order, no KD last. With ``auto.candidates`` set, only the
    methods it names (a named method without a search point for the family at its defaults)."""
    shared = {k: getattr(auto, k) for k in SHARED_FIELDS if k in auto.model_fields_set}
    out: list[Candidate] = []
    for name, method in METHODS.items():
        points = method.spec.SEARCH_POINTS[1 if two_stage else 0]
        if auto.candidates is not None:
            if name not in auto.candidates:
                continue
            points = points or ({},)
        for i, point in enumerate(points):
            out.append(Candidate(_label(name, point, i, len(points)), {"method": name, **shared, **point}))
    if auto.candidates is None or NO_KD in auto.candidates:
        out.append(Candidate(NO_KD, None))
    return out
