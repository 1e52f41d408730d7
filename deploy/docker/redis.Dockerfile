# Redis from Debian bookworm, for machines that cannot pull `redis:7-bookworm` (the image
# docker-compose.yml names). deploy/offline-images.sh builds it as authscale/redis:bookworm and
# deploy/docker-compose.offline.yml points the redis service at it. Debian's redis-server is
# 7.0, the same major version.
#
# The command line (no persistence, protected mode off: only the compose network reaches it)
# comes from docker-compose.yml, so both images run the same way.

ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/*
USER redis
WORKDIR /var/lib/redis
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
