"""What each evaluation leaves for the dashboard: the PR curves per class and the student's sample
predictions. The last evaluation's sit at the top (``pr_curves.json``, ``samples/student-<k>.png``),
each earlier one under its step (``pr_curves/step-<N>.json``, ``samples/step-<N>/student-<k>.png``),
so a resumed run that evaluates a step again rewrites the same files under the same names."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from mar_core.atomic import atomic_write_json
from mar_core.data.dataset import DetectionDataset
from mar_core.samples import SAMPLES_DIR, draw_samples

PR_CURVES = "pr_curves.json"  # the last evaluation's PR curves per class (mar_core.eval.pr_curves)
PR_CURVES_DIR = "pr_curves"  # the earlier evaluations' curves, one file per step


def pr_curves_name(step: int | None) -> str:
    """The artifact name of the PR curves of the evaluation at ``step`` (None: the last one)."""
    return PR_CURVES if step is None else f"{PR_CURVES_DIR}/step-{step}.json"


def write_eval_outputs(
    workdir: Path,
    step: int,
    curves: dict,
    student: nn.Module,
    dataset: DetectionDataset,
    indices: Sequence[int],
    class_names: Sequence[str] | None,
    *,
    final: bool,
    device: torch.device | None = None,
) -> dict[str, Path]:
    """Write the evaluation's curves (``{"step": step, **curves}``) and draw ``student`` on
    ``dataset``'s images ``indices``; return ``{artifact name: path}``. ``final``: the top-level
    names, else those of ``step``."""
    name = pr_curves_name(None if final else step)
    atomic_write_json(workdir / name, {"step": step, **curves})
    written = {name: workdir / name}
    written.update(
        draw_samples(
            student,
            dataset,
            indices,
            workdir / SAMPLES_DIR,
            "student",
            class_names,
            device,
            step=None if final else step,
        )
    )
    return written
