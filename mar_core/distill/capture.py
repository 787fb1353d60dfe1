"""Capture module outputs by dotted path with forward hooks (torchdistill style).

Paths are checked against ``named_modules()`` before training starts (a wrong path is an
error listing near matches); outputs are cleared every step; hooks are removed by ``close()``.
A module called several times per forward (a head tower, once per FPN level) yields a list.
``input_paths`` record a module's positional inputs instead (a forward pre-hook): the RoI pooler's
``(features, proposals, image_shapes)``, say.
"""

from __future__ import annotations

import difflib
from typing import Any

from torch import nn


class FeatureCapture:
    def __init__(self, model: nn.Module, paths: list[str], input_paths: tuple[str, ...] = ()):
        modules = dict(model.named_modules())
        for path in [*paths, *input_paths]:
            if path not in modules:
                near = difflib.get_close_matches(path, list(modules), n=5, cutoff=0.4)
                raise ValueError(
                    f"no module {path!r} in {type(model).__name__}; near matches: {', '.join(near) or 'none'}"
                )
        self.outputs: dict[str, list[Any]] = {p: [] for p in paths}
        self.inputs: dict[str, list[tuple[Any, ...]]] = {p: [] for p in input_paths}
        self._handles = [modules[p].register_forward_hook(self._hook(p)) for p in paths]
        self._handles += [modules[p].register_forward_pre_hook(self._pre_hook(p)) for p in input_paths]

    def _hook(self, path: str):
        def record(_module: nn.Module, _inputs: Any, output: Any) -> None:
            self.outputs[path].append(output)

        return record

    def _pre_hook(self, path: str):
        def record(_module: nn.Module, inputs: tuple[Any, ...]) -> None:
            self.inputs[path].append(inputs)

        return record

    def clear(self) -> None:
        for v in [*self.outputs.values(), *self.inputs.values()]:
            v.clear()

    def single(self, path: str) -> Any:
        """The output (the inputs, for an input path) of a module called exactly once in the last
        forward."""
        out = self.outputs[path] if path in self.outputs else self.inputs[path]
        if len(out) != 1:
            raise RuntimeError(f"{path} ran {len(out)} times in one forward; expected once")
        return out[0]

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.clear()
