# Redis from Debian bookworm, for machines that cannot pull `redis:7-bookworm` (the image
# docker-compose.yml names). deploy/offline-images.sh builds it as authscale/redis:bookworm and
# deploy/docker-compose.offline.yml points the redis service at it. Debian's redis-server is
# 7.0, the same major version.
#
# How it runs (ACL users, the append-only file in /data) comes from docker-compose.yml and
# deploy/docker/redis-entrypoint.sh, mounted into either image, so both run the same way. /data
# is where the official image keeps its data too; a named volume mounted there takes its owner.

ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && install -d -o redis -g redis -m 0750 /data
USER redis
WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "--dir", "/data"]
