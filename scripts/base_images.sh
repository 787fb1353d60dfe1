#!/usr/bin/env bash
# Base images for hosts that cannot pull from an image registry, made from Debian's packages:
#   $MAR_PYTHON_BASE   (default mar-base/python:bookworm)    debootstrap: python3, venv, pip
#   $MAR_SERVICES_BASE (default mar-base/services:bookworm)  debootstrap: redis-server, postgresql
#   $REDIS_IMAGE:$REDIS_VERSION       (default mar-base/redis:bookworm)     docker/base/redis.Dockerfile
#   $POSTGRES_IMAGE:$POSTGRES_VERSION (default mar-base/postgres:bookworm)  docker/base/postgres.Dockerfile
# debootstrap -> `docker import` (needs root and Debian's mirror); an image that exists is kept
# (MAR_BASE_REBUILD=1 remakes them). The Python base serves as PYTHON_IMAGE (api) and
# PYTORCH_IMAGE (worker: the build installs the torch pair from the wheelhouse or the index).
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE="${MAR_DEBIAN_SUITE:-bookworm}"
MIRROR="${MAR_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PYTHON_BASE="${MAR_PYTHON_BASE:-mar-base/python:${SUITE}}"
SERVICES_BASE="${MAR_SERVICES_BASE:-mar-base/services:${SUITE}}"
REDIS_TAG="${REDIS_IMAGE:-mar-base/redis}:${REDIS_VERSION:-${SUITE}}"
POSTGRES_TAG="${POSTGRES_IMAGE:-mar-base/postgres}:${POSTGRES_VERSION:-${SUITE}}"
export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}"

log() { echo "base_images: $*"; }
have() { [ "${MAR_BASE_REBUILD:-0}" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

# debootstrap a minimal Debian with the given packages and import it as an image.
rootfs_image() {
  local tag="$1" packages="$2" dir
  if have "$tag"; then log "$tag present"; return; fi
  command -v debootstrap >/dev/null || { log "debootstrap missing: apt-get install -y debootstrap"; exit 1; }
  dir="$(mktemp -d /tmp/mar-rootfs.XXXXXX)"
  log "debootstrap $SUITE ($packages) -> $tag"
  local t0=$SECONDS
  debootstrap --variant=minbase --include="$packages" "$SUITE" "$dir" "$MIRROR" >"$dir.log" 2>&1 \
    || { tail -20 "$dir.log"; log "debootstrap failed (log: $dir.log)"; exit 1; }
  # Smaller image: no apt lists, caches, docs.
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb \
    "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/locale/*
  tar -C "$dir" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$tag" >/dev/null
  rm -rf "$dir" "$dir.log"
  log "$tag made in $((SECONDS - t0)) s"
}

service_image() {
  local tag="$1" dockerfile="$2"
  if have "$tag"; then log "$tag present"; return; fi
  docker build -q -f "$dockerfile" --build-arg "BASE_IMAGE=$SERVICES_BASE" -t "$tag" docker/base >/dev/null
  log "$tag built"
}

rootfs_image "$PYTHON_BASE" "python3,python3-venv,python3-pip,ca-certificates"
rootfs_image "$SERVICES_BASE" "redis-server,postgresql,ca-certificates"
service_image "$REDIS_TAG" docker/base/redis.Dockerfile
service_image "$POSTGRES_TAG" docker/base/postgres.Dockerfile
