# PostgreSQL from Debian's package, for hosts that cannot pull postgres:17 (scripts/base_images.sh
# builds it FROM the debootstrapped services base). Same contract as the official image for
# docker-compose.yml: POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB create the role and database
# on the first start of an empty /var/lib/postgresql/data; pg_isready on PATH.
ARG BASE_IMAGE=mar-base/services:bookworm
FROM ${BASE_IMAGE}
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
# The package's own cluster (/var/lib/postgresql/15/main) is not used.
RUN chmod 0755 /usr/local/bin/postgres-entrypoint \
 && for bin in /usr/lib/postgresql/*/bin; do ln -sfn "$bin" /usr/lib/postgresql/bin; done \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 0700 /var/lib/postgresql/data
ENV PATH=/usr/lib/postgresql/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
# Debian's own system user (its uid depends on the package install order).
# hadolint ignore=DL3066
USER postgres
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]
