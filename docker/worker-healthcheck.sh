#!/bin/sh
# Health check of a GPU worker container: ping this container's own Celery node, and only it
# (`celery inspect ping --destination`), over the broker the worker uses. Exit 0 = the node answered.
#
# The node name defaults to Celery's default, celery@<hostname>; set MAR_WORKER_NODENAME when
# `mar worker` names its node otherwise (`%h` is replaced by the hostname, as Celery does).
# The ping is answered by the worker's main process, so a worker busy training still answers, as long
# as the task runs in a pool child (prefork/threads), not in the main process (`--pool solo`).
set -eu
# The hostname as Celery sees it for %h (socket.gethostname(): the container's hostname).
host="$(python3 -c 'import socket; print(socket.gethostname())')"
node="${MAR_WORKER_NODENAME:-celery@%h}"
node="$(printf '%s' "$node" | sed "s/%h/$host/g")"
# The broker URL goes through the environment, not argv, so its password stays out of `ps`.
CELERY_BROKER_URL="${BROKER_URL:?BROKER_URL is not set}" exec python3 -m celery inspect ping \
  --destination "$node" --timeout "${MAR_HEALTHCHECK_TIMEOUT:-10}"
