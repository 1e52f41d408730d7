#!/bin/sh
# Redis for docker compose with least privilege: one ACL user per kind of client, passwords made
# on the machine at the first start (never in an image, never committed), `default` disabled.
#
#   authscale-redis init        as root, in the one-shot redis-init service: the passwords and
#                               the ACL file
#   authscale-redis serve ARGS  the redis service: exec redis-server ARGS with that ACL file
#   authscale-redis healthcheck the redis service's health check (PING as the `health` user)
#   authscale-redis serve-from-secrets ARGS
#                               Docker Swarm and Kubernetes: the clients' passwords come from
#                               secrets the orchestrator mounts (files named by
#                               AUTHSCALE_REDIS_ISSUER_PASSWORD_FILE and
#                               AUTHSCALE_REDIS_SESSION_PASSWORD_FILE); the ACL file and a fresh
#                               health password are written into AUTHSCALE_REDIS_SECRETS (a
#                               directory private to this container, e.g. under /tmp), then
#                               redis-server ARGS runs as in `serve`. No init step: a task or a
#                               pod is a new container each time it starts.
#
# docker-compose.yml mounts this file into the Redis image (the official redis:7-bookworm or,
# offline, Debian's redis-server), so both run the same way.
#
# Where the passwords live (named volumes, so they survive `down` and go with `down -v`):
#   $CLIENTS/issuer/password   the issuer's (volume redis-issuer-password, mounted into the issuer)
#   $CLIENTS/session/password  the session replicas' (volume redis-session-password)
#   $SECRETS/users.acl         the ACL users, with the SHA-256 of each password, all Redis needs
#                              to check them (volume redis-secrets, mounted read-only into Redis)
#   $SECRETS/health.password   the health check's, which may only PING
# A client volume holds one password, so a session replica cannot read the issuer's (both run
# as the same uid; separate volumes are what keeps them apart). Redis holds only hashes of the
# clients' passwords: 256 random bits each, so a hash gives nothing away. The ACL file is
# written by init, at each `up`, rather than by Redis at each start into a tmpfs: Docker 20.10
# gives a tmpfs back root-owned 0755 when a container restarts, and Redis runs as `redis`.
#
# Bring your own passwords: set AUTHSCALE_REDIS_ISSUER_PASSWORD and/or
# AUTHSCALE_REDIS_SESSION_PASSWORD for `up` (the init service writes them over the generated
# ones at each start), or write the files into the volumes before the first start.

set -eu

SECRETS=${AUTHSCALE_REDIS_SECRETS:-/run/authscale/redis-secrets}
CLIENTS=${AUTHSCALE_REDIS_CLIENTS:-/run/authscale/clients}
# The uid the issuer and api images run as (services.Dockerfile).
SERVICE_UID=10001

