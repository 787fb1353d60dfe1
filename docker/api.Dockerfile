# API image: `mar api` (FastAPI), `mar db upgrade` (the one-shot `migrate` service) and `mar reaper`.
# No torch here: the API never imports it. Dependencies come from docker/api-requirements.lock
# (hashed; scripts/lock.sh makes it from docker/api-requirements.txt) and the project is installed
# with --no-deps, so its torch/torchvision pins are not pulled in; the build fails if torch shows up
# anyway, or if the `mar` CLI cannot start without it.
#
# Build context is the repository root:
#   docker build -f docker/api.Dockerfile -t mar-api .
# Air-gapped: `scripts/wheelhouse.sh api` first; the build then installs from wheelhouse/api/ only.
# Another base (a Debian image made without a registry, scripts/base_images.sh):
#   --build-arg PYTHON_IMAGE=mar-base/python:bookworm   (any Debian/Ubuntu image with python3 + venv)
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- build: a venv in /opt/venv
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
# Dependencies first: this layer is rebuilt only when the lock (or the wheelhouse) changes, not on
# every code edit. `wheelhouse/ap[i]` matches nothing when there is no wheelhouse: the index is used.
COPY docker/pip-install.sh docker/api-requirements.lock wheelhouse/ap[i] /tmp/wheels/
RUN sh /tmp/wheels/pip-install.sh deps /tmp/wheels/api-requirements.lock
# Then the project, without its dependencies (they include torch and torchvision).
COPY . /src
RUN sh /tmp/wheels/pip-install.sh project /src \
 && python -c "import importlib.util as u, sys; bad = [m for m in ('torch', 'torchvision') if u.find_spec(m)]; sys.exit(f'API image must not contain {bad}' if bad else 0)" \
 && mar --help > /dev/null

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE}
# Same uid/gid as the worker image: both write to the shared /srv/mar volume.
ARG MAR_UID=10001
ARG MAR_GID=10001
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MAR_STATE_DIR=/srv/mar/state \
    MAR_DATA_ROOTS=/srv/mar/datasets \
    MAR_CHECKPOINT_ROOT=/srv/mar/checkpoints \
    MAR_ARTIFACT_ROOT=/srv/mar/artifacts
RUN groupadd --system --gid "${MAR_GID}" mar \
 && useradd --system --uid "${MAR_UID}" --gid mar --create-home --home-dir /home/mar --shell /usr/sbin/nologin mar \
 && mkdir -p /srv/mar/state /srv/mar/datasets /srv/mar/checkpoints /srv/mar/artifacts /srv/mar/cache \
 && chown -R mar:mar /srv/mar
COPY --from=build /opt/venv /opt/venv
USER ${MAR_UID}:${MAR_GID}
WORKDIR /home/mar
EXPOSE 8000
# No curl in the slim image: the standard library does the probe (non-2xx raises -> exit 1).
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=5).status == 200 else 1)"]
CMD ["mar", "api", "--host", "0.0.0.0", "--port", "8000"]
