#!/usr/bin/env bash
# Builds every image docker-compose.yml needs without a container registry.
#
#   deploy/offline-images.sh
#   docker compose -f docker-compose.yml -f deploy/docker-compose.offline.yml up -d --no-build
#
# What it needs instead of a registry: a Debian bookworm host (or one with the same or an older
# glibc) with a Rust toolchain, root (for debootstrap), and a Debian package mirror (the one in
# /etc/apt/sources.list*, or AUTHSCALE_DEBIAN_MIRROR), reachable from the host and from build
# containers. Steps:
#
# 1. The base image, debian:bookworm-slim, the name every Dockerfile here starts FROM: a minbase
#    debootstrap of bookworm, trimmed like the official slim image and `docker import`ed. The
#    root filesystem is kept as a tarball in the cache dir, so it is made once per machine
#    (about a minute and a half), and nothing is done at all while the image exists.
# 2. auth-issuer and api: `cargo build --release` on the host (no Rust image needed), then
#    deploy/docker/services-prebuilt.Dockerfile, whose runtime stage is services.Dockerfile's.
# 3. nginx: deploy/docker/nginx.Dockerfile, the same file as with a registry (apt-get inside the
#    build container, from the mirror).
# 4. Redis: deploy/docker/redis.Dockerfile (Debian's redis-server), named authscale/redis:bookworm
#    for deploy/docker-compose.offline.yml (the redis and redis-init services). Its entrypoint,
#    deploy/docker/redis-entrypoint.sh, is mounted at run time, not built in: like the official
#    image, this one needs no rebuild when the ACL rules change.
# 5. Prometheus and the nginx exporter (the compose profile `observe`): the two targets of
#    deploy/docker/prometheus.Dockerfile, Debian's prometheus and prometheus-nginx-exporter.
#    Their configuration (deploy/prometheus/) is mounted at run time too.
#
# Environment:
#   AUTHSCALE_DOCKER_CACHE            cache dir (default: <workspace>/target/docker); not committed
#   AUTHSCALE_DEBIAN_MIRROR           Debian mirror URL (default: from apt's sources)
#   AUTHSCALE_DEBIAN_SECURITY_MIRROR  Debian security mirror URL (default: from apt's sources)
#   AUTHSCALE_REBUILD_BASE=1          debootstrap again even if the image or the tarball exists
#
# The image names must match docker-compose.yml and deploy/docker-compose.offline.yml.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${AUTHSCALE_DOCKER_CACHE:-$ROOT/target/docker}
BASE_IMAGE=debian:bookworm-slim
ISSUER_IMAGE=authscale/auth-issuer:latest
API_IMAGE=authscale/api:latest
NGINX_IMAGE=authscale/nginx:latest
REDIS_IMAGE=authscale/redis:bookworm
PROMETHEUS_IMAGE=authscale/prometheus:latest
NGINX_EXPORTER_IMAGE=authscale/nginx-exporter:latest
ROOTFS_TAR=$CACHE/debian-bookworm-minbase.tar
# The classic builder uses a local FROM image as it is and never asks a registry about it.
# (Override with DOCKER_BUILDKIT=1 where buildx is installed and known to behave offline.)
export DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0}

