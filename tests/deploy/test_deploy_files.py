"""Deployment files: docker-compose.yml, docker/*.Dockerfile, .dockerignore, .env.example.

No Docker engine is needed. Two tools are: `docker-compose` (or the `docker compose` plugin) to
validate and render the compose file, and `hadolint` to lint the Dockerfiles; `scripts/ci_tools.sh`
installs both. A missing tool skips its tests, or fails them when CI=true.
Parsing `docker-compose config` (YAML with Compose v1) uses PyYAML when the venv has it, else the
system Python's (`python3-yaml`, a dependency of Debian's docker-compose); Compose v2 prints JSON.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
MULTIHOST_FILE = ROOT / "docker" / "compose.multihost.yml"
CPU_FILE = ROOT / "docker" / "compose.cpu.yml"
API_DOCKERFILE = ROOT / "docker" / "api.Dockerfile"
WORKER_DOCKERFILE = ROOT / "docker" / "worker.Dockerfile"
API_REQUIREMENTS = ROOT / "docker" / "api-requirements.txt"
API_LOCK = ROOT / "docker" / "api-requirements.lock"
WORKER_LOCK = ROOT / "docker" / "worker-requirements.lock"
PIP_INSTALL = ROOT / "docker" / "pip-install.sh"
BASE_DOCKERFILES = sorted((ROOT / "docker" / "base").glob("*.Dockerfile"))
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"

EXPECTED_SERVICES = {
    "redis",
    "postgres",
    "api",
    "worker-gpu0",
    "worker-gpu1",
    "worker-cpu",
    "worker-large0",
    "reaper",
    "prometheus",
}
PROMETHEUS_CONFIG = ROOT / "docker" / "prometheus.yml"
# Services without a health check. Mirrored in docker-compose.yml by a `# healthcheck-exempt: NAME`
# comment that says why; the test checks both directions.
HEALTHCHECK_EXEMPT = {"reaper"}
# pyproject.toml dependencies that the API image leaves out (the worker image has them all).
WORKER_ONLY = {"torch", "torchvision", "pycocotools", "numpy", "safetensors", "tensorboardx"}
# Services running the project, with the shared configuration and files.
MAR_ENV = (
    "DATABASE_URL",
    "BROKER_URL",
    "MAR_STATE_DIR",
    "MAR_DATA_ROOTS",
    "MAR_CHECKPOINT_ROOT",
    "MAR_ARTIFACT_ROOT",
    "MAR_LEASE_SECONDS",
    "MAR_HEARTBEAT_SECONDS",
    "MAR_QUEUE",
)
TIMEOUT = 180


# ---------------------------------------------------------------------------------------- helpers
def _missing(what: str) -> None:
    msg = f"{what} (install with scripts/ci_tools.sh)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true and {msg}")
    pytest.skip(msg)


def _ok(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, check=False, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _compose() -> tuple[list[str], bool]:
    """The compose command and whether it prints JSON (v2) rather than YAML (v1)."""
    exe = shutil.which("docker-compose")
    if exe and _ok([exe, "version"]):
        out = subprocess.run(
            [exe, "version", "--short"], check=False, capture_output=True, text=True, timeout=60
        )
        major = out.stdout.strip().lstrip("v").split(".")[0]
        return [exe], major.isdigit() and int(major) >= 2
    docker = shutil.which("docker")
    if docker and _ok([docker, "compose", "version"]):
        return [docker, "compose"], True
    _missing("neither `docker-compose` nor `docker compose` is available")
    raise AssertionError("unreachable")


def _yaml_to_obj(text: str):
    try:
        import yaml
    except ImportError:
        pass
    else:
        return yaml.safe_load(text)
    for py in ("/usr/bin/python3", shutil.which("python3")):
        if py and _ok([py, "-c", "import yaml"]):
            out = subprocess.run(
                [py, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
                input=text,
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            return json.loads(out.stdout)
    _missing("PyYAML is in neither the venv nor the system python3 (to parse `docker-compose config`)")
    raise AssertionError("unreachable")


def _env_file(tmp_path: Path, extra: str = "", drop: tuple[str, ...] = ()) -> Path:
    lines = [ln for ln in ENV_EXAMPLE.read_text().splitlines() if ln.split("=", 1)[0] not in drop]
    path = tmp_path / "test.env"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def _run_compose(env_file: Path, *args: str, files=(COMPOSE_FILE,), profiles: str = "gpu1,monitoring"):
    cmd, _ = _compose()
    for f in files:
        cmd = [*cmd, "-f", str(f)]
    # A clean environment: the host's DATABASE_URL & co. must not leak into the rendering.
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL") if k in os.environ}
    env["COMPOSE_PROFILES"] = profiles
    return subprocess.run(
        [*cmd, "--env-file", str(env_file), *args],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    """`docker-compose config` of docker-compose.yml with .env.example as .env, as a dict."""
    env_file = _env_file(tmp_path_factory.mktemp("compose"))
    _, is_v2 = _compose()
    out = _run_compose(env_file, "config", *(["--format", "json"] if is_v2 else []))
    assert out.returncode == 0, f"docker-compose config failed:\n{out.stderr}"
    return json.loads(out.stdout) if is_v2 else _yaml_to_obj(out.stdout)


def _duration_s(value) -> float:
    if isinstance(value, (int, float)):  # v2 JSON: nanoseconds
        return value / 1e9
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|ns|m|s)", str(value))
    assert parts, f"not a duration: {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


def _size_bytes(value) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)b?", str(value).strip().lower())
    assert m, f"not a size: {value!r}"
    return int(float(m.group(1)) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[m.group(2)])


def _volumes(svc: dict) -> dict[str, str]:
    """target -> source of a service's mounts (v1 prints strings, v2 mappings)."""
    result = {}
    for v in svc.get("volumes", []):
        if isinstance(v, str):
            src, target = v.split(":")[:2]
        else:
            src, target = v.get("source", ""), v["target"]
        result[target] = src
    return result


