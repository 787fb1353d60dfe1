#!/usr/bin/env bash
# Download the locked dependencies of both images into wheelhouse/ for air-gapped image builds:
#   wheelhouse/api/     docker/api-requirements.lock    (+ the build backend of pyproject.toml)
#   wheelhouse/worker/  docker/worker-requirements.lock (the torch pair and its CUDA libraries: GBs)
# `pip download --require-hashes`: every file matches the lock. With wheelhouse/<image>/ present,
# the image build installs from it with `--no-index` (docker/pip-install.sh); without, from the index.
# Wheels are for the Python and platform of the image's base: by default CPython 3.11 on x86_64
# Linux (Debian bookworm, the host's and scripts/base_images.sh's); for the pytorch/pytorch images
# (Python 3.12) run   MAR_WHEEL_PYTHON=3.12 scripts/wheelhouse.sh
# A lock entry is downloaded when its marker holds for any patch release of that Python on Linux
# x86_64 (bookworm's 3.11.2 needs async-timeout, a 3.11.7 host does not).
# Usage: scripts/wheelhouse.sh [api|worker]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(api worker)
py="${MAR_WHEEL_PYTHON:-3.11}"
# glibc of the image's base: bookworm has 2.36 (manylinux_2_17 ... manylinux_2_36 wheels run on it).
glibc="${MAR_WHEEL_GLIBC:-36}"
platform=(--python-version "$py" --implementation cp --platform manylinux2014_x86_64 --platform linux_x86_64)
for minor in $(seq 5 "$glibc"); do platform+=(--platform "manylinux_2_${minor}_x86_64"); done

# The lock's entries for Python $py on Linux x86_64, markers dropped (pip download would evaluate
# them for this host's interpreter). pip's vendored `packaging` evaluates them.
for_target() {
  python3 - "$1" "$py" <<'PY'
import sys
from pip._vendor.packaging.markers import Marker
lock, py = sys.argv[1], sys.argv[2]
envs = [{"python_version": py, "python_full_version": f"{py}.{patch}", "sys_platform": "linux",
         "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
         "implementation_name": "cpython", "platform_python_implementation": "CPython"}
        for patch in range(0, 30)]
keep = True
for line in open(lock).read().splitlines():
    if line and not line[0].isspace() and not line.startswith("#"):
        req, _, marker = line.partition(";")
        marker = marker.rstrip(" \\").strip()
        keep = not marker or any(Marker(marker).evaluate(env) for env in envs)
        if keep:
            print(req.rstrip(" \\").strip() + " \\")
    elif line.startswith("    --hash") and keep:
        print(line)
PY
}
# The build backend (setuptools) builds the project itself inside the image, offline too.
backend="$(python3 -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['build-system']['requires']))")"

for target in "${targets[@]}"; do
  lock="docker/${target}-requirements.lock"
  [ -f "$lock" ] || { echo "wheelhouse: no $lock (targets: api, worker)" >&2; exit 2; }
  dest="wheelhouse/${target}"
  mkdir -p "$dest"
  t0=$SECONDS
  python3 -m pip download -q --disable-pip-version-check --require-hashes --no-deps --only-binary=:all: \
    "${platform[@]}" -r <(for_target "$lock") -d "$dest" 2> >(grep -v 'is ignored: it is neither' >&2)
  # shellcheck disable=SC2086
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    "${platform[@]}" $backend -d "$dest" 2> >(grep -v 'is ignored: it is neither' >&2)
  echo "wheelhouse: $dest $(find "$dest" -name '*.whl' | wc -l) wheels, $(du -sh "$dest" | cut -f1), $((SECONDS - t0)) s"
done
