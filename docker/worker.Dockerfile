# GPU worker image: `mar worker` (one Celery worker per GPU; training runs in child processes).
#
# Base: the official PyTorch runtime image whose torch is the pinned one. Tag scheme of
# hub.docker.com/r/pytorch/pytorch: <torch>-cuda<major.minor>-cudnn<major>-runtime|devel; the
# 2.14.1-cuda13.0-cudnn9-runtime tag ships torch 2.14.1+cu130 (the CUDA build PyPI's torch 2.14.1
# wheel uses). It is Ubuntu 24.04 with system Python 3.12 and no conda.
# Any Debian/Ubuntu image with python3 + venv serves too (a Debian image made without a registry,
# scripts/base_images.sh: --build-arg PYTORCH_IMAGE=mar-base/python:bookworm): the torch pair comes
# from docker/worker-requirements.lock then.
#
# Everything is installed into /opt/venv (with the base's site-packages visible, so a torch the base
# already has is reused), in a build stage: a wheelhouse copied in never reaches the final image.
# Dependencies come from docker/worker-requirements.lock (hashed; scripts/lock.sh makes it from
# pyproject.toml), offline from wheelhouse/worker/ when scripts/wheelhouse.sh made one, else from the
# index. A build-time check fails on any torch/torchvision pair but the pins.
#
# Build context is the repository root:
#   docker build -f docker/worker.Dockerfile -t mar-worker .
ARG PYTORCH_IMAGE=pytorch/pytorch:2.14.1-cuda13.0-cudnn9-runtime

# ---------------------------------------------------------------- build: a venv in /opt/venv
FROM ${PYTORCH_IMAGE} AS build
# Keep equal to the pins of pyproject.toml (tests/deploy/test_deploy_files.py checks it).
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.2
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
RUN python3 -m venv --system-site-packages /opt/venv
# The dependencies (with the `export` extra: a job's "export": ["onnx"] runs here, and the
# `tracking` extra: MLflow logging): rebuilt when the lock changes, not on code edits.
# `wheelhouse/worke[r]` matches nothing when there is no wheelhouse: the index is used.
COPY docker/pip-install.sh docker/worker-requirements.lock wheelhouse/worke[r] /tmp/wheels/
RUN sh /tmp/wheels/pip-install.sh deps /tmp/wheels/worker-requirements.lock \
 && python3 -c "import sys, torch, torchvision; got = (torch.__version__.split('+')[0], torchvision.__version__.split('+')[0]); sys.exit(0 if got == ('${TORCH_VERSION}', '${TORCHVISION_VERSION}') else f'torch/torchvision {got} != pins')"
# The project itself.
COPY . /src
RUN sh /tmp/wheels/pip-install.sh project /src \
 && mar --help > /dev/null

# ---------------------------------------------------------------- runtime
FROM ${PYTORCH_IMAGE}
# Same uid/gid as the API image: both write to the shared /srv/mar volume.
ARG MAR_UID=10001
ARG MAR_GID=10001
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MAR_STATE_DIR=/srv/mar/state \
    MAR_DATA_ROOTS=/srv/mar/datasets \
    MAR_CHECKPOINT_ROOT=/srv/mar/checkpoints \
    MAR_ARTIFACT_ROOT=/srv/mar/artifacts \
    MAR_QUEUE=mar-gpu \
    MAR_WORKER_NODENAME=mar@%h \
    TORCH_HOME=/srv/mar/cache/torch
COPY --from=build /opt/venv /opt/venv
COPY docker/worker-healthcheck.sh /usr/local/bin/mar-worker-healthcheck
RUN chmod 0755 /usr/local/bin/mar-worker-healthcheck \
 && groupadd --system --gid "${MAR_GID}" mar \
 && useradd --system --uid "${MAR_UID}" --gid mar --create-home --home-dir /home/mar --shell /usr/sbin/nologin mar \
 && mkdir -p /srv/mar/state /srv/mar/datasets /srv/mar/checkpoints /srv/mar/artifacts /srv/mar/cache/torch \
 && chown -R mar:mar /srv/mar

# Non-root; docker-compose.yml also makes the root filesystem read-only (volumes and a /tmp tmpfs
# are the only writable places).
USER ${MAR_UID}:${MAR_GID}
WORKDIR /home/mar
# `celery inspect ping` to this container's node only (MAR_WORKER_NODENAME = the --hostname below).
HEALTHCHECK --interval=60s --timeout=30s --start-period=120s --retries=3 \
  CMD ["/usr/local/bin/mar-worker-healthcheck"]
# SIGTERM (docker stop) = Celery warm shutdown: the job's child process gets SIGTERM, checkpoints and
# exits within MAR_STOP_GRACE_SECONDS; docker's stop timeout must be longer (compose stop_grace_period).
STOPSIGNAL SIGTERM
CMD ["mar", "worker", "--hostname", "mar@%h"]
