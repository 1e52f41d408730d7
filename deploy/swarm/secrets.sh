#!/usr/bin/env bash
# The swarm's secrets for deploy/swarm/stack.yml, made once; kept by `docker stack rm`.
#
#   deploy/swarm/secrets.sh            create whichever of the three is missing; print the rest
#   deploy/swarm/secrets.sh --remove   delete all three (after `docker stack rm`)
#
# authscale_signing_key             the issuers' RSA signing key (PKCS#8 PEM, 2048 bits)
# authscale_redis_issuer_password   the issuers' Redis ACL password (256 random bits, hex)
# authscale_redis_session_password  the session replicas' one
#
# Each value goes from openssl to `docker secret create` through a pipe: it never touches a
# disk here, and no command line shows it. Run it on a manager.

set -euo pipefail

SECRETS=(authscale_signing_key authscale_redis_issuer_password authscale_redis_session_password)

log() { printf 'secrets: %s\n' "$*" >&2; }

exists() { docker secret inspect "$1" >/dev/null 2>&1; }

value_of() {
    case "$1" in
        authscale_signing_key) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null ;;
        *) openssl rand -hex 32 | tr -d '\n' ;;
    esac
}

if [ "${1:-}" = --remove ]; then
    for name in "${SECRETS[@]}"; do
        if exists "$name"; then
            docker secret rm "$name" >/dev/null
            log "$name removed"
        fi
    done
    exit 0
fi
[ $# -eq 0 ] || { log "usage: $0 [--remove]"; exit 2; }
command -v openssl >/dev/null || { log "needs openssl (apt-get install openssl)"; exit 1; }
for name in "${SECRETS[@]}"; do
    if exists "$name"; then
        log "$name exists; kept"
    else
        value_of "$name" | docker secret create "$name" - >/dev/null
        log "$name created"
    fi
done
