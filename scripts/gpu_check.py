"""The GPU check (issue 37): one script, at most ~8 minutes on one H100/H200, that runs what CI
cannot (CI has no GPU):

1. a distill job on CUDA with autocast (teacher trained first, then MAR), through ``run_job``
   exactly as a worker runs it; the memory check's CUDA branch (``torch.cuda.mem_get_info``) runs
   inside it and its log line is kept;
2. the distilled student exported to ONNX, onnxruntime (CPU) against the eager model on the
   validation images: boxes within 1e-3 relative (at least 1 px scale), scores within 1e-4;
3. the step benchmark on CUDA (``benchmarks.step_perf``, the gpu perf preset's models and batch):
   student-only against MAR throughput (target >= 0.6x), RetinaNet and Faster R-CNN.

It imports ``mar_core`` and ``benchmarks.step_perf`` only (no API, no database): the device machine
has its own torch; ``scripts/gpu_wheels.sh`` fetches the few packages it lacks. Results:
``$OUT/gpu-check.json`` (or ``--out``), and a ``perf-gpu-<time>.json`` in the layout of
``mar bench perf`` (parts ``steps`` and ``steps_frcnn``) that ``mar bench report`` reads.

    python3 scripts/gpu_check.py --out "$OUT"
    python3 scripts/gpu_check.py --smoke --out /tmp/gpu-smoke   # the same steps, tiny, on the CPU
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.machine import machine_info  # noqa: E402
from benchmarks.step_perf import measure_steps  # noqa: E402
from mar_core.data import generate_synthetic, load_dataset  # noqa: E402
from mar_core.models.loading import load_detector  # noqa: E402
from mar_core.run import run_job  # noqa: E402
from mar_core.spec import JobSpec  # noqa: E402

log = logging.getLogger("gpu_check")

THROUGHPUT_TARGET = 0.6  # MAR steps/s over student-only steps/s, at least
BOX_REL_TOL, FLOOR_PX, SCORE_TOL = 1e-3, 1.0, 1e-4


def _model(arch: str, backbone: str, size: int) -> dict:
    return {"arch": arch, "backbone": backbone, "min_size": size, "max_size": size}


class Config:
    """The full check (CUDA, 512 px jobs of 300 steps, 800 px Faster R-CNN steps), or ``smoke``:
    the same code paths on the CPU at 64 px, 2 steps (run here before a device call)."""

    def __init__(self, smoke: bool):
        self.device = "cpu" if smoke else "cuda"
        self.image_size = 64 if smoke else 512
        self.steps = 2 if smoke else 300  # per job: the teacher, then the MAR student
        self.batch = 2 if smoke else 16
        self.images = (8, 4) if smoke else (512, 64)  # train, val
        self.repeats = 1 if smoke else 20
        size, frcnn = self.image_size, 64 if smoke else 800
        self.student = _model("retinanet", "resnet18", size)
        self.teacher = _model("retinanet", "resnet18" if smoke else "resnet50", size)
        self.step_cases = {
            "steps": (self.student, self.teacher),
            "steps_frcnn": (_model("fasterrcnn", "resnet18", frcnn), _model("fasterrcnn", "resnet50", frcnn)),
        }


class _Keep(logging.Handler):
    """Keeps the records of one logger (the memory check's line)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _spec(cfg: Config, data: Path, kind: str, model: dict, **extra) -> JobSpec:
    spec = {
        "kind": kind,
        "dataset": {"format": "coco", "path": str(data)},
        "model": model,
        "train": {
            "iterations": cfg.steps,
            "batch_size": cfg.batch,
            "optimizer": "adamw",
            "lr": 1e-3,
            "schedule": "cosine",
            "warmup_iters": min(30, cfg.steps // 2),
            "amp": cfg.device == "cuda",
            "eval_every": 0,
            "checkpoint_every": 100,
            "log_every": 20,
        },
        "resources": {"device": cfg.device},
        "seed": 0,
        **extra,
    }
    return JobSpec.model_validate(spec)


def distill_on_device(cfg: Config, work: Path) -> dict:
    data = work / "data"
    num_train, num_val = cfg.images
    generate_synthetic(data, seed=0, num_train=num_train, num_val=num_val, image_size=cfg.image_size)
    keep = _Keep()
    logging.getLogger("mar_core.engine.memory_check").addHandler(keep)
    t0 = time.time()
    teacher = run_job(_spec(cfg, data, "train", cfg.teacher), work / "teacher")
    t1 = time.time()
    student = run_job(
        _spec(
            cfg,
            data,
            "distill",
            cfg.student,
            teacher={"checkpoint": str(work / "teacher")},
            distill={"method": "mar"},
            export=["onnx"],
        ),
        work / "student",
    )
    t2 = time.time()
    losses = [json.loads(line) for line in (work / "student" / "metrics.jsonl").read_text().splitlines()]
    last = next(row for row in reversed(losses) if any(k.startswith("loss/kd/") for k in row))
    return {
        "teacher": {"AP": teacher["eval"].get("AP"), "seconds": round(t1 - t0, 1)},
        "student": {
            "AP": student["eval"].get("AP"),
            "seconds": round(t2 - t1, 1),
            "images_per_second": student["images_per_second"],
            "device": student["device"],
            "kd_weights": student["kd_weights"],
            "last_losses": {k: v for k, v in last.items() if k.startswith("loss/")},
        },
        "memory_check": [m for m in keep.messages if "memory check" in m],
        "all_losses_finite": all(
            np.isfinite(v) for row in losses for k, v in row.items() if isinstance(v, float)
        ),
    }


def onnx_parity(cfg: Config, work: Path) -> dict:
    import onnxruntime as ort

    run_dir = work / "student"
    model = load_detector(run_dir).model.eval().cpu()
    session = ort.InferenceSession(str(run_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    val = load_dataset(
        JobSpec.model_validate({"kind": "train", "dataset": {"path": str(work / "data")}}).dataset, "val"
    )
    worst_rel = worst_score = 0.0
    compared = unmatched = 0
    for i in range(min(8, len(val))):
        image = val.load_image(i)
        with torch.inference_mode():
            ref = {k: v.numpy() for k, v in model([image])[0].items()}
        boxes, labels, scores = session.run(None, {"image": image.numpy()})
        for box, label, score in zip(ref["boxes"], ref["labels"], ref["scores"], strict=True):
            same = labels == label
            if not same.any():
                unmatched += 1
                continue
            diff = np.abs(boxes[same] - box).max(-1)
            j = int(diff.argmin())
            rel = diff[j] / max(float(np.abs(box).max()), FLOOR_PX)
            worst_rel = max(worst_rel, float(rel))
            worst_score = max(worst_score, float(abs(scores[same][j] - score)))
            compared += 1
    return {
        "images": min(8, len(val)),
        "detections_compared": compared,
        "unmatched": unmatched,
        "max_box_rel": worst_rel,
        "max_score_diff": worst_score,
        "ok": compared > 0 and unmatched == 0 and worst_rel <= BOX_REL_TOL and worst_score <= SCORE_TOL,
    }


def step_throughput(cfg: Config) -> dict:
    parts = {}
    for part, (student, teacher) in cfg.step_cases.items():
        size = student["min_size"]
        result = measure_steps(
            student, teacher, image_size=size, batch_size=cfg.batch, repeats=cfg.repeats, device=cfg.device
        )
        ratio = result["median_s"]["student_step"] / result["median_s"]["mar_step"]
        result["mar_throughput_over_student"] = round(ratio, 4)
        result["meets_target"] = ratio >= THROUGHPUT_TARGET
        parts[part] = result
    return parts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu-check-out"))
    parser.add_argument("--smoke", action="store_true", help="tiny, on the CPU: the code paths only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = Config(args.smoke)
    if cfg.device == "cuda" and not torch.cuda.is_available():
        log.error("no CUDA device: the check runs on a GPU machine (--smoke runs its steps on the CPU)")
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.timezone.utc)
    machine = {
        **machine_info(),
        "gpu": torch.cuda.get_device_name(0) if cfg.device == "cuda" else None,
        "cuda": torch.version.cuda,
    }
    result: dict = {"machine": machine, "started_at": started.isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        for name, step in (("distill", distill_on_device), ("onnx_parity", onnx_parity)):
            t0 = time.time()
            try:
                result[name] = step(cfg, Path(tmp))
            except Exception as exc:  # a check that breaks is a finding: record it, go on
                log.exception("%s failed", name)
                result[name] = {"error": f"{type(exc).__name__}: {exc}"}
            result[name]["seconds_total"] = round(time.time() - t0, 1)
    try:
        steps = step_throughput(cfg)
    except Exception as exc:
        log.exception("step throughput failed")
        steps = {"error": f"{type(exc).__name__}: {exc}"}
    result["steps"] = steps
    (out / "gpu-check.json").write_text(json.dumps(result, indent=2))
    if "error" not in steps:
        perf = {
            "kind": "perf",
            "preset": "smoke" if args.smoke else "gpu",
            "command": "python3 scripts/gpu_check.py",
            "machine": machine,
            "started_at": result["started_at"],
            "parts": steps,
        }
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        (out / f"perf-{perf['preset']}-{stamp}.json").write_text(json.dumps(perf, indent=2))
    log.info("GPU check: %s", json.dumps(result, indent=1)[:4000])
    ok = (
        result["distill"].get("all_losses_finite")
        and result["onnx_parity"].get("ok")
        and "error" not in steps
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
