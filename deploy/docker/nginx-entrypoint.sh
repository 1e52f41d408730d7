#!/bin/sh
# authscale-nginx: nginx in docker compose, following the replicas as they come and go.
#
#   authscale-nginx              render the config, run nginx, re-render and reload on a change
#   authscale-nginx render       print the config for the addresses the service names have now
#   authscale-nginx healthcheck  exit 0 if GET /nginx-health answers 200 (slim images have no curl)
#
# The config is deploy/nginx/nginx.conf.template, the same file the local launcher renders
# (crates/stack/src/nginx.rs); only the values differ. Every placeholder in it, written as a
# NAME between double curly braces, is replaced with the value below; a placeholder this script
# does not know stops it with an error, like the launcher.
#
# Why not let nginx resolve the service names? In an `upstream` block nginx resolves a name once,
# at start-up: replicas added by `docker compose up --scale api=5` would never get traffic, and a
# removed one would keep its stale address. Re-resolution inside the upstream block (`server ...
# resolve`) needs nginx 1.27.3 or later; Debian bookworm ships 1.22. A `proxy_pass` with a
# variable and a `resolver` does re-resolve, but loses what the template relies on: least_conn,
# upstream keepalive and max_fails. So this script asks Docker's DNS itself (getent, every
# POLL_SECS seconds), writes one `server IP:PORT ...;` line per container, and when the set of
# addresses changes, checks the new config (nginx -t) and reloads nginx (SIGHUP). A reload is
# graceful: old workers finish the requests they have, new workers use the new list. What a
# reload does cost: the old workers close their idle kept-alive client connections, and a
# client whose next request was already on its way sees its connection closed before an answer.
# HTTP lets a client send an idempotent request again in that case (RFC 9112, 9.3.1); browsers
# and curl do, some libraries do not. Removed addresses are reloaded away too, not left to
# max_fails: an address whose container is gone does not refuse a connection, it lets the
# connect time out (1 s, proxy_connect_timeout), so a stale one would cost a second every
# fail_timeout until the next reload.

set -eu

TEMPLATE=${TEMPLATE:-/etc/authscale/nginx.conf.template}
# nginx's prefix: the config, pid file and temp dirs (the template's relative paths) live here.
PREFIX=${PREFIX:-/var/lib/authscale-nginx}
# The compose service names and the port every service listens on inside its container.
ISSUER_HOST=${ISSUER_HOST:-auth-issuer}
API_HOST=${API_HOST:-api}
SESSION_API_HOST=${SESSION_API_HOST:-session-api}
UPSTREAM_PORT=${UPSTREAM_PORT:-8080}
LISTEN_PORT=${LISTEN_PORT:-8080}
# nginx's stub_status (for Prometheus's nginx exporter), on a port docker-compose.yml does not
# publish: only containers on the project's network reach it.
STATUS_PORT=${STATUS_PORT:-8081}
WORKER_PROCESSES=${WORKER_PROCESSES:-auto}
WEB_ROOT=${WEB_ROOT:-/usr/share/authscale/web}
POLL_SECS=${POLL_SECS:-1}
# The per-address limit on the two password routes (the template explains it); the defaults are
# the launcher's (NginxConfig in crates/stack/src/nginx.rs).
LOGIN_RATE=${LOGIN_RATE:-10r/s}
LOGIN_BURST=${LOGIN_BURST:-20}

# Checked here, so a typo stops the container with its name rather than an nginx -t error, and
# nothing but a rate can reach the config.
case "$LOGIN_RATE" in
    *[!0-9]*r/[sm] | r/[sm] | 0*) valid_rate=no ;;
    *r/[sm]) valid_rate=yes ;;
    *) valid_rate=no ;;
esac
case "$LOGIN_BURST" in
    '' | *[!0-9]*) valid_burst=no ;;
    *) valid_burst=yes ;;
