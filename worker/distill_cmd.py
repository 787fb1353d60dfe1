"""``mar distill``: local files in, a distilled student out, in one command.

Uploads the dataset (a folder or an archive) and the teacher (a weights file, or a job id) unless
the service has them already (by sha256), submits a distill job with the service's defaults (and,
with ``--baseline``, the same student trained without a teacher), follows it with a progress bar,
downloads the outputs verified by sha256, checks the ONNX file against the torch model locally, and
prints the teacher's, the student's (and the baseline's) AP. Against ``--api-url``, else
``MAR_API_URL`` / the default URL when an API answers there, else the embedded service (as ``mar
up``) started for the run. Exit codes: 0 done, 1 a job failed (or the ONNX check did), 2 bad input.
This is a CLI handler: it talks to the terminal with ``print``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from api.client_cmd import client_flags, follow, make_client, print_outcome
from api.datasets_cmd import archive_of, upload_with_bar
from api.schemas import JobPublic
from api.sdk import ApiClientError, MarClient, RetryPolicy
from api.sdk.sync_client import DEFAULT_URL
from mar_core import names
from mar_core.errors import SpecError
from mar_core.export import EXPORT_FILES
from mar_core.models.loading import load_detector
from mar_core.models.thresholds import score_threshold_of
from mar_core.onnx_parity import Parity, onnx_parity
from mar_core.predict import IMAGE_SUFFIXES, load_image
from worker.embedded import prepare_state, start_stack

log = logging.getLogger(__name__)

OUTPUTS = ("model.pt", "model.json", "report.json")
PARITY_IMAGES = 2  # images of the dataset the ONNX check runs on
WEIGHT_SUFFIXES = (".pt", ".pth", ".safetensors")


def student_model(name: str, image_size: int | None) -> dict[str, Any]:
    """The ``model`` of a spec for ``--student``: a torchvision builder or a preset."""
    if name in names.TORCHVISION_BUILDERS:
        model: dict[str, Any] = {"torchvision": name}
    elif name in names.STUDENT_PRESETS:
        model = dict(names.STUDENT_PRESETS[name])
    else:
        choices = ", ".join([*names.TORCHVISION_BUILDERS, *names.STUDENT_PRESETS])
        raise SpecError(f"--student: unknown builder or preset {name!r} (one of: {choices})", "student")
    if image_size is not None:
        model.update(min_size=image_size, max_size=image_size)
    return model


def check_args(args: argparse.Namespace) -> None:
    """Refuse bad input (``SpecError``, exit code 2) before anything is sent."""
    if not Path(args.data).exists():
        raise SpecError(f"--data: {args.data} not found", "data")
    student_model(args.student, args.image_size)
    source = Path(args.teacher)
    if source.is_file():
        if args.teacher_model not in names.TORCHVISION_BUILDERS:
            raise SpecError(
                f"--teacher-model: a weights file needs its torchvision builder, got {args.teacher_model!r} "
                f"(one of: {', '.join(names.TORCHVISION_BUILDERS)})",
                "teacher_model",
            )
    elif source.exists() or os.sep in args.teacher or source.suffix.lower() in WEIGHT_SUFFIXES:
        raise SpecError(f"--teacher: {source} is not a weights file (nor a job id)", "teacher")
    if args.teacher_classes and not Path(args.teacher_classes).is_file():
        raise SpecError(f"--teacher-classes: {args.teacher_classes} not found", "teacher_classes")


def teacher_section(args: argparse.Namespace, client: MarClient) -> dict[str, Any]:
    """``teacher`` of the spec (checked by ``check_args``): an uploaded file (sent once) or a job id."""
    teacher: dict[str, Any] = {"evaluate": True}
    source = Path(args.teacher)
    if source.is_file():
        teacher["upload"] = client.upload_checkpoint(source).id
        teacher["model"] = {"torchvision": args.teacher_model}
        if args.image_size is not None:
            teacher["model"].update(min_size=args.image_size, max_size=args.image_size)
    else:
        teacher["job"] = args.teacher
    if args.teacher_classes:
        lines = Path(args.teacher_classes).read_text(encoding="utf-8").splitlines()
        teacher["class_names"] = [line.strip() for line in lines if line.strip()]
    return teacher


def job_specs(
    args: argparse.Namespace, dataset_id: str, teacher: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The distill job's spec, and the baseline's with ``--baseline``."""
    base: dict[str, Any] = {
        "dataset": {"id": dataset_id},
        "student": student_model(args.student, args.image_size),
        "seed": args.seed,
    }
    if args.iterations is not None:
        base["train"] = {"iterations": args.iterations}
    if args.export:
        base["export"] = [args.export]
    specs = {"student": {**base, "kind": "distill", "name": f"distill-{args.student}", "teacher": teacher}}
    if args.method:
        specs["student"]["distill"] = {"method": args.method}
    if args.baseline:
        specs["baseline"] = {**base, "kind": "train", "name": f"baseline-{args.student}"}
    return specs


@contextlib.contextmanager
def service(args: argparse.Namespace) -> Iterator[MarClient]:
    """A client of ``--api-url``; else of ``MAR_API_URL`` (or the default URL) when an API answers
    there; else of the embedded service, started for the run and stopped after it."""
    if args.api_url:
        with make_client(args) as client:
            yield client
        return
    url = os.environ.get("MAR_API_URL") or DEFAULT_URL
    with MarClient(url, args.api_key, retry=RetryPolicy(attempts=1)) as probe:
        try:
            probe.health()
            reachable = True
        except ApiClientError as e:
            reachable = e.status is not None  # it answered, if only with an error
    if reachable:
        with make_client(args) as client:
            yield client
        return
    print(f"no API at {url}: starting the embedded service for this run", flush=True)
    info = prepare_state()
    workers = 2 if args.baseline else 1  # the baseline trains beside the student
    with start_stack("127.0.0.1", 0, workers=workers, log_dir=info.state_dir / "logs") as (_stack, started):
        with MarClient(started, args.api_key or info.api_key) as client:
            yield client


