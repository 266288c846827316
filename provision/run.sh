#!/usr/bin/env bash
# `make run`: the ingest worker, the API (gunicorn) and the reverse proxy in front of it
# (nginx), all in the foreground, until Ctrl-C or SIGTERM, which stops all three: each
# gets one signal and this script waits for them (the worker finishes the batch in
# hand, gunicorn and nginx finish the requests in progress). If one exits, the others
# are stopped too. With OG_BACKEND=null or sqlite there is no worker.
#
# Where things listen:
#   OG_BIND (default 127.0.0.1:5000)  nginx: what users reach; it reads each request
#                                     whole, with timeouts and limits, then asks gunicorn
#   var/run/gunicorn.sock             gunicorn (OG_GUNICORN_BIND=unix:...), nginx only
# nginx's configuration is rendered from provision/nginx.conf.template into
# var/nginx/nginx.conf at every start; its pid file and logs are in var/nginx.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BACKEND="${OG_BACKEND:-redis}"
PUBLIC="${OG_BIND:-127.0.0.1:5000}"
RUN_DIR="$ROOT/var/run"
NGINX_PREFIX="$ROOT/var/nginx"
SOCKET="$RUN_DIR/gunicorn.sock"
SOCKET_WAIT_SECONDS=30
# Debian puts nginx in /usr/sbin, which is not on a normal user's PATH.
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

mkdir -p "$RUN_DIR"
# One `make run` per checkout: a second gunicorn would take over the first one's socket
# (gunicorn removes a socket file it finds). The lock is inherited by everything started
# below, so it stays held while any of it still runs.
exec 9>"$RUN_DIR/run.lock"
if ! flock -n 9; then
    echo "run: already running from $ROOT (var/run/run.lock is held): stop that one first" \
         "(Ctrl-C in its terminal, or make stop-services)" >&2
    exit 1
fi

echo $$ >"$RUN_DIR/run.pid"

# Rendered before anything starts: a bad OG_BIND stops here with a message.
.venv/bin/python provision/nginx_conf.py --listen "$PUBLIC" --upstream "unix:$SOCKET" \
    --prefix "$NGINX_PREFIX" >/dev/null

pids=()
nginx_pid=""
stopping=""
startup_failed=""
# nginx's graceful stop is SIGQUIT (SIGTERM would drop the requests in progress).
stop() {
    local pid
    stopping=1
    for pid in "${pids[@]}"; do
        if [ "$pid" = "$nginx_pid" ]; then
            kill -QUIT "$pid" 2>/dev/null || true
        else
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
}
# Set before anything starts, so that no signal falls between a start and its trap.
# The worker, the API and nginx run in sessions of their own (setsid), so the terminal's
# Ctrl-C reaches only make and this script, which turns it into one signal each: the
# worker's warm stop, gunicorn's and nginx's graceful stops. (Had the worker seen the
# terminal's SIGINT too, the SIGTERM after it would count as its second signal, a cold
# stop.) A second Ctrl-C sends a second round: the worker's cold stop. A process that
# exits by itself makes one round too (below).
trap stop INT TERM HUP

case "$BACKEND" in
    redis)
        setsid .venv/bin/python -m ingest &
        worker_pid=$!
        pids+=("$worker_pid")
        echo "$worker_pid" >"$RUN_DIR/ingest.pid"
        echo "run: ingest worker started (pid $worker_pid)"
        ;;
    sqlite)
        .venv/bin/python -m server.initdb
        ;;
esac

# A socket file left by a run that was killed is not a sign of readiness.
rm -f "$SOCKET"
# gunicorn.conf.py names the app (server/wsgi.py) and binds OG_GUNICORN_BIND over OG_BIND.
OG_GUNICORN_BIND="unix:$SOCKET" \
    setsid .venv/bin/gunicorn -c gunicorn.conf.py --pid "$RUN_DIR/gunicorn.pid" &
api_pid=$!
pids+=("$api_pid")
echo "run: API started (pid $api_pid, backend $BACKEND, on unix:$SOCKET)"

# nginx starts once gunicorn listens, so that its first answers are not 502s.
for ((i = 0; i < SOCKET_WAIT_SECONDS * 10; i++)); do
    [ -S "$SOCKET" ] && break
    kill -0 "$api_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -n "$stopping" ]; then
    :
elif [ -S "$SOCKET" ]; then
    setsid "$NGINX" -p "$NGINX_PREFIX" -c "$NGINX_PREFIX/nginx.conf" &
    nginx_pid=$!
    pids+=("$nginx_pid")
    echo "run: nginx started (pid $nginx_pid, http://$PUBLIC -> unix:$SOCKET; log" \
         "var/nginx/logs/error.log); Ctrl-C stops everything"
else
    echo "run: gunicorn is not listening on $SOCKET (exited, or not within" \
         "${SOCKET_WAIT_SECONDS}s); stopping" >&2
    startup_failed=1
    stop
fi

# Returns when one of them exits, or early when a trapped signal arrives (whose trap
# has already sent the round: another one now would be the worker's cold stop).
wait -n "${pids[@]}" || true
[ -n "$stopping" ] || stop
for pid in "${pids[@]}"; do
    # wait is cut short by each trapped signal; keep waiting while the process lives.
    while kill -0 "$pid" 2>/dev/null; do
        wait "$pid" || true
    done
done

# Exit with the first failure among them (0 after a clean stop).
status=0
for pid in "${pids[@]}"; do
    code=0
    wait "$pid" || code=$?
    [ "$status" -ne 0 ] || status=$code
done
[ -z "$startup_failed" ] || [ "$status" -ne 0 ] || status=1
rm -f "$RUN_DIR/ingest.pid" "$RUN_DIR/run.pid"
echo "run: stopped (exit status $status)"
exit "$status"
