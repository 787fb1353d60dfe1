"""``mar demo``: the whole service on one machine, driven through its HTTP API.

Starts the embedded stack (as ``mar up``), writes the synthetic dataset under the data root, then
through ``api.sdk.MarClient``: a baseline student and a MAR student distilled from the benchmark's
published teacher (in sequence with one worker, side by side with two), with a live progress
line, and prints the three COCO APs and where the weights are. ``--train-teacher`` / ``--quick``
train a (smaller) teacher through the service first. This is a CLI handler's helper:
it talks to the terminal with ``print``.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

from api.routes.ui import compare_url
from api.schemas import JobPublic
from api.sdk import MarClient
from api.settings import get_settings
from mar_core.synth_once import ensure_synthetic
from worker import demo_specs
from worker.embedded import prepare_state, start_stack

logger = logging.getLogger(__name__)

TERMINAL = ("succeeded", "failed", "cancelled")


def _fmt_seconds(s: float) -> str:
    return f"{int(s // 60)}m{int(s % 60):02d}s"


class Follower:
    """Polls jobs and keeps one status line per poll on the terminal."""

    def __init__(self, client: MarClient, labels: dict[str, str]):
        self.client = client
        self.labels = labels  # job id -> label
        self.tty = sys.stdout.isatty()
        self._last_print = 0.0

    def _loss(self, job_id: str, step: int | None) -> float | None:
        if not step:
            return None
        try:
            series = self.client.metrics(job_id, names=["loss/total"], since=max(0, step - 50)).series
        except Exception:  # noqa: BLE001 - the line is cosmetic
            return None
        points = series.get("loss/total") or []
        return points[-1].value if points else None

    def _describe(self, job: JobPublic) -> str:
        label = self.labels[job.id]
        if job.status != "running":
            return f"{label}: {job.status}"
        step, total = job.progress_step, job.progress_total
        text = f"{label}: {job.phase or 'starting'}"
        if step and total:
            text += f" {step}/{total}"
        loss = self._loss(job.id, step)
        if loss is not None:
            text += f" loss {loss:.3f}"
        return text

    def wait(self, t0: float, poll: float = 1.0) -> dict[str, JobPublic]:
        """Until every job is terminal; returns the jobs by id."""
        while True:
            jobs = {job_id: self.client.get_job(job_id) for job_id in self.labels}
            line = f"[{_fmt_seconds(time.monotonic() - t0)}] " + " | ".join(
                self._describe(j) for j in jobs.values()
            )
            done = all(j.status in TERMINAL for j in jobs.values())
            if self.tty:
                print("\r" + line[:160].ljust(160), end="\n" if done else "", flush=True)
            elif done or time.monotonic() - self._last_print >= 15:
                print(line, flush=True)
                self._last_print = time.monotonic()
            if done:
                return jobs
            time.sleep(poll)


def job_ap(client: MarClient, job: JobPublic) -> float | None:
    """The job's final ``eval/AP`` (metrics), else the one in its ``report.json``."""
    points = client.metrics(job.id, names=["eval/AP"]).series.get("eval/AP") or []
    if points:
        return points[-1].value
    try:
        with tempfile.TemporaryDirectory() as tmp:
            report = json.loads(client.download(job.id, "report.json", tmp).read_text())
        return (report.get("eval") or {}).get("AP")
    except Exception:  # noqa: BLE001
        return None


def _failed(job: JobPublic, label: str) -> bool:
    if job.status == "succeeded":
        return False
    err = job.error or {}
    print(f"{label} {job.status}: {err.get('code')}: {err.get('message')}", file=sys.stderr)
    return True