def dataset_images(source: Path, count: int) -> list[Path]:
    """The first ``count`` images of a dataset folder, by path (none for an archive)."""
    if not source.is_dir():
        return []
    return sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)[:count]


def check_onnx(out: Path, images: list[Path]) -> Parity | None:
    """The downloaded ONNX file against the downloaded torch model on ``images``; None when
    onnxruntime is missing or there is no image to run."""
    if not images:
        print("onnx check: skipped (the dataset is an archive: no image at hand)")
        return None
    try:
        import onnxruntime  # noqa: F401 - the optional `export` extra
    except ImportError:
        print("onnx check: skipped (onnxruntime is not installed: pip install 'mar-distill[export]')")
        return None
    model = load_detector(out, param="out").model.eval()
    parity = onnx_parity(
        model, out / EXPORT_FILES["onnx"], [load_image(p) for p in images], score_threshold_of(model)
    )
    verdict = "ok" if parity.usable else "MISMATCH"
    print(
        f"onnx check: {verdict}: {parity.compared} detections on {parity.images} images, "
        f"{parity.unmatched} unmatched, max |d box| {parity.max_box_px:.3g} px, max |d score| {parity.max_score:.3g}"
    )
    return parity


def download_outputs(client: MarClient, job: JobPublic, out: Path, export: str | None) -> None:
    names_ = [*OUTPUTS, *([EXPORT_FILES[export]] if export else [])]
    for name in names_:
        client.download(job.id, name, out)
    print(f"{out}: {', '.join(names_)} (sha256 verified)")


def report_ap(path: Path, key: str) -> float | None:
    """``AP`` of section ``key`` of a downloaded ``report.json``."""
    section = json.loads(path.read_text()).get(key) or {}
    return section.get("AP")


def cmd_distill(args: argparse.Namespace) -> int:
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    check_args(args)
    data, out = Path(args.data), Path(args.out)
    with service(args) as client, tempfile.TemporaryDirectory(prefix="mar-distill-") as tmp:
        dataset = upload_with_bar(
            client, archive_of(data, Path(tmp), "data"), None, args.format, args.on_bad_image
        )
        print(f"dataset {dataset.id} ({dataset.format}, splits {', '.join(dataset.splits)})")
        specs = job_specs(args, dataset.id, teacher_section(args, client))
        jobs = {label: client.submit(spec).id for label, spec in specs.items()}
        print("jobs: " + ", ".join(f"{label} {job_id}" for label, job_id in jobs.items()), flush=True)
        finished = {"student": follow(client, jobs["student"])}
        if "baseline" in jobs:
            finished["baseline"] = client.wait(jobs["baseline"])
        codes = [print_outcome(job) for job in finished.values()]
        if any(codes):
            return 1
        folders = {"student": out, "baseline": out / "baseline"}
        for label, job in finished.items():
            download_outputs(client, job, folders[label], args.export if label == "student" else None)
    parity = check_onnx(out, dataset_images(data, PARITY_IMAGES)) if args.export == "onnx" else None
    rows = [
        ("teacher", report_ap(out / "report.json", "teacher_eval")),
        ("student", report_ap(out / "report.json", "eval")),
    ]
    if "baseline" in finished:
        rows.append(("baseline", report_ap(folders["baseline"] / "report.json", "eval")))
    print(
        "AP on the validation split: "
        + ", ".join(f"{k} {'n/a' if v is None else f'{100 * v:.1f}'}" for k, v in rows)
    )
    return 1 if parity is not None and not parity.usable else 0


def register(add) -> None:
    """Add ``distill``; ``add(name)`` returns its parser."""
    p = add("distill")
    p.add_argument(
        "--data", required=True, help="a dataset folder (COCO, VOC or YOLO export) or an archive of one"
    )
    p.add_argument("--format", choices=names.DATASET_FORMATS, default=None, help="default: detected")
    p.add_argument("--on-bad-image", choices=names.ON_BAD_IMAGE, default=None, help="skip undecodable images")
    p.add_argument(
        "--teacher", required=True, help="the teacher: a weights file (.pt/.pth/.safetensors) or a job id"
    )
    p.add_argument("--teacher-model", default=None, help="the torchvision builder of a teacher weights file")
    p.add_argument(
        "--teacher-classes", default=None, help="a text file: the teacher's class names, one a line"
    )
    p.add_argument("--student", required=True, help="a torchvision builder or a preset (retinanet-r18, ...)")
    p.add_argument("--method", default=None, help="distill.method (default: the service's default)")
    p.add_argument("--iterations", type=int, default=None, help="training steps (default: the service's)")
    p.add_argument("--image-size", type=int, default=None, help="the models' input side (min and max size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--export", choices=["onnx"], default=None, help="also export and check this format")
    p.add_argument("--baseline", action="store_true", help="also train the student without a teacher")
    p.add_argument(
        "--out", required=True, help="folder for model.pt, model.json, report.json (and model.onnx)"
    )
    client_flags(p)
    p.set_defaults(handler=cmd_distill)
