"""Published teachers: a trained benchmark teacher, rounded to float16 and kept in the repository.

A cpu-preset teacher costs 25-45 minutes of training, more than a session can spend again on
every fresh clone, and a preset is completed across sessions. So once a teacher is trained its
weights are *published*: cast to float16 (half the bytes: ~50 MB for an R50-FPN128 RetinaNet)
into ``benchmarks/teachers/<name>-<key12>/`` with its ``model.json`` and a ``report.json`` that
holds the AP re-measured on the rounded weights. Every student distils from the published copy
(``load_state_dict`` casts it back to float32), so a student of this session and one of the next
see the same teacher. Loading goes through ``safe_load`` (``weights_only=True``) like any
checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmarks.plan import RunDef
from benchmarks.store import DEFAULT_RESULTS
from mar_core.eval import evaluate_detector
from mar_core.models.checkpoint_io import extract_state_dict, safe_load
from mar_core.models.loading import load_detector

log = logging.getLogger(__name__)

PUBLISHED_REPORT = "report.json"


def teachers_beside(results_root: Path) -> Path:
    """The published teachers' folder that goes with a results folder: ``<results>/../teachers``."""
    return Path(results_root).parent / "teachers"


DEFAULT_TEACHERS = teachers_beside(DEFAULT_RESULTS)


def published_dir(root: Path, run: RunDef) -> Path:
    """Where teacher ``run`` is published under ``root``."""
    return Path(root) / f"{run.preset}-{run.group}-{run.key[:12]}"


def is_published(root: Path, run: RunDef) -> bool:
    d = published_dir(root, run)
    return all((d / name).is_file() for name in ("model.pt", "model.json", PUBLISHED_REPORT))


def published_report(root: Path, run: RunDef) -> dict[str, Any] | None:
    """The published teacher's ``report.json`` (its AP after rounding), or None."""
    path = published_dir(root, run) / PUBLISHED_REPORT
    return json.loads(path.read_text()) if path.is_file() else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def publish_teacher(
    trained_dir: Path, run: RunDef, root: Path, val_dataset, *, trained_eval: dict[str, float] | None = None
) -> Path:
    """Cast the teacher in ``trained_dir`` (``model.pt`` + ``model.json``) to float16, write it to
    ``published_dir(root, run)`` (through a temporary folder, renamed at the end), and record
    the COCO metrics of the rounded weights on ``val_dataset``."""

    out = published_dir(root, run)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = extract_state_dict(safe_load(Path(trained_dir) / "model.pt"))
    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp's 0700 would follow the folder into a shared checkout
    try:
        torch.save(half, tmp / "model.pt")
        shutil.copyfile(Path(trained_dir) / "model.json", tmp / "model.json")
        teacher = load_detector(tmp)
        metrics = evaluate_detector(teacher.model, val_dataset, torch.device("cpu"))
        report = {
            "key": run.key,
            "preset": run.preset,
            "teacher": run.group,
            "dtype": "float16",
            "eval": metrics,
            "eval_before_rounding": trained_eval,
            "model_pt_sha256": _sha256(tmp / "model.pt"),
            "model_pt_bytes": (tmp / "model.pt").stat().st_size,
            "spec": run.spec,
        }
        (tmp / PUBLISHED_REPORT).write_text(json.dumps(report, indent=2))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(
        "published teacher %s: AP %.4f after float16 rounding (%.4f before), %.1f MB in %s",
        run.group,
        metrics.get("AP", 0.0),
        (trained_eval or {}).get("AP", float("nan")),
        report["model_pt_bytes"] / 2**20,
        out,
    )
    return out
