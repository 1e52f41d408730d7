# The two service images, built from source: auth-issuer and api (one image for both replica
# modes; API_MODE picks jwt or session).
#
# Build context: the workspace root (.dockerignore leaves out target/, .git/, docs and deploy/).
#   docker build -f deploy/docker/services.Dockerfile --target auth-issuer -t authscale/auth-issuer .
#   docker build -f deploy/docker/services.Dockerfile --target api -t authscale/api .
#
# No registry? deploy/offline-images.sh builds the same runtime stages from binaries compiled
# on the host instead (services-prebuilt.Dockerfile): keep the `runtime` stages of both files
# identical (xtask's tests compare them).
#
# No BuildKit-only syntax (RUN --mount, COPY --chmod): Debian's docker-compose 1.29 builds with
# the classic builder.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# The dependency cache, without cargo-chef: a skeleton of the workspace (every Cargo.toml,
# Cargo.lock and .cargo/ file as is, every .rs file replaced by a stub) is built first, in a layer
# of its own. Its content changes only when a manifest or the lock file does, so an edit to the
# code reuses the compiled dependencies (minutes) and rebuilds only the workspace's crates. It is
# generated, not listed, so a new workspace member needs no change here.
FROM ${RUST_IMAGE} AS planner
WORKDIR /src
COPY . .
RUN find . \( -name Cargo.toml -o -name Cargo.lock -o -path './.cargo/*' -o -name 'rust-toolchain*' \) \
      -type f -exec sh -c 'mkdir -p "/skeleton/${1%/*}" && cp "$1" "/skeleton/$1"' sh {} \; \
 && find . -name '*.rs' -type f | while read -r file; do \
      mkdir -p "/skeleton/${file%/*}"; \
      case "$file" in \
        */main.rs | */build.rs | */src/bin/* | */benches/* | */examples/* | */tests/*) \
          echo 'fn main() {}' ;; \
        *) : ;; \
      esac > "/skeleton/$file"; \
    done

FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY --from=planner /skeleton/ ./
RUN cargo build --release --locked -p auth-issuer -p api
# Then the real code. COPY keeps the files' modification times, which can be older than the
# stubs just built, and cargo would take the stubs' build for up to date: touch the sources.
COPY . .
RUN find . -path ./target -prune -o -name '*.rs' -type f -exec touch {} + \
 && cargo build --release --locked -p auth-issuer -p api

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
COPY --from=builder /src/target/release/auth-issuer /usr/local/bin/auth-issuer
ENV KEY_PATH=/var/lib/authscale/issuer-key.pem
ENTRYPOINT ["auth-issuer"]

FROM runtime AS api
COPY --from=builder /src/target/release/api /usr/local/bin/api
ENTRYPOINT ["api"]
