"""The equal tuning budget's points (issue 19): each method's calibration point, a point's
weights at a scale of it, and the label that names a point in any group (``"cwd_head x9"``).

Torch-free plain data and naming: ``benchmarks.plan`` builds a labelled point's spec in any
group from here, ``benchmarks.equal_tune`` searches the points and picks one per method.
"""

from __future__ import annotations

from typing import Any

from benchmarks.presets import CALIBRATED_PEERS, PEERS, RAW, RAW_MAR
from mar_core.methods import METHODS

# One factor for all of a method's KD weights. Every method's first two points: the calibration
# point and three times it; the third steps on in the direction that helped, so a method whose best
# lies beyond its calibration point on either side gets one more step there. Three points each.
FIRST_SCALES: tuple[float, ...] = (1.0, 3.0)
UP_SCALE, DOWN_SCALE = 9.0, 1 / 3
SCALES: tuple[float, ...] = (DOWN_SCALE, *FIRST_SCALES, UP_SCALE)  # every point a grid can hold

# MAR's calibration-rule points on the short group: alpha and beta as the job's "auto" found them
# on seed 0 (0.2821 / 0.4613, first 4 batches) on the standardised maps; gamma and raw MAR's
# weights from ``calibrate-cpu-retina-synth-short.json`` (weight_for_target of fg, bg and relation
# on the raw maps: 1.28e-4, 5.8e-4, 30.2), rounded as the peers' are.
MAR_CALIBRATED: dict[str, Any] = {
    "method": "mar",
    "feature_norm": "channel",
    "alpha": 0.28,
    "beta": 0.46,
    "gamma": 30.0,
}
RAW_MAR_CALIBRATED: dict[str, Any] = {**RAW, "alpha": 1.3e-4, "beta": 5.8e-4, "gamma": 30.0}

# method label -> its distill section at the calibration point
CALIBRATION_POINTS: dict[str, dict[str, Any]] = {
    "mar": MAR_CALIBRATED,
    RAW_MAR: RAW_MAR_CALIBRATED,
    **{p: {"method": p, **CALIBRATED_PEERS[p]} for p in PEERS if p in CALIBRATED_PEERS},
}


def scaled(distill: dict[str, Any], scale: float) -> dict[str, Any]:
    """``distill`` with every KD weight field of its method (``TERM_WEIGHTS``) times ``scale``
    (3 significant digits, so that the labels and the specs read alike)."""
    fields = set(METHODS[distill["method"]].spec.TERM_WEIGHTS.values())
    return {k: (float(f"{v * scale:.3g}") if k in fields else v) for k, v in distill.items()}


def point_label(method: str, scale: float) -> str:
    """The label of ``method``'s point at ``scale`` (``"cwd x9"``, ``"fgd x0.333"``)."""
    return f"{method} x{scale:.3g}"


def point_distill(method: str, scale: float) -> dict[str, Any]:
    """The distill section of ``method``'s point at ``scale`` (the calibration point itself at 1)."""
    base = CALIBRATION_POINTS[method]
    return base if scale == 1.0 else scaled(base, scale)


# label -> (method, scale) for every point a grid can hold
_POINTS: dict[str, tuple[str, float]] = {
    point_label(m, s): (m, s) for m in CALIBRATION_POINTS for s in SCALES
}


def parse_point(label: str) -> tuple[str, float] | None:
    """``(method, scale)`` when ``label`` names a tuning point (``point_label``), else None."""
    return _POINTS.get(label)


def peer_labels(with_points: bool) -> tuple[str, ...]:
    """Every label a peer can run under in a group: its plain label (calibration weights) and,
    ``with_points``, its other tuning points (``"cwd x9"``; ``"cwd x1"`` is ``"cwd"``)."""
    if not with_points:
        return tuple(PEERS)
    tuned = (label for label, (m, s) in _POINTS.items() if m in PEERS and s != 1.0)
    return (*PEERS, *tuned)


def is_peer_label(label: str) -> bool:
    """A peer, at its calibration weights (``"cwd"``) or at a tuning point (``"cwd x9"``)."""
    point = parse_point(label)
    return label in PEERS or (point is not None and point[0] in PEERS)