def run_demo(
    host: str, port: int, *, workers: int = 1, quick: bool = False, train_teacher: bool = False
) -> int:
    """The demo; returns the exit code. By default the teacher is the benchmark's published one
    (``worker.demo_specs.published_teacher``); ``quick`` or ``train_teacher`` (or no published teacher)
    train one through the service first."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one request a second: keep the line readable
    t0 = time.monotonic()
    info = prepare_state()
    settings = get_settings()
    found = demo_specs.published_teacher()
    published, published_report = found if found else (None, None)
    use_published = published is not None and not (quick or train_teacher)
    if not use_published and not quick and not train_teacher:
        print("no published benchmark teacher in benchmarks/teachers/: training one first", flush=True)
    params = (
        demo_specs.QUICK_DATA if quick else demo_specs.PUBLISHED_DATA if use_published else demo_specs.DATA
    )
    iters = demo_specs.QUICK_ITERATIONS if quick else demo_specs.ITERATIONS
    size = params["image_size"]
    name = "demo-shapes-quick" if quick else "bench-shapes" if use_published else "demo-shapes"
    print(f"synthetic dataset in {info.data_root / name} (written once) ...", flush=True)
    data_dir = ensure_synthetic(info.data_root / name, params)
    log_dir = info.state_dir / "logs"
    print(f"starting the service (state {info.state_dir}, logs in {log_dir}) ...", flush=True)
    with start_stack(host, port, workers=workers, log_dir=log_dir) as (_stack, url):
        print(f"service at {url}; API key in {info.key_file}", flush=True)
        with MarClient(url, info.api_key, timeout=60) as client:
            if use_published:
                teacher_dir = _install_teacher(published, settings)
                teacher_row = (
                    "teacher R50-FPN128 (published)",
                    None,
                    (published_report or {}).get("eval", {}).get("AP"),
                    teacher_dir / "model.pt",
                )
                print(
                    f"teacher: {teacher_dir} (RetinaNet R50, FPN 128, trained by `mar bench quality`)",
                    flush=True,
                )
                specs = demo_specs.published_student_specs(data_dir, teacher_dir)
                baseline_spec, mar_spec = specs["baseline"], specs["mar"]
            else:
                teacher = client.submit(demo_specs.teacher_spec(data_dir, iters["teacher"], size))
                print(f"teacher job {teacher.id} (RetinaNet R34, FPN 128)", flush=True)
                trained = Follower(client, {teacher.id: "teacher"}).wait(t0)[teacher.id]
                if _failed(trained, "teacher"):
                    return 1
                teacher_dir = settings.job_dir(trained.id)
                teacher_row = ("teacher R34-FPN128", trained, None, teacher_dir / "model.pt")
                baseline_spec = demo_specs.student_spec(data_dir, iters["student"], size)
                mar_spec = demo_specs.mar_student_spec(data_dir, iters["student"], teacher_dir, size)
            baseline_id, mar_id = client.submit(baseline_spec).id, client.submit(mar_spec).id
            print(
                f"baseline student job {baseline_id}, MAR student job {mar_id} (RetinaNet R18, FPN 64)"
                f"{' side by side' if workers > 1 else ', one after the other'}",
                flush=True,
            )
            jobs = Follower(client, {baseline_id: "baseline", mar_id: "MAR"}).wait(t0)
            baseline, mar = jobs[baseline_id], jobs[mar_id]
            rows: list[tuple[str, JobPublic | None, float | None, Path]] = [
                teacher_row,
                ("student R18-FPN64 baseline", baseline, None, settings.job_dir(baseline_id) / "model.pt"),
                ("student R18-FPN64 + MAR", mar, None, settings.job_dir(mar_id) / "model.pt"),
            ]
            print(
                f"\nCOCO AP on the synthetic val split ({params['num_val']} images), "
                f"total {_fmt_seconds(time.monotonic() - t0)}:"
            )
            for label, job, ap, weights in rows:
                if job is not None:
                    ap = job_ap(client, job) if job.status == "succeeded" else None
                ap_text = f"{100 * ap:5.1f}" if ap is not None else "  n/a"
                print(f"  {label:<32} AP {ap_text}   {weights}")
            print(f"download: GET {url}/jobs/<id>/artifacts/model.pt (Authorization: Bearer <key>)")
            teacher_job = teacher_row[1]
            link = compare_url(
                url,
                [baseline_id, mar_id],
                teacher=teacher_job.id if teacher_job else None,
                teacher_ap=teacher_row[2],
            )
            print(
                f"dashboard (served while this runs, then by `mar up --port {url.rsplit(':', 1)[-1]}`): {link}"
            )
            return 1 if _failed(baseline, "baseline") or _failed(mar, "MAR student") else 0


def _install_teacher(published: Path, settings) -> Path:
    """Copy the published teacher into the checkpoint root (job specs may only name files there)."""
    root = settings.checkpoint_root or settings.state_dir / "checkpoints"
    dest = Path(root) / f"bench-teacher-{published.name}"
    if not (dest / "model.pt").is_file():
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(published, tmp)
        tmp.rename(dest)
    return dest
