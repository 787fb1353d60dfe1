"""Moved to ``mar_core.synth_once`` (torch-free, so ``mar up`` / ``mar demo`` load no torch);
re-exported here only until ``benchmarks/quality.py`` imports it from there. Delete then."""

from mar_core.synth_once import STAMP, ensure_synthetic

__all__ = ["STAMP", "ensure_synthetic"]
