#!/usr/bin/env python3
"""Smoke test of the real stack: images built, `docker-compose up`, jobs through the containers.

    make compose-smoke            (or: sudo python3 scripts/compose_smoke.py)

Not part of `make test`: run it before a change to docker/ or a compose file lands, and put its
output in the change's note. Needs root (it may start dockerd and runs debootstrap), Docker's
engine and client, docker-compose, debootstrap. Python standard library only.

Steps: start dockerd if none answers; make the base images no registry serves
(scripts/base_images.sh); the wheelhouse (scripts/wheelhouse.sh) unless MAR_SMOKE_INDEX=1; build
mar-api and mar-worker; `docker-compose up -d` of the CPU stack (docker/compose.cpu.yml, profile
cpu); wait for health; an API key made inside the api container; a tiny train job and a tiny distill
job (its teacher: the train job) through the published port; model.pt downloaded and its sha256
checked; the worker container killed during a third job, which must resume from its checkpoint on
the restarted worker; `down` then `up` keeps jobs, metrics and artifacts; `down -v`; dockerd stopped
if this script started it. Prints build times, image sizes and job times.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = os.environ.get("MAR_SMOKE_PROJECT", "marsmoke")
PORT = int(os.environ.get("MAR_SMOKE_PORT", "18000"))
BASE = f"http://127.0.0.1:{PORT}"
COMPOSE = ["docker-compose", "-p", PROJECT, "-f", "docker-compose.yml", "-f", "docker/compose.cpu.yml"]
WORKER = "worker-cpu"
DATASET = "shapes"
# The tiny model of tests/integration (RetinaNet-R18, FPN 32, 64 px images).
MODEL = {"arch": "retinanet", "backbone": "resnet18", "fpn_channels": 32, "min_size": 64, "max_size": 64,
         "anchor_scale": 0.5}  # fmt: skip
T0 = time.time()
figures: list[str] = []


def say(msg: str) -> None:
    print(f"[{time.time() - T0:7.1f}s] {msg}", flush=True)


def fail(msg: str) -> None:
    say(f"FAIL: {msg}")
    raise SystemExit(1)


def sh(cmd: list[str], *, env: dict | None = None, check: bool = True, capture: bool = False, **kw):
    out = subprocess.run(cmd, cwd=ROOT, env=env, text=True, capture_output=capture, check=False, **kw)
    if check and out.returncode != 0:
        detail = f"\n{out.stdout[-3000:]}{out.stderr[-3000:]}" if capture else ""
        fail(f"`{' '.join(cmd)}` exited {out.returncode}{detail}")
    return out


# ------------------------------------------------------------------------------------ docker engine
def ensure_dockerd() -> subprocess.Popen | None:
    if sh(["docker", "info"], check=False, capture=True).returncode == 0:
        say("dockerd answers: using it")
        return None
    log = open("/tmp/mar-smoke-dockerd.log", "w")  # noqa: SIM115 (lives as long as dockerd)
    # No iptables and no default bridge on this kind of host: compose's own network carries the
    # traffic, docker-proxy (the userland proxy) publishes the API port.
    proc = subprocess.Popen(["dockerd", "--iptables=false", "--bridge=none"], stdout=log, stderr=log)
    for _ in range(60):
        if sh(["docker", "info"], check=False, capture=True).returncode == 0:
            say(f"started dockerd (pid {proc.pid}, log /tmp/mar-smoke-dockerd.log)")
            return proc
        time.sleep(1)
    fail("dockerd did not answer within 60 s (log: /tmp/mar-smoke-dockerd.log)")
    return None


def image_size(tag: str) -> str:
    out = sh(["docker", "image", "inspect", "-f", "{{.Size}}", tag], capture=True).stdout.strip()
    return f"{int(out) / 1e6:.0f} MB"


# ------------------------------------------------------------------------------------ HTTP client
class Api:
    def __init__(self, key: str) -> None:
        self.key = key

    def call(self, method: str, path: str, body: dict | None = None, raw: bool = False):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(BASE + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.key}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as e:
            fail(f"{method} {path}: HTTP {e.code}: {e.read()[:2000]!r}")
        return payload if raw else json.loads(payload)

    def submit(self, spec: dict) -> str:
        job = self.call("POST", "/jobs", spec)
        say(f"submitted {spec['kind']} job {job['id']} ({spec['name']})")
        return job["id"]

    def wait(self, job_id: str, done, what: str, timeout: float = 900) -> dict:
        end = time.time() + timeout
        while time.time() < end:
            job = self.call("GET", f"/jobs/{job_id}")
            if done(job):
                return job
            if job["status"] in ("failed", "cancelled"):
                fail(f"job {job_id} {job['status']} while waiting for {what}: {job.get('error')}")
            time.sleep(2)
        fail(f"job {job_id}: no {what} within {timeout:.0f} s (last: {job['status']})")
        return {}

    def succeeded(self, job_id: str, timeout: float = 900) -> dict:
        return self.wait(job_id, lambda j: j["status"] == "succeeded", "success", timeout)

    def artifacts(self, job_id: str) -> dict[str, str]:
        return {a["name"]: a["sha256"] for a in self.call("GET", f"/jobs/{job_id}/artifacts")}

    def check_model(self, job_id: str) -> str:
        want = self.artifacts(job_id)["model.pt"]
        data = self.call("GET", f"/jobs/{job_id}/artifacts/model.pt", raw=True)
        got = hashlib.sha256(data).hexdigest()
        if got != want:
            fail(f"job {job_id}: model.pt sha256 {got} != recorded {want}")
        return f"{len(data) / 1e6:.1f} MB, sha256 {got[:16]}... matches"

    def events(self, job_id: str) -> list[dict]:
        return self.call("GET", f"/jobs/{job_id}/events?limit=10000")


def spec(kind: str, name: str, iterations: int, **extra) -> dict:
    return {
        "kind": kind,
        "name": name,
        "dataset": {"path": DATASET},
        "model" if kind == "train" else "student": MODEL,
        "train": {
            "iterations": iterations,
            "batch_size": 2,
            "lr": 0.01,
            "warmup_iters": 1,
            "amp": False,
            "log_every": 1,
            "checkpoint_every": extra.pop("checkpoint_every", iterations),
            "eval_max_images": 4,
        },  # fmt: skip
        "resources": {"device": "cpu"},
        "seed": 3,
        **extra,
    }


def job_seconds(job: dict) -> str:
    from datetime import datetime

    start, end = job.get("started_at"), job.get("finished_at")
    if not (start and end):
        return "?"
    return f"{(datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds():.0f} s"


# ------------------------------------------------------------------------------------ the stack
def wait_healthy(env: dict, services: list[str], timeout: float = 300) -> None:
    end = time.time() + timeout
    while time.time() < end:
        states = {}
        for svc in services:
            cid = sh([*COMPOSE, "ps", "-q", svc], env=env, capture=True).stdout.strip()
            st = "missing"
            if cid:
                st = sh(["docker", "inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{else}}"
                         "{{.State.Status}}{{end}}", cid], capture=True).stdout.strip()  # fmt: skip
            states[svc] = st
        if all(s in ("healthy", "running") for s in states.values()) and states.get("api") == "healthy":
            say(f"healthy: {states}")
            return
        time.sleep(3)
    sh([*COMPOSE, "logs", "--tail", "40"], env=env, check=False)
    fail(f"not healthy within {timeout:.0f} s: {states}")


def api_key(env: dict) -> str:
    out = sh([*COMPOSE, "exec", "-T", "api", "mar", "apikey", "create", "smoke"], env=env, capture=True)
    key = out.stdout.strip().splitlines()[-1]
    say(f"API key created inside the api container ({key[:8]}...)")
    return key


def check_disk(path: str = "/var/lib/docker", need_gb: float = 20) -> None:
    """The worker image is ~6 GB, its build stage holds the 3 GB wheelhouse besides: a full build
    needs ~20 GB (a cached one far less). Refuse early rather than fail at `no space left`."""
    import shutil

    where = path if os.path.exists(path) else "/"
    free = shutil.disk_usage(where).free / 1e9
    if free < need_gb and os.environ.get("MAR_SMOKE_IGNORE_DISK") != "1":
        fail(f"{free:.0f} GB free under {where}, a build may need {need_gb:.0f} GB "
             "(MAR_SMOKE_IGNORE_DISK=1 to try anyway; `docker image prune` frees old builds)")  # fmt: skip


def main() -> int:
    check_disk()
    dockerd = ensure_dockerd()
    env = {**os.environ, "DOCKER_BUILDKIT": "0", "COMPOSE_DOCKER_CLI_BUILD": "0",
           "POSTGRES_PASSWORD": secrets.token_hex(16), "REDIS_PASSWORD": secrets.token_hex(16),
           "COMPOSE_PROFILES": "cpu", "MAR_API_PUBLISH": f"127.0.0.1:{PORT}",
           "PYTHON_IMAGE": "mar-base/python:bookworm", "PYTORCH_IMAGE": "mar-base/python:bookworm",
           "REDIS_IMAGE": "mar-base/redis", "REDIS_VERSION": "bookworm",
           "POSTGRES_IMAGE": "mar-base/postgres", "POSTGRES_VERSION": "bookworm",
           "MAR_LEASE_SECONDS": "20", "MAR_HEARTBEAT_SECONDS": "4", "MAR_WORKER_SHM_SIZE": "1gb",
           "MAR_API_IMAGE": "mar-api:smoke", "MAR_WORKER_IMAGE": "mar-worker:smoke"}  # fmt: skip
    try:
        t = time.time()
        sh(["bash", "scripts/base_images.sh"], env=env)
        figures.append(f"base images ready: {time.time() - t:.0f} s")
        if os.environ.get("MAR_SMOKE_INDEX") != "1":
            t = time.time()
            sh(["bash", "scripts/wheelhouse.sh"], env=env)
            figures.append(f"wheelhouse: {time.time() - t:.0f} s")
        for svc, tag in (("api", "mar-api:smoke"), (WORKER, "mar-worker:smoke")):
            t = time.time()
            sh([*COMPOSE, "build", svc], env=env)
            figures.append(f"build {svc}: {time.time() - t:.0f} s, image {tag}: {image_size(tag)}")
            say(figures[-1])
        torch_in_api = sh(["docker", "run", "--rm", "mar-api:smoke", "python", "-c",
                           "import importlib.util as u; print(bool(u.find_spec('torch')))"],
                          capture=True).stdout.strip()  # fmt: skip
        if torch_in_api != "False":
            fail("the API image has torch")
        figures.append("API image: no torch (checked with find_spec)")
        for tag in ("mar-base/redis:bookworm", "mar-base/postgres:bookworm", "mar-base/python:bookworm"):
            figures.append(f"image {tag}: {image_size(tag)}")

        services = ["redis", "postgres", "api", WORKER, "reaper"]
        t = time.time()
        sh([*COMPOSE, "up", "-d", "--no-build"], env=env)
        wait_healthy(env, services)
        figures.append(f"up to healthy: {time.time() - t:.0f} s")
        api = Api(api_key(env))

        # The dataset, written by the worker itself on the datasets volume (as uid 10001).
        sh([*COMPOSE, "exec", "-T", WORKER, "python", "-c",
            "from mar_core.synth import generate_synthetic as g; g('/srv/mar/datasets/shapes', seed=5,"
            " num_train=16, num_val=8, image_size=64, num_classes=3)"], env=env, capture=True)  # fmt: skip
        say("synthetic dataset written to /srv/mar/datasets/shapes")

        train = api.submit(spec("train", "smoke-train", 4))
        job = api.succeeded(train)
        figures.append(f"train job (4 steps): {job_seconds(job)}; model.pt {api.check_model(train)}")
        say(figures[-1])
        distill = api.submit(
            spec(
                "distill",
                "smoke-distill",
                4,
                teacher={"checkpoint": f"/srv/mar/artifacts/{train}"},
                distill={"method": "mar"},
            )  # fmt: skip
        )
        job = api.succeeded(distill)
        figures.append(f"distill job (4 steps): {job_seconds(job)}; model.pt {api.check_model(distill)}")
        say(figures[-1])

        # Kill the worker container during a job: the job resumes from its checkpoint.
        kill = api.submit(spec("train", "smoke-kill", 12, checkpoint_every=3))
        api.wait(kill, lambda j: (j["progress_step"] or 0) >= 4, "step 4 (after the step-3 checkpoint)")
        sh(["docker", "kill", sh([*COMPOSE, "ps", "-q", WORKER], env=env, capture=True).stdout.strip()])
        killed = time.time()
        say("worker container killed (SIGKILL) at step >= 4")
        sh([*COMPOSE, "up", "-d", "--no-build", WORKER], env=env)
        job = api.succeeded(kill)
        events = api.events(kill)
        resumed = [e for e in events if "resumed" in str(e.get("data", {}).get("message", ""))]
        if job["attempt"] < 2 or not resumed:
            fail(f"job {kill} was not resumed: attempt {job['attempt']}, resume log lines {resumed}")
        report = json.loads(api.call("GET", f"/jobs/{kill}/artifacts/report.json", raw=True))
        if (report.get("resumed_from_step") or 0) < 3:
            fail(f"job {kill} restarted from scratch: report {report}")
        figures.append(
            f"kill -9 of the worker container: job resumed from step {report['resumed_from_step']}, "
            f"attempt {job['attempt']}, done {time.time() - killed:.0f} s after the kill; "
            f"model.pt {api.check_model(kill)}"
        )
        say(figures[-1])
        worker_id = sh([*COMPOSE, "ps", "-q", WORKER], env=env, capture=True).stdout.strip()
        # `init: true` mounts Docker's tini at /usr/sbin/docker-init: the engine's file, not a write.
        init = {"/usr", "/usr/sbin", "/usr/sbin/docker-init"}
        diff = [ln for ln in sh(["docker", "diff", worker_id], capture=True).stdout.splitlines()
                if ln.split(maxsplit=1)[-1] not in init]  # fmt: skip
        if diff:
            fail(f"the worker container wrote outside its volumes: {diff[:20]}")
        uid = sh(["docker", "exec", worker_id, "id", "-u"], capture=True).stdout.strip()
        ro = sh(["docker", "inspect", "-f", "{{.HostConfig.ReadonlyRootfs}}", worker_id], capture=True).stdout
        if uid == "0" or ro.strip() != "true":
            fail(f"worker container: uid {uid}, read-only root filesystem {ro.strip()}")
        figures.append(f"worker container: uid {uid}, read-only root filesystem, `docker diff` empty")

        # down, then up: every job, metric and artifact is still there.
        jobs = [train, distill, kill]
        before = {j: (api.call("GET", f"/jobs/{j}")["status"], api.artifacts(j),
                      api.call("GET", f"/jobs/{j}/metrics")) for j in jobs}  # fmt: skip
        sh([*COMPOSE, "down"], env=env)
        sh([*COMPOSE, "up", "-d", "--no-build"], env=env)
        wait_healthy(env, services)
        after = {j: (api.call("GET", f"/jobs/{j}")["status"], api.artifacts(j),
                     api.call("GET", f"/jobs/{j}/metrics")) for j in jobs}  # fmt: skip
        if before != after:
            fail("jobs, artifacts or metrics changed across `down` + `up`")
        for j in jobs:
            api.check_model(j)
        n_art = sum(len(a) for _, a, _ in after.values())
        figures.append(f"`down` + `up`: the API key, 3 jobs, their metrics and {n_art} artifacts kept")
        say(figures[-1])
        print("\nSMOKE TEST PASSED\n" + "\n".join(f"  {f}" for f in figures), flush=True)
        return 0
    finally:
        sh([*COMPOSE, "down", "-v", "--remove-orphans"], env=env, check=False)
        if dockerd is not None:
            dockerd.terminate()
            dockerd.wait(60)
            say("stopped the dockerd this script started")


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("compose_smoke: run as root (dockerd, debootstrap)", file=sys.stderr)
        sys.exit(2)
    tempfile.tempdir = None
    sys.exit(main())
