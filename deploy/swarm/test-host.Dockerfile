# A Docker host in a container, for `cargo xtask swarm-test`: several of them on one machine make
# a multi-host swarm (xtask/src/swarm.rs). Debian's own docker.io, so no registry is needed: the
# base is the debootstrapped debian:bookworm-slim of deploy/offline-images.sh. Not for
# production: it runs with most capabilities and no seccomp profile (see swarm.rs).
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      docker.io fuse-overlayfs iptables iproute2 procps openssl \
 && rm -rf /var/lib/apt/lists/*
# The inner engine's images, containers and volumes: an anonymous volume, so the outer
# engine's overlay filesystem is not stacked under the inner one.
VOLUME /var/lib/docker
# A killed host leaves its engine's pid files behind; `docker start` must find none.
ENTRYPOINT ["sh", "-c", "rm -rf /var/run/docker.pid /var/run/docker && exec dockerd --storage-driver=fuse-overlayfs --host=unix:///var/run/docker.sock"]
