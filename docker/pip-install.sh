#!/bin/sh
# pip installs of the image builds, offline from a wheelhouse when the build was given one:
#   pip-install.sh deps LOCK      the hashed lock file (pip --require-hashes)
#   pip-install.sh project SRC    the project itself, without dependencies (they come from the lock)
# The wheelhouse is the folder of LOCK (the Dockerfiles COPY wheelhouse/<image>/ next to the lock):
# with wheels in it, pip runs with --no-index --find-links; without, it uses the index.
# scripts/wheelhouse.sh fills wheelhouse/<image>/.
set -eu
wheels="${MAR_WHEELS:-/tmp/wheels}"
if ls "$wheels"/*.whl >/dev/null 2>&1; then
  source="wheelhouse $wheels ($(ls "$wheels"/*.whl | wc -l) wheels, no index)"
  set -- "$@" --no-index --find-links "$wheels"
else
  source="the index (no wheelhouse given)"
fi
what="$1"; target="$2"; shift 2
echo "pip-install: $what $target from $source"
case "$what" in
  deps) exec python3 -m pip install --require-hashes --only-binary=:all: -r "$target" "$@" ;;
  project) exec python3 -m pip install --no-deps "$target" "$@" ;;
  *) echo "pip-install: unknown action '$what' (deps LOCK | project SRC)" >&2; exit 2 ;;
esac
