#!/bin/sh
# Entry point of docker/base/postgres.Dockerfile: on an empty $PGDATA, initdb with the role
# POSTGRES_USER (password POSTGRES_PASSWORD, scram-sha-256 over TCP) and create POSTGRES_DB; then
# run postgres in the foreground (SIGINT from `docker stop`: fast shutdown).
set -eu
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile="$(mktemp)"
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  if [ "$db" != postgres ]; then
    createdb -U "$user" -O "$user" "$db"
  fi
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "postgres-entrypoint: initialised $PGDATA (role $user, database $db)"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