esac
if [ "$valid_rate" != yes ] || [ "$valid_burst" != yes ]; then
    echo "authscale-nginx: LOGIN_RATE must be like 10r/s or 600r/m (not \"$LOGIN_RATE\") and LOGIN_BURST a number (not \"$LOGIN_BURST\")" >&2
    exit 2
fi

# The counters' port must be a port of its own: on the public one, the counters' server would
# take the public address's traffic, and stub_status would be one request away for anyone.
valid_ports=yes
for port in "$LISTEN_PORT" "$STATUS_PORT"; do
    case "$port" in '' | *[!0-9]*) valid_ports=no ;; esac
done
if [ "$valid_ports" = yes ] && [ "$LISTEN_PORT" -eq "$STATUS_PORT" ]; then
    valid_ports=no
fi
if [ "$valid_ports" != yes ]; then
    echo "authscale-nginx: LISTEN_PORT and STATUS_PORT must be two different port numbers (not \"$LISTEN_PORT\" and \"$STATUS_PORT\")" >&2
    exit 2
fi

log() {
    echo "authscale-nginx: $*" >&2
}

# The IPv4 addresses a name resolves to, sorted, one per line; nothing if it does not resolve
# (a service scaled to 0, or none of its containers running).
addresses() {
    getent ahostsv4 "$1" 2>/dev/null | awk '{ print $1 }' | sort -u -t . -k1,1n -k2,2n -k3,3n -k4,4n
}

# The `server` lines for one service, joined the way the launcher joins them (server_lines in
# crates/stack/src/nginx.rs). With no address, a server marked `down`: nginx refuses an empty
# upstream block, and `down` makes every request there a 502, which is the truth.
server_lines() {
    ips=$(addresses "$1")
    if [ -z "$ips" ]; then
        printf 'server 127.0.0.1:1 down;'
        return
    fi
    printf '%s\n' "$ips" | awk -v port="$UPSTREAM_PORT" '
        { printf "%sserver %s:%s max_fails=1 fail_timeout=2s;", (NR > 1 ? "\n        " : ""), $1, port }'
}

# The read-only /cluster locations (the template explains them), written as the launcher writes
# them (cluster_routes in crates/stack/src/nginx/cluster.rs): the count of each kind, then one
# location per address that proxies to that one process's small GET route.
cluster_routes() {
    issuers=$(addresses "$ISSUER_HOST")
    tokens=$(addresses "$API_HOST")
    sessions=$(addresses "$SESSION_API_HOST")
    count() { [ -z "$1" ] && echo 0 || printf '%s\n' "$1" | wc -l; }
    printf "location = /cluster {\n            add_header Cache-Control no-store;\n            return 200 '{\"issuers\":%d,\"token\":%d,\"session\":%d}';\n        }" \
        "$(count "$issuers")" "$(count "$tokens")" "$(count "$sessions")"
    for kind in issuer token session; do
        case $kind in
            issuer) ips=$issuers target=/.well-known/openid-configuration ;;
            token) ips=$tokens target=/api/stats ;;
            session) ips=$sessions target=/sapi/stats ;;
        esac
        [ -n "$ips" ] || continue
        printf '%s\n' "$ips" | awk -v kind="$kind" -v port="$UPSTREAM_PORT" -v target="$target" '
            { printf "\n        location = /cluster/%s/%d {\n            proxy_pass http://%s:%s%s;\n            proxy_connect_timeout 1s;\n            proxy_next_upstream off;\n        }", kind, NR, $1, port, target }'
    done
}