def _healthcheck_disabled(hc: dict | None) -> bool:
    if not hc:
        return True
    test = hc.get("test")
    return bool(hc.get("disable")) or test in (["NONE"], "NONE") or not test


def _dockerfile(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    buf = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        instructions.append((word.upper(), rest.strip()))
        buf = ""
    return instructions


def _arg_defaults(instructions) -> dict[str, str]:
    out = {}
    for ins, rest in instructions:
        if ins == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            out[k.strip()] = v.strip().strip('"')
    return out


def _requirement_name(spec: str) -> str:
    return re.split(r"[\s\[<>=!~;]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _lock_pins(path: Path) -> dict[str, set[str]]:
    """name -> pinned versions of a hashed lock file (scripts/lock.sh; a universal lock may pin
    two versions under different markers)."""
    pins: dict[str, set[str]] = {}
    for m in re.finditer(
        r"^([A-Za-z0-9][\w.-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", path.read_text(), re.MULTILINE
    ):
        pins.setdefault(m.group(1).lower().replace("_", "-"), set()).add(m.group(2))
    return pins


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _dockerignored(rel: str) -> bool:
    """Docker's .dockerignore rule: last matching pattern wins; a pattern matching a parent
    directory matches everything below it; `!` re-includes."""
    patterns = []
    for ln in DOCKERIGNORE.read_text().splitlines():
        ln = ln.strip()
        if not ln or ln.startswith("#"):
            continue
        neg = ln.startswith("!")
        pat = ln[1:] if neg else ln
        pat = pat.strip("/")
        rx = ""
        i = 0
        while i < len(pat):
            if pat.startswith("**/", i):
                rx += "(?:.*/)?"
                i += 3
            elif pat.startswith("**", i):
                rx += ".*"
                i += 2
            elif pat[i] == "*":
                rx += "[^/]*"
                i += 1
            elif pat[i] == "?":
                rx += "[^/]"
                i += 1
            elif pat[i] == "[":
                j = pat.index("]", i)
                rx += pat[i : j + 1]
                i = j + 1
            else:
                rx += re.escape(pat[i])
                i += 1
        patterns.append((re.compile(rx + r"\Z"), neg))
    parts = rel.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for rx, neg in patterns:
        if any(rx.match(p) for p in prefixes):
            ignored = not neg
    return ignored


# ---------------------------------------------------------------------------------------- compose
def test_compose_config_is_valid(tmp_path):
    env_file = _env_file(tmp_path)
    for files, profiles in (
        ((COMPOSE_FILE,), ""),
        ((COMPOSE_FILE, MULTIHOST_FILE), "gpu1"),
        ((COMPOSE_FILE, CPU_FILE), "cpu"),
    ):
        out = _run_compose(env_file, "config", "-q", files=files, profiles=profiles)
        assert out.returncode == 0, f"config -q {files} profiles={profiles!r}:\n{out.stderr}"
    # Host paths (an NFS mount) instead of the named volumes.
    env_file = _env_file(tmp_path, "MAR_SHARED_DIR=/mnt/nfs/mar\nMAR_DATASETS_DIR=/mnt/datasets\n")
    out = _run_compose(env_file, "config", "-q")
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("secret", ["POSTGRES_PASSWORD", "REDIS_PASSWORD"])
def test_compose_refuses_to_run_without_secrets(tmp_path, secret):
    out = _run_compose(_env_file(tmp_path, drop=(secret,)), "config", "-q")
    assert out.returncode != 0, f"compose accepted an .env without {secret}"
    assert secret in out.stderr + out.stdout


def test_services(config):
    assert set(config["services"]) == EXPECTED_SERVICES
    assert config["services"]["worker-gpu1"].get("profiles") == ["gpu1"]
    assert config["services"]["prometheus"].get("profiles") == ["monitoring"]
    assert config["services"]["worker-cpu"].get("profiles") == ["cpu"]


def test_each_pool_is_a_service_whose_workers_serve_it(config):
    """Pools as services: every worker names its pool, one of MAR_POOLS (docs/deploy.md, "Pools")."""
    services = config["services"]
    pools = services["api"]["environment"]["MAR_POOLS"].split(",")
    assert pools[0] == "gpu" and "gpu-large" in pools
    for name in ("worker-gpu0", "worker-gpu1", "worker-cpu"):
        assert services[name]["environment"]["MAR_WORKER_POOL"] == "gpu", name
    large = services["worker-large0"]
    assert large["environment"]["MAR_WORKER_POOL"] == "gpu-large"
    assert large.get("profiles") == ["gpu-large"]
    assert large["environment"]["DATABASE_URL"] == services["worker-gpu0"]["environment"]["DATABASE_URL"]


def test_cpu_overlay_runs_the_stack_without_a_gpu(tmp_path):
    """docker/compose.cpu.yml with the `cpu` profile: worker-cpu (no device reservation, otherwise the
    GPU worker's configuration) instead of worker-gpu0."""
    _, is_v2 = _compose()
    out = _run_compose(
        _env_file(tmp_path),
        "config",
        *(["--format", "json"] if is_v2 else []),
        files=(COMPOSE_FILE, CPU_FILE),
    )
    assert out.returncode == 0, out.stderr
    cfg = json.loads(out.stdout) if is_v2 else _yaml_to_obj(out.stdout)
    gpu, cpu = cfg["services"]["worker-gpu0"], cfg["services"]["worker-cpu"]
    assert gpu.get("profiles") == ["gpu"], "worker-gpu0 must not start with the CPU overlay"
    assert "deploy" not in cpu, "worker-cpu reserves a device"
    same = {k: v for k, v in gpu.items() if k not in {"deploy", "profiles", "ulimits"}}
    assert same == {k: v for k, v in cpu.items() if k not in {"profiles", "ulimits"}}
    # A finite memlock: no CUDA pinned memory, and dockerd may run under a finite limit itself.
    memlock = cpu["ulimits"]["memlock"]
    assert memlock not in (-1, "-1") and int(memlock) > 0, memlock
    assert cpu["ulimits"]["stack"] == gpu["ulimits"]["stack"]


def test_prometheus_scrapes_the_api(config):
    prom = config["services"]["prometheus"]
    assert _volumes(prom).get("/etc/prometheus/prometheus.yml") == str(PROMETHEUS_CONFIG)
    assert prom["depends_on"]["api"]["condition"] == "service_healthy"
    scrape = _yaml_to_obj(PROMETHEUS_CONFIG.read_text())["scrape_configs"]
    api = next(job for job in scrape if job["job_name"] == "mar-api")
    assert api["metrics_path"] == "/metrics/prometheus"
    assert api["static_configs"][0]["targets"] == ["api:8000"]  # the compose service and its port


def test_every_service_has_a_healthcheck_or_a_reason(config):
    raw = COMPOSE_FILE.read_text()
    commented = set(re.findall(r"#\s*healthcheck-exempt:\s*([\w-]+)", raw))
    assert commented == HEALTHCHECK_EXEMPT, "docker-compose.yml comments and HEALTHCHECK_EXEMPT differ"
    for name, svc in config["services"].items():
        hc = svc.get("healthcheck")
        if name in HEALTHCHECK_EXEMPT:
            # Explicitly off: the image's HEALTHCHECK (the API's /healthz) would otherwise apply.
            assert _healthcheck_disabled(hc) and hc, f"{name}: exempt, so set `healthcheck: disable: true`"
        else:
            assert not _healthcheck_disabled(hc), f"{name} has no healthcheck"
            assert _duration_s(hc["interval"]) > 0 and int(hc["retries"]) >= 1


def test_workers_reserve_one_gpu_each(config):
    workers = {n: s for n, s in config["services"].items() if n.startswith("worker-gpu")}
    assert "worker-gpu0" in workers
    seen: list[str] = []
    for name, svc in workers.items():
        devices = svc["deploy"]["resources"]["reservations"]["devices"]
        assert len(devices) == 1, name
        dev = devices[0]
        assert dev["driver"] == "nvidia" and "gpu" in dev["capabilities"], name
        assert len(dev["device_ids"]) == 1, f"{name}: one GPU per worker"
        seen += dev["device_ids"]
        cmd = svc["command"]
        assert cmd[:2] == ["mar", "worker"]
        # The health check pings the node named MAR_WORKER_NODENAME: it must be the worker's name.
        assert "--hostname" in cmd, f"{name}: name the Celery node (the health check pings it)"
        assert cmd[cmd.index("--hostname") + 1] == svc["environment"]["MAR_WORKER_NODENAME"], name
        assert svc["build"]["dockerfile"] == "docker/worker.Dockerfile"
        assert Path(svc["build"]["context"]) == ROOT
        grace = _duration_s(svc["stop_grace_period"])
        assert grace >= 120, f"{name}: time to write a checkpoint"
        child_grace = float(svc["environment"].get("MAR_STOP_GRACE_SECONDS", 60))
        assert grace >= child_grace + 20, f"{name}: stop_grace_period must exceed MAR_STOP_GRACE_SECONDS"
        assert _size_bytes(svc["shm_size"]) >= 2**30, f"{name}: shm for DataLoader workers"
        assert svc.get("init") is True
        for dep in ("redis", "postgres", "api"):
            assert svc["depends_on"][dep]["condition"] == "service_healthy", (name, dep)
        assert "mar-worker-healthcheck" in " ".join(svc["healthcheck"]["test"])
        # Non-root image, and nothing but the volumes (and an in-memory /tmp) is writable.
        assert svc.get("read_only") is True and "/tmp" in svc.get("tmpfs", []), name
    assert len(seen) == len(set(seen)), f"two workers share a GPU: {seen}"


def test_redis_persists_and_postgres_has_a_volume(config):
    volumes = set(config.get("volumes", {}))
    redis = config["services"]["redis"]
    cmd = redis["command"] if isinstance(redis["command"], list) else shlex.split(redis["command"])
    assert "--appendonly" in cmd and cmd[cmd.index("--appendonly") + 1] == "yes"
    assert _volumes(redis).get("/data") in volumes, "redis /data on a named volume"
    assert "redis-cli" in " ".join(redis["healthcheck"]["test"])
    pg = config["services"]["postgres"]
    assert _volumes(pg).get("/var/lib/postgresql/data") in volumes
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert pg["environment"]["POSTGRES_PASSWORD"], "postgres password from .env"


def test_api_and_reaper(config):
    api, reaper = config["services"]["api"], config["services"]["reaper"]
    assert api["command"] == ["mar", "api", "--host", "0.0.0.0", "--port", "8000"]
    assert api["build"]["dockerfile"] == "docker/api.Dockerfile"
    assert Path(api["build"]["context"]) == ROOT
    assert any(int(p["target"]) == 8000 for p in api["ports"])
    assert "/healthz" in " ".join(api["healthcheck"]["test"])
    for dep in ("redis", "postgres"):
        assert api["depends_on"][dep]["condition"] == "service_healthy"
    # The reaper runs from the API image (no torch).
    assert reaper["command"] == ["mar", "reaper"]
    assert reaper["image"] == api["image"]
    assert reaper.get("build", api["build"])["dockerfile"] == "docker/api.Dockerfile"


def test_shared_configuration_and_files(config):
    svcs = {n: s for n, s in config["services"].items() if n in {"api", "reaper"} or n.startswith("worker")}
    mounts = {n: _volumes(s) for n, s in svcs.items()}
    first = next(iter(mounts.values()))
    assert all(m == first for m in mounts.values()), f"mounts differ: {mounts}"
    for name, svc in svcs.items():
        env = svc["environment"]
        missing = [k for k in MAR_ENV if not env.get(k)]
        assert not missing, f"{name} lacks {missing}"
        assert env["DATABASE_URL"].startswith("postgresql+psycopg2://")
        assert env["BROKER_URL"].startswith("redis://")
        roots = json.loads(env["MAR_DATA_ROOTS"])
        for path in [env["MAR_STATE_DIR"], env["MAR_CHECKPOINT_ROOT"], env["MAR_ARTIFACT_ROOT"], *roots]:
            assert any(path == t or path.startswith(t.rstrip("/") + "/") for t in first), (
                f"{name}: {path} is not on a shared mount {sorted(first)}"
            )
        for key in MAR_ENV:  # the same values everywhere (MAR_QUEUE may differ per worker)
            if key != "MAR_QUEUE":
                assert env[key] == svcs["api"]["environment"][key], (name, key)


def test_env_example_documents_every_variable():
    text = ENV_EXAMPLE.read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))
    used = set()
    required = set()
    for f in (COMPOSE_FILE, MULTIHOST_FILE):
        # Comments dropped (they mention ${VAR:-x} as syntax); $$ is a literal $.
        src = "\n".join(re.sub(r"(^|\s)#.*", "", ln) for ln in f.read_text().splitlines()).replace("$$", "")
        used |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", src))
        required |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):?\?", src))
    assert not used - documented, f".env.example does not document {sorted(used - documented)}"
    set_lines = set(re.findall(r"^([A-Z][A-Z0-9_]*)=\S", text, re.MULTILINE))
    assert required <= set_lines, f"required but unset in .env.example: {sorted(required - set_lines)}"
    compose_own = {"COMPOSE_PROJECT_NAME", "COMPOSE_PROFILES", "COMPOSE_FILE", "MAR_API_URL", "MAR_API_KEY"}
    assert not documented - used - compose_own, (
        f"documented but unused: {sorted(documented - used - compose_own)}"
    )


