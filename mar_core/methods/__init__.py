"""The registry of distillation methods: name -> spec model -> loss module. The only list of them.

Layout, and why. A method has two halves: its spec model (pydantic, the ``distill`` section of
a job spec) and its loss module (an ``nn.Module``). The API validates specs and must never
import torch, so the two cannot share a module, nor a package whose ``__init__`` imports torch
(``mar_core.distill`` does: it is the torch library of the losses). Hence:

- ``mar_core/methods/<name>.py``: the method's spec model, torch-free: its own fields, their
  one-/two-stage weight defaults and which field weights which KD term;
- ``mar_core/distill/...``: its loss module (``mar.py`` for MAR, ``peers/<name>.py`` for the
  others), built from the spec model;
- ``METHODS`` below: one line per method naming both; the loss module by import path, imported
  by ``mar_core.distill.build_kd_loss`` only when a job builds it.

Adding a method = its spec model, its loss module and one line in ``METHODS``. Everything else
(``mar_core.names.DISTILL_METHODS``, the ``DistillSpec`` union, ``build_peer``, the distiller,
the benchmark's peers and the CLI's method lists) reads ``METHODS``.

``DistillSpec`` is the discriminated union of the spec models on ``method`` (``"mar"`` when
omitted). A field of another method is refused naming both: ``distill.alpha: alpha is a field
of method mar, not of cwd``; an unknown method lists the valid ones. Error locations carry no
union tag (``distill.temperature``, not ``distill.cwd.temperature``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args

from pydantic import (
    Discriminator,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import ErrorType

from mar_core.methods.auto import NO_KD, SEARCH_METHOD, AutoSpec
from mar_core.methods.base import MethodSpec
from mar_core.methods.crosskd import CrossKDSpec
from mar_core.methods.cwd import CWDSpec
from mar_core.methods.cwd_head import CWDHeadSpec
from mar_core.methods.feature_mse import FeatureMSESpec
from mar_core.methods.fgd import FGDSpec
from mar_core.methods.logit_kd import LogitKDSpec
from mar_core.methods.mar import MARSpec
from mar_core.methods.mar_cross import MARCrossSpec
from mar_core.methods.mgd import MGDSpec
from mar_core.methods.pkd import PKDSpec
from mar_core.methods.pkd_head import PKDHeadSpec

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "NO_KD",
    "SEARCH_METHOD",
    "AutoSpec",
    "METHOD_NAMES",
    "DistillSpec",
    "Method",
    "MethodSpec",
    "methods_with_field",
    "parse_distill",
]


@dataclass(frozen=True)
class Method:
    """A registered method: its spec model and its loss module as ``"package.module:Class"``."""

    spec: type[MethodSpec]
    loss: str


# name -> spec model, loss module. The first is the project's own method, taken when a spec
# omits ``distill.method``; the others are the peers it is compared against.
METHODS: dict[str, Method] = {
    "mar": Method(MARSpec, "mar_core.distill.mar:MARLoss"),
    "feature_mse": Method(FeatureMSESpec, "mar_core.distill.peers.feature_mse:FeatureMSELoss"),
    "fgd": Method(FGDSpec, "mar_core.distill.peers.fgd:FGDLoss"),
    "mgd": Method(MGDSpec, "mar_core.distill.peers.mgd:MGDLoss"),
    "pkd": Method(PKDSpec, "mar_core.distill.peers.pkd:PKDLoss"),
    "cwd": Method(CWDSpec, "mar_core.distill.peers.cwd:CWDLoss"),
    "pkd_head": Method(PKDHeadSpec, "mar_core.distill.peers.pkd_head:PKDHeadLoss"),
    "cwd_head": Method(CWDHeadSpec, "mar_core.distill.peers.cwd_head:CWDHeadLoss"),
    "logit_kd": Method(LogitKDSpec, "mar_core.distill.peers.logit_kd:LogitKDLoss"),
    "crosskd": Method(CrossKDSpec, "mar_core.distill.peers.crosskd:CrossKDLoss"),
    # MAR's variants (issue 36): its losses composed with another term
    "mar_cross": Method(MARCrossSpec, "mar_core.distill.mar_cross:MARCrossLoss"),
}
DEFAULT_METHOD = next(iter(METHODS))
AutoSpec.KNOWN_CANDIDATES = (NO_KD, *METHODS)

for _name, _m in METHODS.items():
    if _m.spec.model_fields["method"].default != _name or ":" not in _m.loss:
        raise RuntimeError(
            f"METHODS[{_name!r}]: its spec model's method must default to {_name!r} and its "
            f"loss be 'package.module:Class', got {_m.spec.__name__}, {_m.loss!r}"
        )


# What ``distill.method`` may name: a registered method, or the search over them (``AutoSpec``).
METHOD_NAMES = (*METHODS, SEARCH_METHOD)


def methods_with_field(field: str) -> list[str]:
    """The methods whose own fields include ``field`` (none for a shared or unknown field); a
    variant's field that it takes from the method it extends is that method's."""
    return [
        name
        for name, m in METHODS.items()
        if field in m.spec.own_fields()
        and not (m.spec.VARIANT_OF and field in METHODS[m.spec.VARIANT_OF].spec.own_fields())
    ]


_BUILTIN_ERRORS = frozenset(get_args(ErrorType))  # the rest are a field's own (PydanticCustomError)


def _method_tag(value: Any) -> Any:
    """The union's discriminator: the ``method`` of a dict or a model, the default when absent."""
    if isinstance(value, Mapping):
        return value.get("method", DEFAULT_METHOD)
    return getattr(value, "method", DEFAULT_METHOD)


