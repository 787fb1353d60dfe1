# Redis from Debian's package, for hosts that cannot pull redis:7.4 (scripts/base_images.sh builds
# it FROM the debootstrapped services base). Same contract as the official image for
# docker-compose.yml: `redis-server ARGS` as the command, data in /data, redis-cli on PATH.
ARG BASE_IMAGE=mar-base/services:bookworm
FROM ${BASE_IMAGE}
RUN mkdir -p /data && chown redis:redis /data
WORKDIR /data
# Debian's own system user (its uid depends on the package install order).
# hadolint ignore=DL3066
USER redis
EXPOSE 6379
CMD ["redis-server"]