# ---------------------------------------------------------------------------------------- images
def test_api_image_has_no_torch():
    instructions = _dockerfile(API_DOCKERFILE)
    # Every pip call goes through docker/pip-install.sh: the API's lock, then the project.
    runs = " ".join(rest for ins, rest in instructions if ins == "RUN")
    assert "pip install" not in runs and "pip3 install" not in runs, "install through docker/pip-install.sh"
    calls = re.findall(r"pip-install\.sh (\w+) (\S+)", runs)
    assert calls == [("deps", "/tmp/wheels/api-requirements.lock"), ("project", "/src")], calls
    script = PIP_INSTALL.read_text()
    project = next(ln for ln in script.splitlines() if ln.strip().startswith("project)"))
    assert "--no-deps" in project, "the project must be installed with --no-deps"
    deps = next(ln for ln in script.splitlines() if ln.strip().startswith("deps)"))
    assert "--require-hashes" in deps
    assert not {"torch", "torchvision"} & set(_lock_pins(API_LOCK)), "the API lock has torch"
    reqs = [
        _requirement_name(ln)
        for ln in API_REQUIREMENTS.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert not {"torch", "torchvision"} & set(reqs)


def test_api_requirements_follow_pyproject():
    proj = _pyproject()
    pins = {_requirement_name(d): d.replace(" ", "") for d in proj["dependencies"]}
    for extra in proj.get("optional-dependencies", {}).get("postgres", []):
        pins[_requirement_name(extra)] = extra.replace(" ", "")
    api = {
        _requirement_name(ln): ln.strip().replace(" ", "")
        for ln in API_REQUIREMENTS.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    }
    unclassified = set(pins) - set(api) - WORKER_ONLY
    assert not unclassified, (
        f"pyproject.toml dependencies {sorted(unclassified)} are in neither docker/api-requirements.txt "
        "(the API/reaper image needs them) nor WORKER_ONLY in tests/deploy/test_deploy_files.py"
    )
    for name, spec in api.items():
        assert name in pins, f"docker/api-requirements.txt has {name}, pyproject.toml does not"
        assert spec == pins[name], f"{name}: docker/api-requirements.txt {spec!r} != pyproject {pins[name]!r}"


def test_worker_image_matches_the_torch_pins():
    deps = {_requirement_name(d): d for d in _pyproject()["dependencies"]}
    torch_pin = deps["torch"].split("==")[1]
    tv_pin = deps["torchvision"].split("==")[1]
    instructions = _dockerfile(WORKER_DOCKERFILE)
    args = _arg_defaults(instructions)
    assert args["TORCH_VERSION"] == torch_pin and args["TORCHVISION_VERSION"] == tv_pin
    assert args["PYTORCH_IMAGE"].startswith(f"pytorch/pytorch:{torch_pin}-cuda")
    assert instructions[0] == ("ARG", f"PYTORCH_IMAGE={args['PYTORCH_IMAGE']}")
    assert ("FROM", "${PYTORCH_IMAGE}") in instructions
    runs = " ".join(rest for ins, rest in instructions if ins == "RUN")
    assert "'${TORCH_VERSION}', '${TORCHVISION_VERSION}'" in runs, "the build checks the torch pair"
    locked = _lock_pins(WORKER_LOCK)
    assert locked["torch"] == {torch_pin} and locked["torchvision"] == {tv_pin}, "worker lock vs pins"
    env = " ".join(rest for ins, rest in instructions if ins == "ENV")
    node = re.search(r"MAR_WORKER_NODENAME=(\S+)", env).group(1)
    cmd = json.loads(next(rest for ins, rest in instructions if ins == "CMD"))
    assert cmd[:2] == ["mar", "worker"] and cmd[cmd.index("--hostname") + 1] == node
    compose_default = re.search(r"\$\{PYTORCH_IMAGE:-([^}]+)\}", COMPOSE_FILE.read_text()).group(1)
    assert compose_default == args["PYTORCH_IMAGE"]
    env_default = re.search(r"^#\s*PYTORCH_IMAGE=(\S+)", ENV_EXAMPLE.read_text(), re.MULTILINE).group(1)
    assert env_default == args["PYTORCH_IMAGE"]


@pytest.mark.parametrize("dockerfile", [API_DOCKERFILE, WORKER_DOCKERFILE], ids=lambda p: p.name)
def test_images_run_as_non_root_with_a_healthcheck(dockerfile):
    instructions = _dockerfile(dockerfile)
    args = _arg_defaults(instructions)
    users = [rest for ins, rest in instructions if ins == "USER"]
    assert users, f"{dockerfile.name}: no USER"
    user = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], users[-1]).split(":")[0]
    assert user not in {"root", "0"}, f"{dockerfile.name} runs as root"
    assert any(ins == "HEALTHCHECK" for ins, _ in instructions), f"{dockerfile.name}: no HEALTHCHECK"
    assert [ins for ins, _ in instructions][-1] == "CMD"
    # COPY sources exist in the build context (the repo root) and are not dockerignored.
    for ins, rest in instructions:
        if ins == "COPY" and "--from=" not in rest:
            *sources, _dest = [w for w in rest.split() if not w.startswith("--")]
            for src in sources:
                if src == ".":
                    continue
                if src.startswith("wheelhouse/"):  # optional (a glob): scripts/wheelhouse.sh makes it
                    assert re.fullmatch(r"wheelhouse/\w+\[\w\]", src), src
                    assert not _dockerignored(src.replace("[", "").replace("]", "") + "/x.whl")
                    continue
                assert (ROOT / src).exists(), f"{dockerfile.name}: COPY {src}: no such file"
                assert not _dockerignored(src), f"{dockerfile.name}: COPY {src} is excluded by .dockerignore"


