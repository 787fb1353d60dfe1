"""The ranges of the job spec's fields, and its text type: the one home of both.

Every number a spec carries has an upper bound a real GPU job could need and a host can still
serve (``resources.gpus`` <= 64, ``train.batch_size`` <= 4096, image sizes <= 8192, step counts
<= 10,000,000, ``seed`` in 0 .. 2**31-1); floats are finite (``allow_inf_nan=False``). Text
(``SpecText``) holds no control character (C0, DEL, C1: NUL, escape sequences, newlines) nor
lone surrogate, so that neither a database nor a terminal meets one. Each bound is a pydantic
constraint, so a value out of range is a ``ValidationError`` naming the field, published in the
OpenAPI document as ``minimum`` / ``maximum`` / ``pattern``.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from pydantic import AfterValidator, GetJsonSchemaHandler, StringConstraints
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

MAX_GPUS = 64
MAX_BATCH_SIZE = 4096
MAX_IMAGE_SIZE = 8192
MAX_STEPS = 10_000_000  # iterations, warmup_iters, *_every, kd_warmup_iters
MAX_IMAGES = 100_000_000  # max_images, eval_max_images
MAX_NUM_WORKERS = 64
MAX_SEED = 2**31 - 1
MAX_KEYPOINTS = 1000
MAX_TRAINABLE_LAYERS = 8  # a sanity bound: the builder check names the exact count (resnet 5, mobilenet 6)
MAX_ANCHOR_SCALE = 100.0
MAX_LR = 10.0
MAX_WEIGHT_DECAY = 1.0
MAX_GRAD_CLIP = 1e6
MAX_LOSS_WEIGHT = 1e6  # a KD weight, a gaussian sigma, a temperature
MAX_LIST = 64  # entries of min_size, lr_steps, kappas, ring_values, export
MAX_CLASSES = 10_000  # class_names
MAX_TEXT = 4096  # a path or a name in a spec

# Published in the OpenAPI document; the validator below also refuses lone surrogates.
CONTROL_FREE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"


def control_char(value: str) -> str | None:
    """The first control character or lone surrogate of ``value`` (``repr``-able), else None."""
    return next((c for c in value if unicodedata.category(c) in ("Cc", "Cs")), None)


def escape_controls(text: str) -> str:
    """``text`` with each control character as its Python escape (``\\x1b``): safe to print to a
    terminal (a stored name from before the check, a message quoting input)."""
    return "".join(repr(c)[1:-1] if unicodedata.category(c) in ("Cc", "Cs") else c for c in text)


def _no_control(value: str) -> str:
    bad = control_char(value)
    if bad is not None:
        raise ValueError(f"must not contain control characters (found {bad!r})")
    return value


class _ControlFreeSchema:
    """Adds ``pattern`` to the JSON schema of a ``SpecText``, so a client (and a fuzzer) knows."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema: dict[str, Any] = handler(core_schema)
        schema["pattern"] = CONTROL_FREE_PATTERN
        return schema


# A string of a spec: at most MAX_TEXT characters, no control character.
SpecText = Annotated[
    str, StringConstraints(max_length=MAX_TEXT), AfterValidator(_no_control), _ControlFreeSchema()
]

# Control-free with at least one character that is not white space (a path, a file name).
NON_BLANK_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"

# A path of a spec: a ``SpecText`` that is not empty or only white space, as the schema says.
SpecPath = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_TEXT, pattern=NON_BLANK_PATTERN),
    AfterValidator(_no_control),
]
