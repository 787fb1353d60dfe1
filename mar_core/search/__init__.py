"""The distiller search (``distill.method: "auto"``): candidates from the method registry,
ranked on a split held out of the training split by successive halving under a compute budget;
the winner continues to the full schedule. ``runner`` has the steps."""

from mar_core.search.runner import JobContext, is_search, run_search

__all__ = ["JobContext", "is_search", "run_search"]
