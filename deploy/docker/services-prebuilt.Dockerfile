# The two service images from binaries built on the host: what deploy/offline-images.sh uses
# where no Rust image can be pulled. The runtime is services.Dockerfile's, line for line (xtask's
# tests compare the two); only the source of the binaries differs.
#
# Build context: a directory holding the two binaries, built on a Debian bookworm host (they
# link against the host's glibc, which must not be newer than bookworm's 2.36):
#   docker build -f deploy/docker/services-prebuilt.Dockerfile --target api -t authscale/api <dir>

ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUNTIME_IMAGE} AS runtime
# A fixed non-root user; /var/lib/authscale is where the issuer keeps its key (a named volume
# in docker-compose.yml, which takes this directory's owner when docker creates it).
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin authscale \
 && install -d -o authscale -g authscale -m 0700 /var/lib/authscale
USER authscale
# Containers listen on every interface, on one port; logs are one JSON object per line.
ENV LISTEN_ADDR=0.0.0.0:8080 LOG_FORMAT=json
EXPOSE 8080

FROM runtime AS auth-issuer
COPY auth-issuer /usr/local/bin/auth-issuer
ENV KEY_PATH=/var/lib/authscale/issuer-key.pem
ENTRYPOINT ["auth-issuer"]

FROM runtime AS api
COPY api /usr/local/bin/api
ENTRYPOINT ["api"]