def test_dockerignore_keeps_the_context_small_and_complete():
    for rel in (
        ".venv/bin/python",
        ".git/HEAD",
        ".mar/mar.db",
        "runs/x/last.pt",
        "state/x",
        "benchmarks/results/r.json",
        "tests/test_x.py",
        "mar_core/__pycache__/a.cpython-311.pyc",
        ".env",
        "demo-output/x",
        "mar_distill.egg-info/PKG-INFO",
        "build/lib/x.py",
        "docs/deploy.md",
    ):
        assert _dockerignored(rel), f"{rel} would be sent to the Docker daemon"
    for rel in (
        "pyproject.toml",
        "README.md",
        "mar_cli/main.py",
        "api/alembic.ini",
        "api/migrations/env.py",
        "worker/__init__.py",
    ):
        assert not _dockerignored(rel), f"{rel} is needed in the images but .dockerignore drops it"
    # Every top-level package pyproject.toml installs.
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for pattern in include.get("include", []):
        for pkg in ROOT.glob(pattern.split(".")[0]):
            if (pkg / "__init__.py").exists():
                assert not _dockerignored(f"{pkg.name}/__init__.py"), f"package {pkg.name} is dockerignored"


def test_scripts_parse_and_are_executable():
    for path, shell in (
        (ROOT / "docker" / "worker-healthcheck.sh", "sh"),
        (ROOT / "scripts" / "ci_tools.sh", "bash"),
        (ROOT / "scripts" / "lock.sh", "bash"),
        (ROOT / "scripts" / "wheelhouse.sh", "bash"),
        (ROOT / "scripts" / "base_images.sh", "bash"),
        (PIP_INSTALL, "sh"),
        (ROOT / "docker" / "base" / "postgres-entrypoint.sh", "sh"),
    ):
        out = subprocess.run([shell, "-n", str(path)], check=False, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert os.access(path, os.X_OK), f"{path} is not executable"


def test_hadolint():
    tools = Path(os.environ.get("MAR_CI_TOOLS", "/opt/mar-ci-tools")) / "bin" / "hadolint"
    exe = shutil.which("hadolint") or (str(tools) if tools.exists() else None)
    if not exe:
        _missing("hadolint is not installed")
    out = subprocess.run(
        [exe, "--no-color", str(API_DOCKERFILE), str(WORKER_DOCKERFILE), *map(str, BASE_DOCKERFILES)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert out.returncode == 0, f"hadolint findings:\n{out.stdout}{out.stderr}"


# ---------------------------------------------------------------------------------------- the API image's promise
_IMPORT_PROBE = r"""
import importlib, importlib.abc, pkgutil, sys
blocked = set(sys.argv[1].split(","))

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"{name} is not installed in the API image", name=name)
        return None

sys.meta_path.insert(0, Block())
from mar_cli.main import build_parser
build_parser()
import api
n = 0
for mod in pkgutil.walk_packages(api.__path__, "api."):
    if not mod.name.startswith("api.migrations"):
        importlib.import_module(mod.name)
        n += 1
# `mar reaper` runs from the API image too.
importlib.import_module("worker.reaper")
print("ok", n)
"""


def _api_image_closure() -> set[str]:
    """Distributions the API image has: docker/api-requirements.txt and their dependencies."""
    from importlib import metadata

    from packaging.requirements import Requirement

    todo = [
        Requirement(ln.strip())
        for ln in API_REQUIREMENTS.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        seen.add(name)
        try:
            requires = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        for spec in requires:
            sub = Requirement(spec)
            envs = [{"extra": e} for e in req.extras] or [{"extra": ""}]
            if sub.marker is None or any(sub.marker.evaluate(env) for env in envs):
                todo.append(sub)
    return {s for s in seen if "[" not in s}


def test_cli_and_api_import_with_only_the_api_image_packages(tmp_path):
    """`mar`, the api package and worker.reaper (the API image runs `mar api` and `mar reaper`)
    import with the API image's packages only: no torch, numpy, pycocotools, PIL, nor anything else
    outside docker/api-requirements.txt."""
    pytest.importorskip("packaging")
    from importlib import metadata

    closure = _api_image_closure()
    own = {"mar-distill"}
    blocked = set()
    for top, dists in metadata.packages_distributions().items():
        names = {d.lower().replace("_", "-") for d in dists}
        if not names & (closure | own) and not top.startswith("_"):
            blocked.add(top)
    assert {"torch", "torchvision", "numpy"} <= blocked
    env = {**os.environ, "MAR_STATE_DIR": str(tmp_path / "state")}
    for k in ("DATABASE_URL", "BROKER_URL"):
        env.pop(k, None)
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE, ",".join(sorted(blocked))],
        check=False,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert out.returncode == 0 and "ok" in out.stdout, (
        "the API image could not start: a module imports a package it does not have "
        f"(import it lazily, or add it to docker/api-requirements.txt):\n{out.stderr[-3000:]}"
    )
