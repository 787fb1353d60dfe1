"""The validation side of one run (``mar_core.single_run``): evaluate the student on the
(capped) validation split, keep the latest PR curves, write each evaluation's outputs (PR curves,
sample predictions) and the best-AP weights."""

from __future__ import annotations

from pathlib import Path

from torch import nn
from torch.utils.data import Dataset, Subset

from mar_core.checkpoint_files import BEST_CHECKPOINT
from mar_core.eval import Evaluation, evaluate_model
from mar_core.eval_outputs import write_eval_outputs
from mar_core.models.checkpoint_io import atomic_torch_save
from mar_core.progress import ProgressCallback
from mar_core.samples import sample_indices
from mar_core.spec import TrainSpec


class RunEvaluation:
    """``evaluate()`` for ``EvalHook``; ``mid_run_outputs(step)`` after each evaluation before
    the last; ``save_best()`` writes ``checkpoints/best.pt``; ``final_outputs(step)`` at the end."""

    def __init__(
        self,
        student: nn.Module,
        val_ds: Dataset,
        class_names: list[str],
        cfg: TrainSpec,
        device,
        workdir: Path,
        ckpt_dir: Path,
        progress: ProgressCallback,
    ):
        self.student, self.val_ds, self.class_names, self.cfg = student, val_ds, class_names, cfg
        self.device, self.workdir, self.ckpt_dir, self.progress = device, workdir, ckpt_dir, progress
        indices = list(range(min(len(val_ds), cfg.eval_max_images or len(val_ds))))
        capped = len(indices) < len(val_ds)
        self.eval_set = Subset(val_ds, indices) if capped else val_ds
        self.eval_image_ids = [val_ds.image_info(i)["id"] for i in indices] if capped else None
        self.samples = sample_indices(len(val_ds))
        self.last_curves: dict = {}  # the PR curves of the latest evaluation

    def evaluate(self) -> dict[str, float]:
        result = self._evaluate(self.student)
        self.last_curves = dict(result.pr_curves)
        return result.metrics

    def evaluate_other(self, model: nn.Module) -> dict[str, float]:
        """The metrics of another detector of the dataset's labels (the teacher) on the same images."""
        return self._evaluate(model).metrics

    def _evaluate(self, model: nn.Module) -> Evaluation:
        cfg = self.cfg
        return evaluate_model(
            model, self.eval_set, self.device, cfg.batch_size, cfg.num_workers, self.eval_image_ids
        )

    def mid_run_outputs(self, step: int) -> None:
        for name, path in self._outputs(step, final=False).items():
            self.progress({"type": "artifact", "name": name, "path": str(path)})

    def final_outputs(self, step: int) -> dict[str, Path]:
        return self._outputs(step, final=True)

    def _outputs(self, step: int, final: bool) -> dict[str, Path]:
        return write_eval_outputs(
            self.workdir,
            step,
            self.last_curves,
            self.student,
            self.val_ds,
            self.samples,
            self.class_names,
            final=final,
        )

    def save_best(self) -> None:
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        weights = {k: v.detach().cpu() for k, v in self.student.state_dict().items()}
        atomic_torch_save(weights, self.ckpt_dir / BEST_CHECKPOINT)