def _cleared(err: Any, tag: Any) -> InitErrorDetails:
    """One error of the union, its location without the tag; an unknown tag as an unknown
    ``method``, an unknown field of one method that another has as such."""
    loc = tuple(err["loc"])[1:] if tuple(err["loc"])[:1] == (tag,) else tuple(err["loc"])
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
        message = "unknown distillation method {method}; valid: {valid}"
        context = {"method": repr(tag), "valid": ", ".join(METHOD_NAMES)}
        return InitErrorDetails(
            type=PydanticCustomError("unknown_method", message, context), loc=("method",), input=tag
        )
    owners = methods_with_field(str(loc[-1])) if err["type"] == "extra_forbidden" and loc else []
    if owners:
        message = "{field} is a field of method{s} {owners}, not of {method}"
        context = {
            "field": loc[-1],
            "s": "s" if len(owners) > 1 else "",
            "owners": ", ".join(owners),
            "method": tag,
        }
        error = PydanticCustomError("field_of_another_method", message, context)
        return InitErrorDetails(type=error, loc=loc, input=err["input"])
    if err["type"] not in _BUILTIN_ERRORS:  # e.g. a KD weight's kd_weight: its message as it was
        error = PydanticCustomError(err["type"], err["msg"])
        return InitErrorDetails(type=error, loc=loc, input=err["input"])
    return InitErrorDetails(
        type=err["type"], loc=loc, input=err["input"], **({"ctx": err["ctx"]} if "ctx" in err else {})
    )


def _clear_errors(value: Any, handler: ValidatorFunctionWrapHandler) -> MethodSpec:
    """Validate through the union, re-raising its errors ``_cleared``."""
    try:
        return handler(value)
    except ValidationError as exc:
        tag = _method_tag(value)
        raise ValidationError.from_exception_data(
            exc.title, [_cleared(e, tag) for e in exc.errors()]
        ) from None


# The ``distill`` section of a job spec: one of the registered spec models, chosen by ``method``.
DistillSpec = Annotated[
    Union[  # noqa: UP007 (a runtime union of the registry)
        (
            *(Annotated[m.spec, Tag(name)] for name, m in METHODS.items()),
            Annotated[AutoSpec, Tag(SEARCH_METHOD)],
        )
    ],
    Discriminator(_method_tag),
    WrapValidator(_clear_errors),
]

_ADAPTER: TypeAdapter[MethodSpec] = TypeAdapter(DistillSpec)


def parse_distill(section: Mapping[str, Any]) -> MethodSpec:
    """The spec model of a ``distill`` section (a dict); ``pydantic.ValidationError`` if invalid."""
    return _ADAPTER.validate_python(section)
