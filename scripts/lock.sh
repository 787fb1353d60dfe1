#!/usr/bin/env bash
# Regenerate the hashed lock files of the two images (uv pip compile --generate-hashes):
#   docker/api-requirements.lock     from docker/api-requirements.txt (the API image: no torch)
#   docker/worker-requirements.lock  from pyproject.toml + extras postgres, export, tracking (the worker:
#                                    the torch pair and its CUDA libraries included)
# Universal locks (markers for every platform and Python >= 3.11): one file serves the Debian base
# (Python 3.11) and the pytorch/pytorch images (Python 3.12). Run after any dependency change in
# pyproject.toml or docker/api-requirements.txt; tests/deploy/test_lock_files.py fails until then.
# uv comes from PATH, or is installed into $MAR_CI_TOOLS (like scripts/ci_tools.sh's hadolint).
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION="${UV_VERSION:-0.13.9}"
TOOLS_DIR="${MAR_CI_TOOLS:-/opt/mar-ci-tools}"
INDEX="${MAR_LOCK_INDEX:-https://pypi.org/simple}"

if command -v uv >/dev/null 2>&1; then UV=uv
else
  if [ ! -x "${TOOLS_DIR}/bin/uv" ]; then
    python3 -m venv "${TOOLS_DIR}"
    "${TOOLS_DIR}/bin/python" -m pip install -q --disable-pip-version-check "uv==${UV_VERSION}"
  fi
  UV="${TOOLS_DIR}/bin/uv"
fi

compile() {
  local out="$1"; shift
  "$UV" pip compile --quiet --universal --python-version 3.11 --generate-hashes --no-header \
    --index-url "$INDEX" "$@" -o "$out"
  echo "lock: $out ($(grep -c '^[a-z]' "$out") packages)"
}

compile docker/api-requirements.lock docker/api-requirements.txt
compile docker/worker-requirements.lock pyproject.toml --extra postgres --extra export --extra tracking
