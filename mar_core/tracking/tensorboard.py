"""TensorBoard event files of a run, under ``{workdir}/tensorboard/`` (``tensorboard --logdir``).

Written with tensorboardX (numpy and protobuf only; ``torch.utils.tensorboard`` needs the whole
``tensorboard`` package). A resumed run opens a new file that purges the steps after its
checkpoint, so TensorBoard shows one value per step, as ``metrics.jsonl`` does. File names end
in the start step and a random part: tensorboardX names files by the second and the host only.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from tensorboardX import SummaryWriter

TENSORBOARD_DIR = "tensorboard"


class TensorBoardLog:
    """Every metric of ``metrics`` events as a scalar by step."""

    def __init__(self, workdir: Path, start_step: int = 0):
        self.logdir = Path(workdir) / TENSORBOARD_DIR
        # purge_step: TensorBoard drops an earlier file's values from this step on (a resume).
        self._writer = SummaryWriter(
            str(self.logdir),
            purge_step=start_step + 1 if start_step else None,
            filename_suffix=f".step{start_step}.{uuid.uuid4().hex[:8]}",
        )

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self._writer.add_scalar(name, value, step)

    def close(self) -> dict[str, Path]:
        """Flush and close; the event files as artifacts (``tensorboard/<file>``)."""
        self._writer.close()
        return {f"{TENSORBOARD_DIR}/{p.name}": p for p in sorted(self.logdir.glob("events.out.tfevents.*"))}
