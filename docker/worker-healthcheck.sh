#!/bin/sh
# Health check of a GPU worker container: ping this container's own Celery node, and only it
# (`celery inspect ping --destination`), over the broker the worker uses. Exit 0 = the node answered.
#
# The node is MAR_WORKER_NODENAME, which must equal the `--hostname` given to `mar worker` (the
# image and docker-compose.yml pass `--hostname mar@%h`; `%h` is replaced by the hostname, as Celery
# does; the container's hostname makes it unique). `mar worker` uses the threads pool, so its main
# thread answers the ping also while a job trains.
set -eu
# The hostname as Celery sees it for %h (socket.gethostname(): the container's hostname).
host="$(python3 -c 'import socket; print(socket.gethostname())')"
node="${MAR_WORKER_NODENAME:-mar@%h}"
node="$(printf '%s' "$node" | sed "s/%h/$host/g")"
# The broker URL goes through the environment, not argv, so its password stays out of `ps`.
CELERY_BROKER_URL="${BROKER_URL:?BROKER_URL is not set}" exec python3 -m celery inspect ping \
  --destination "$node" --timeout "${MAR_HEALTHCHECK_TIMEOUT:-10}"
