# GPU worker image: `mar worker` (one Celery worker per GPU; training runs in child processes).
#
# Base: the official PyTorch runtime image whose torch is the pinned one. Tag scheme of
# hub.docker.com/r/pytorch/pytorch: <torch>-cuda<major.minor>-cudnn<major>-runtime|devel; the
# 2.14.1-cuda13.0-cudnn9-runtime tag ships torch 2.14.1+cu130 (the CUDA build PyPI's torch 2.14.1
# wheel uses). It is Ubuntu 24.04 with system Python 3.12 and no conda; that Python is PEP 668
# "externally managed", hence PIP_BREAK_SYSTEM_PACKAGES=1 (fine inside an image).
# The torch/torchvision pair is installed explicitly with pyproject.toml's pins, so it matches
# them whatever PYTORCH_IMAGE is (another base only changes the CUDA build); a build-time check
# fails on any other pair.
#
# Build context is the repository root:
#   docker build -f docker/worker.Dockerfile -t mar-worker .
ARG PYTORCH_IMAGE=pytorch/pytorch:2.14.1-cuda13.0-cudnn9-runtime
FROM ${PYTORCH_IMAGE}

# Keep equal to the pins of pyproject.toml (tests/deploy/test_deploy_files.py checks it).
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.2
# Same uid/gid as the API image: both write to the shared /srv/mar volume.
ARG MAR_UID=10001
ARG MAR_GID=10001

ENV PIP_BREAK_SYSTEM_PACKAGES=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_CONSTRAINT=/etc/mar/constraints.txt \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MAR_STATE_DIR=/srv/mar/state \
    MAR_DATA_ROOTS=/srv/mar/datasets \
    MAR_CHECKPOINT_ROOT=/srv/mar/checkpoints \
    MAR_ARTIFACT_ROOT=/srv/mar/artifacts \
    MAR_QUEUE=mar-gpu \
    MAR_WORKER_NODENAME=mar@%h \
    TORCH_HOME=/srv/mar/cache/torch

# 1) The torch pair, pinned for every later pip call too (PIP_CONSTRAINT). A no-op when the base
#    image already has it.
RUN mkdir -p /etc/mar \
 && printf 'torch==%s\ntorchvision==%s\n' "${TORCH_VERSION}" "${TORCHVISION_VERSION}" > /etc/mar/constraints.txt \
 && python3 -m pip install "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" \
 && python3 -c "import sys, torch, torchvision; got = (torch.__version__.split('+')[0], torchvision.__version__.split('+')[0]); sys.exit(0 if got == ('${TORCH_VERSION}', '${TORCHVISION_VERSION}') else f'torch/torchvision {got} != pins')"

# 2) The other dependencies (with the `export` extra: a job's "export": ["onnx"] runs here, and the
#    `tracking` extra: MLflow logging), read from pyproject.toml alone: rebuilt when it changes, not
#    on code edits.
WORKDIR /opt/mar
COPY pyproject.toml /opt/mar/pyproject.toml
RUN python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies']['postgres'] + p['optional-dependencies']['export'] + p['optional-dependencies']['tracking']))" > /etc/mar/requirements.txt \
 && python3 -m pip install -r /etc/mar/requirements.txt

# 3) The project itself.
COPY . /opt/mar/src
RUN python3 -m pip install --no-deps /opt/mar/src \
 && rm -rf /opt/mar/src \
 && mar --help > /dev/null

COPY docker/worker-healthcheck.sh /usr/local/bin/mar-worker-healthcheck
RUN chmod 0755 /usr/local/bin/mar-worker-healthcheck \
 && groupadd --system --gid "${MAR_GID}" mar \
 && useradd --system --uid "${MAR_UID}" --gid mar --create-home --home-dir /home/mar --shell /usr/sbin/nologin mar \
 && mkdir -p /srv/mar/state /srv/mar/datasets /srv/mar/checkpoints /srv/mar/artifacts /srv/mar/cache/torch \
 && chown -R mar:mar /srv/mar

USER ${MAR_UID}:${MAR_GID}
WORKDIR /home/mar
# `celery inspect ping` to this container's node only (MAR_WORKER_NODENAME = the --hostname below).
HEALTHCHECK --interval=60s --timeout=30s --start-period=120s --retries=3 \
  CMD ["/usr/local/bin/mar-worker-healthcheck"]
# SIGTERM (docker stop) = Celery warm shutdown: the job's child process gets SIGTERM, checkpoints and
# exits within MAR_STOP_GRACE_SECONDS; docker's stop timeout must be longer (compose stop_grace_period).
STOPSIGNAL SIGTERM
CMD ["mar", "worker", "--hostname", "mar@%h"]