log() { printf 'offline-images: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Runs "$@" and logs how long it took.
timed() {
    local what=$1 start=$SECONDS
    shift
    "$@"
    log "$what: $((SECONDS - start)) s"
}

# The first URI in apt's sources (one-line and deb822 formats) matching the pattern.
apt_uri() {
    local pattern=$1
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
        2>/dev/null |
        awk '
            /^[ \t]*#/ { next }
            $1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/ && $i ~ /:\/\//) { print $i; break } }
            $1 == "URIs:" { for (i = 2; i <= NF; i++) print $i }
        ' | grep -E "$pattern" | head -n 1 || true
}

debian_mirror() {
    local uri=${AUTHSCALE_DEBIAN_MIRROR:-$(apt_uri '/debian/?$')}
    echo "${uri:-http://deb.debian.org/debian}"
}

security_mirror() {
    local uri=${AUTHSCALE_DEBIAN_SECURITY_MIRROR:-$(apt_uri '/debian-security/?$')}
    echo "${uri:-http://deb.debian.org/debian-security}"
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "$1 needs root (run this script with sudo)"
}

ensure_debootstrap() {
    command -v debootstrap >/dev/null 2>&1 && return
    need_root "installing debootstrap"
    command -v apt-get >/dev/null 2>&1 || die "debootstrap is missing and there is no apt-get to install it"
    log "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}

# A minbase bookworm root filesystem, trimmed like the official slim image, as a tarball.
make_rootfs() {
    local mirror security dir
    mirror=$(debian_mirror)
    security=$(security_mirror)
    need_root "debootstrap"
    ensure_debootstrap
    mkdir -p "$CACHE"
    dir=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    # shellcheck disable=SC2064 # expand now: the trap must remove this directory
    trap "rm -rf '$dir'" EXIT
    log "debootstrap bookworm (minbase) from $mirror into $dir"
    local start=$SECONDS
    debootstrap --variant=minbase --components=main bookworm "$dir" "$mirror" \
        >"$CACHE/debootstrap.log" 2>&1 ||
        die "debootstrap failed; see $CACHE/debootstrap.log"
    log "debootstrap: $((SECONDS - start)) s"

    # apt sources as in the official image: the release, its updates, and security updates.
    rm -f "$dir/etc/apt/sources.list"
    cat >"$dir/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # What makes the official image slim, and keeps later `apt-get install`s slim too: no
    # documentation, manual pages or translations; no package cache left behind.
    cat >"$dir/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    cat >"$dir/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' >"$dir/etc/apt/apt.conf.d/docker-no-languages"
    # No init system in a container: packages must not try to start their services.
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
    chmod 0755 "$dir/usr/sbin/policy-rc.d"
    find "$dir/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$dir/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$dir"/usr/share/{man,groff,info,lintian,linda}/* "$dir"/var/cache/apt/archives/*.deb \
        "$dir"/var/cache/apt/*.bin "$dir"/var/lib/apt/lists/* "$dir"/var/log/*.log \
        "$dir"/var/cache/debconf/*-old "$dir"/tmp/* "$dir"/etc/hostname
    find "$dir/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    # Docker provides these at run time.
    : >"$dir/etc/resolv.conf"
    : >"$dir/etc/machine-id"

    tar --numeric-owner -C "$dir" -cf "$ROOTFS_TAR.partial" .
    mv "$ROOTFS_TAR.partial" "$ROOTFS_TAR"
    rm -rf "$dir"
    trap - EXIT
    log "root filesystem: $ROOTFS_TAR ($(du -h "$ROOTFS_TAR" | cut -f1))"
}

base_image() {
    if [ "${AUTHSCALE_REBUILD_BASE:-0}" = 1 ]; then
        rm -f "$ROOTFS_TAR"
    elif docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "$BASE_IMAGE exists; using it"
        return
    fi
    [ -f "$ROOTFS_TAR" ] || make_rootfs
    log "importing $ROOTFS_TAR as $BASE_IMAGE"
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        --message "authscale: debootstrap --variant=minbase bookworm (deploy/offline-images.sh)" \
        "$ROOTFS_TAR" "$BASE_IMAGE" >/dev/null
}

# `docker build -t TAG ARGS...`, its output in $CACHE/build-<name>.log (shown when the build
# fails). The image TAG named before, if this build replaced it, is removed: reruns do not pile
# up untagged images.
build() {
    local name=$1 tag=$2 logfile old new
    shift 2
    logfile=$CACHE/build-$name.log
    mkdir -p "$CACHE"
    old=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
    if ! docker build -t "$tag" "$@" >"$logfile" 2>&1; then
        tail -n 40 "$logfile" >&2
        die "building $name failed; the whole output is in $logfile"
    fi
    new=$(docker image inspect --format '{{.Id}}' "$tag")
    if [ -n "$old" ] && [ "$old" != "$new" ]; then
        # Fails, harmlessly, when the old image still has another name or a container uses it.
        docker image rm "$old" >/dev/null 2>&1 || true
    fi
}

# auth-issuer and api, built on the host, copied into a small build context of their own.
service_images() {
    local target_dir context
    # The same build, argument for argument, as `cargo xtask up` and the load test (Binaries::build
    # in crates/stack), so after either of them this compiles nothing. Not --locked: a working
    # tree may have moved on.
    (cd "$ROOT" && cargo build -p auth-issuer -p api --bins --release)
    target_dir=$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
        grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
    [ -n "$target_dir" ] || die "cannot find cargo's target directory"
    context=$CACHE/services-context
    rm -rf "$context"
    mkdir -p "$context"
    cp "$target_dir/release/auth-issuer" "$target_dir/release/api" "$context/"
    build auth-issuer "$ISSUER_IMAGE" -f "$ROOT/deploy/docker/services-prebuilt.Dockerfile" \
        --target auth-issuer "$context"
    build api "$API_IMAGE" -f "$ROOT/deploy/docker/services-prebuilt.Dockerfile" \
        --target api "$context"
    # The binaries link against the host's glibc: make sure they start in the image (a usage
    # error means they did; a glibc too old for them says "GLIBC_2.xx not found").
    local image binary output
    for image in "$ISSUER_IMAGE:auth-issuer" "$API_IMAGE:api"; do
        binary=${image##*:}
        image=${image%:*}
        output=$(docker run --rm "$image" no-such-command 2>&1 || true)
        case "$output" in
            *usage*) ;;
            *) die "$binary does not start in $image: $output" ;;
        esac
    done
}

main() {
    local start=$SECONDS
    docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed)"
    timed "base image $BASE_IMAGE" base_image
    timed "service images (cargo build --release on the host)" service_images
    timed "nginx image" build nginx "$NGINX_IMAGE" -f "$ROOT/deploy/docker/nginx.Dockerfile" \
        "$ROOT/deploy"
    timed "redis image" build redis "$REDIS_IMAGE" -f "$ROOT/deploy/docker/redis.Dockerfile" \
        "$ROOT/deploy/docker"
    timed "prometheus image" build prometheus "$PROMETHEUS_IMAGE" \
        -f "$ROOT/deploy/docker/prometheus.Dockerfile" --target prometheus "$ROOT/deploy/docker"
    timed "nginx exporter image" build nginx-exporter "$NGINX_EXPORTER_IMAGE" \
        -f "$ROOT/deploy/docker/prometheus.Dockerfile" --target nginx-exporter "$ROOT/deploy/docker"
    log "done in $((SECONDS - start)) s:"
    docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' |
        grep -E "^($BASE_IMAGE|authscale/)" | sed 's/^/  /' >&2 || true
}

main "$@"
