"""State_dict files of torchvision's detection builders, written once per test session.

``layout="torchvision"``: the builder's ``state_dict()`` with ``weights=None`` (BatchNorm2d,
with ``num_batches_tracked``) as ``.pth``; ``layout="zoo"``: the same tensors without
``num_batches_tracked``, as the model zoo's FrozenBatchNorm2d checkpoints are, as
``.safetensors``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torchvision.models import detection

LAYOUTS = ("torchvision", "zoo")
NUM_CLASSES = 7  # the tiny synthetic set's 6 shapes + background


class BuilderFiles:
    def __init__(self, root: Path):
        self.root = root
        self._paths: dict[tuple[str, str, int], Path] = {}

    def state(self, builder: str, num_classes: int = NUM_CLASSES) -> dict[str, torch.Tensor]:
        torch.manual_seed(0)
        model = getattr(detection, builder)(weights=None, weights_backbone=None, num_classes=num_classes)
        return model.state_dict()

    def path(self, builder: str, layout: str = "torchvision", num_classes: int = NUM_CLASSES) -> Path:
        key = (builder, layout, num_classes)
        if key not in self._paths:
            state = self.state(builder, num_classes)
            if layout == "zoo":
                state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
                path = self.root / f"{builder}-{num_classes}-zoo.safetensors"
                save_file({k: v.contiguous() for k, v in state.items()}, str(path))
                self._paths[key] = path
                return path
            path = self.root / f"{builder}-{num_classes}-{layout}.{'pt' if layout == 'zoo' else 'pth'}"
            torch.save(state, path)
            self._paths[key] = path
        return self._paths[key]