log() { printf 'authscale-redis: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# 32 random bytes as 64 hex digits: a password nothing needs to quote or escape.
random_password() {
    head -c 32 /dev/urandom | od -An -vtx1 | tr -d ' \n'
}

# The SHA-256 of the file's content, as ACL `#<hash>` rules want it. The password goes through
# a pipe, never a command line.
sha256_of() {
    sha256sum <"$1" | cut -d' ' -f1
}

# write_password NAME FILE OWNER [VALUE]: VALUE (if given) or, when FILE does not exist yet, a
# new random password, written without a newline, readable by OWNER only.
write_password() {
    name=$1 file=$2 owner=$3 value=${4:-}
    mkdir -p "$(dirname "$file")"
    if [ -n "$value" ]; then
        (umask 077 && printf '%s' "$value" >"$file")
        log "$name password: set from the environment"
    elif [ ! -s "$file" ]; then
        (umask 077 && random_password >"$file")
        log "$name password: generated"
    fi
    chown "$owner" "$file"
    chmod 0400 "$file"
}

init() {
    [ "$(id -u)" -eq 0 ] || die "init must run as root (it gives each file its owner)"
    redis_owner="$(id -u redis):$(id -g redis)"
    write_password issuer "$CLIENTS/issuer/password" "$SERVICE_UID:$SERVICE_UID" \
        "${AUTHSCALE_REDIS_ISSUER_PASSWORD:-}"
    write_password session "$CLIENTS/session/password" "$SERVICE_UID:$SERVICE_UID" \
        "${AUTHSCALE_REDIS_SESSION_PASSWORD:-}"
    write_password health "$SECRETS/health.password" "$redis_owner"
    write_acl
    chown "$redis_owner" "$SECRETS/users.acl" "$SECRETS"
    chmod 0400 "$SECRETS/users.acl"
    chmod 0700 "$SECRETS"
    log "passwords and ACL users ready"
}

# The ACL file. Rules apply left to right: each user starts from nothing (-@all, no keys, no
# channels) and gets only what its code sends.
write_acl() {
    # What the redis crate sends on every new connection: AUTH (always allowed), then CLIENT
    # SETINFO, which Redis knows from 7.2 on and refuses to name in an ACL before (Debian's
    # redis-server is 7.0, where the crate ignores the "unknown subcommand" answer).
    connect="+ping +hello"
    version=$(redis-server --version | sed -n 's/.* v=\([0-9][0-9.]*\) .*/\1/p')
    major=${version%%.*} rest=${version#*.}
    minor=${rest%%.*}
    if [ "${major:-0}" -gt 7 ] || { [ "${major:-0}" -eq 7 ] && [ "${minor:-0}" -ge 2 ]; }; then
        connect="$connect +client|setinfo"
    fi
    issuer=$(sha256_of "${CLIENTS_ISSUER:-$CLIENTS/issuer/password}")
    session=$(sha256_of "${CLIENTS_SESSION:-$CLIENTS/session/password}")
    health=$(sha256_of "$SECRETS/health.password")
    # `default` is `off` with no password: nobody can log in as it. It keeps every permission
    # all the same, because Redis replays the append-only file as `default`, and before Redis 8
    # (Debian's is 7.0) EXEC re-checks the ACL during that replay: with `-@all`, every write a
    # Lua script made (logged as MULTI ... EXEC) is silently dropped on restart, so refresh
    # families vanish while plain SETs (sessions) survive (redis/redis#14541; the compose test's
    # kill -9 phase fails that way).
    # A session replica runs one script (auth-core's session READ): GET the record, EXPIRE it to
    # renew it, DEL it once it is past its absolute cap. Nothing else, and no key outside
    # session:*: it cannot write a session, and PERSIST and GETEX are refused (EXPIRE could
    # still set a long expiry; the session's absolute cap, checked on every read, bounds it).
    (umask 077 && cat >"$SECRETS/users.acl.new") <<EOF
user default off resetpass resetkeys ~* &* +@all
user issuer on #$issuer resetkeys ~rt:* ~login:* ~session:* resetchannels -@all +@read +@write -@dangerous -@admin +eval +evalsha +script|load +script|exists +wait $connect
user session on #$session resetkeys ~session:* resetchannels -@all +get +expire +del +evalsha +script|load $connect
user health on #$health resetkeys resetchannels -@all +ping
EOF
    mv -f "$SECRETS/users.acl.new" "$SECRETS/users.acl"
}

# The orchestrator's secrets hold the clients' passwords; this container makes its own ACL file
# (hashes only) and health password from them at each start, as the redis user.
serve_from_secrets() {
    issuer_file=${AUTHSCALE_REDIS_ISSUER_PASSWORD_FILE:-/run/secrets/redis_issuer_password}
    session_file=${AUTHSCALE_REDIS_SESSION_PASSWORD_FILE:-/run/secrets/redis_session_password}
    [ -s "$issuer_file" ] || die "no issuer password at $issuer_file (AUTHSCALE_REDIS_ISSUER_PASSWORD_FILE)"
    [ -s "$session_file" ] || die "no session password at $session_file (AUTHSCALE_REDIS_SESSION_PASSWORD_FILE)"
    (umask 077 && mkdir -p "$SECRETS")
    rm -f "$SECRETS/health.password"
    (umask 077 && random_password >"$SECRETS/health.password")
    CLIENTS_ISSUER=$issuer_file CLIENTS_SESSION=$session_file write_acl
    chmod 0400 "$SECRETS/users.acl"
    log "ACL users ready from the mounted secrets"
    # Never two Redis processes on one append-only file: an orchestrator may start a new task
    # while an old one it lost touch with still runs on the same volume. The lock is held by
    # redis-server itself (it inherits descriptor 9), so it lasts exactly as long as Redis.
    lock=${AUTHSCALE_REDIS_LOCK:-/data/authscale-redis.lock}
    if [ -d "$(dirname "$lock")" ]; then
        exec 9>"$lock"
        flock -w 60 9 || die "another Redis holds $lock (waited 60 s)"
    fi
    exec redis-server "$@" --aclfile "$SECRETS/users.acl"
}

case "${1:-}" in
    init)
        init
        ;;
    serve)
        shift
        [ -s "$SECRETS/users.acl" ] || die "no $SECRETS/users.acl: has the redis-init service run?"
        exec redis-server "$@" --aclfile "$SECRETS/users.acl"
        ;;
    serve-from-secrets)
        shift
        serve_from_secrets "$@"
        ;;
    healthcheck)
        REDISCLI_AUTH=$(cat "$SECRETS/health.password")
        export REDISCLI_AUTH
        redis-cli --no-auth-warning --user health ping | grep -q PONG
        ;;
    *)
        die "usage: authscale-redis init | serve [redis-server arguments] | serve-from-secrets [redis-server arguments] | healthcheck"
        ;;
esac