# The template with every placeholder filled, on stdout. The values travel to awk in TPL_<NAME>
# environment variables; a placeholder without one is an error.
render() {
    TPL_LISTEN="0.0.0.0:$LISTEN_PORT" \
    TPL_WORKER_PROCESSES="$WORKER_PROCESSES" \
    TPL_ISSUER_SERVERS=$(server_lines "$ISSUER_HOST") \
    TPL_API_SERVERS=$(server_lines "$API_HOST") \
    TPL_SESSION_API_SERVERS=$(server_lines "$SESSION_API_HOST") \
    TPL_WEB_ROOT="$WEB_ROOT" \
    TPL_LOGIN_RATE="$LOGIN_RATE" \
    TPL_LOGIN_BURST="$LOGIN_BURST" \
    TPL_CLUSTER_ROUTES=$(cluster_routes) \
    TPL_STATUS_LISTEN="0.0.0.0:$STATUS_PORT" \
    awk '
        {
            line = $0
            out = ""
            while (match(line, /[{][{][A-Za-z0-9_]+[}][}]/)) {
                name = substr(line, RSTART + 2, RLENGTH - 4)
                if (!(("TPL_" name) in ENVIRON)) {
                    printf "authscale-nginx: the nginx template has a placeholder this script does not fill: {{%s}} (line %d)\n", name, NR > "/dev/stderr"
                    failed = 1
                    exit 1
                }
                out = out substr(line, 1, RSTART - 1) ENVIRON["TPL_" name]
                line = substr(line, RSTART + RLENGTH)
            }
            if (index(line, "{{") > 0) {
                printf "authscale-nginx: malformed placeholder in the nginx template, line %d: %s\n", NR, line > "/dev/stderr"
                failed = 1
                exit 1
            }
            print out line
        }
        END { if (failed) exit 1 }
    ' "$TEMPLATE"
}

nginx_test() {
    nginx -t -q -p "$PREFIX/" -c "$1" -e stderr
}

healthcheck() {
    # bash, for /dev/tcp. HTTP/1.0: nginx closes the connection after the answer.
    exec bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET /nginx-health HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3
        IFS= read -r -t 2 status <&3 || exit 1
        case "$status" in "HTTP/1.1 200"*) exit 0 ;; *) exit 1 ;; esac
    ' healthcheck "$LISTEN_PORT"
}

run() {
    mkdir -p "$PREFIX"
    conf="$PREFIX/nginx.conf"
    render >"$conf.new"
    nginx_test "$conf.new"
    mv "$conf.new" "$conf"
    log "upstreams: $(grep -c '^ *server [0-9].*max_fails' "$conf") servers; following $ISSUER_HOST, $API_HOST, $SESSION_API_HOST every ${POLL_SECS}s"

    nginx -p "$PREFIX/" -c "$conf" -e stderr -g 'daemon off;' &
    nginx_pid=$!
    # docker stop sends SIGTERM: turn it into nginx's graceful stop (QUIT), which lets requests
    # in flight finish. (nginx's own SIGTERM is the fast stop.)
    trap 'kill -QUIT "$nginx_pid" 2>/dev/null || true' TERM INT QUIT

    while kill -0 "$nginx_pid" 2>/dev/null; do
        # `sleep & wait`, not plain `sleep`: wait returns at once when a signal arrives.
        sleep "$POLL_SECS" &
        wait $! 2>/dev/null || true
        kill -0 "$nginx_pid" 2>/dev/null || break
        if ! render >"$conf.new"; then
            log "cannot render the config; keeping the current one"
            continue
        fi
        if cmp -s "$conf.new" "$conf"; then
            continue
        fi
        if nginx_test "$conf.new"; then
            mv "$conf.new" "$conf"
            log "addresses changed: $(grep -c '^ *server [0-9].*max_fails' "$conf") servers now; reloading"
            kill -HUP "$nginx_pid"
        else
            log "nginx -t rejected the new config; keeping the current one"
        fi
    done
    # nginx has exited (stopped by the trap above, or by itself): pass its status on.
    status=0
    wait "$nginx_pid" || status=$?
    log "nginx exited with status $status"
    exit "$status"
}

case "${1:-run}" in
    run) run ;;
    render) render ;;
    healthcheck) healthcheck ;;
    *)
        echo "usage: authscale-nginx [run | render | healthcheck]" >&2
        exit 2
        ;;
esac
