"""Errors that carry a structured ``{code, message, param}`` (torch-free).

The worker stores ``to_dict()`` on a failed job; the CLI prints ``message`` and exits 2 for
input errors (``exit_code``).
"""

from __future__ import annotations


class MarError(Exception):
    code = "internal_error"
    exit_code = 1

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "param": self.param}


class SpecError(MarError, ValueError):
    """The spec does not validate; ``param`` is the dotted field at fault."""

    code = "invalid_spec"
    exit_code = 2


class DatasetError(MarError, ValueError):
    """A dataset is missing, unreadable, or holds a missing image file."""

    code = "dataset_invalid"
    exit_code = 2


class CheckpointError(MarError, ValueError):
    """A checkpoint cannot be loaded: unsafe pickle, wrong keys or shapes, missing file."""

    code = "checkpoint_invalid"
    exit_code = 2


class UnsafeCheckpointError(CheckpointError):
    """Unpickling the checkpoint would run code; it was refused, never executed."""

    code = "checkpoint_unsafe"


class PathOutsideRootError(MarError, ValueError):
    code = "path_outside_root"
    exit_code = 2


class NonFiniteLossError(MarError, FloatingPointError):
    """A loss term became NaN or inf; ``losses`` holds every term of that step."""

    code = "non_finite_loss"

    def __init__(self, term: str, step: int, losses: dict[str, float]):
        super().__init__(f"loss {term!r} is not finite at step {step}: {losses}", param=None)
        self.term, self.step, self.losses = term, step, losses


class InsufficientMemoryError(MarError):
    """A training step does not fit in the memory of the device (measured by a dry step, or an
    out-of-memory error of a step); ``param`` names ``train.batch_size``."""

    code = "insufficient_memory"
    exit_code = 2


class JobCancelled(MarError):
    code = "cancelled"


class SplitNotFoundError(DatasetError):
    """A split the spec names is not in the dataset or holds no images; the reader's caller sets ``param`` to the
    spec field naming the split (``dataset.train_split`` / ``dataset.val_split``)."""


class BadImageError(DatasetError):
    """An image file that cannot be decoded (empty, not an image of a supported format, broken
    past repair); the message names the file. Its code stays ``dataset_invalid``."""
