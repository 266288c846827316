#!/usr/bin/env bash
# `make run`: the ingest worker and the API (gunicorn), both from .venv, until Ctrl-C or
# SIGTERM, which stops both: each gets one SIGTERM and this script waits for them (the
# worker finishes the batch in hand). If either exits, the other is stopped too.
# With OG_BACKEND=null or sqlite there is no worker.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BACKEND="${OG_BACKEND:-redis}"

pids=()
stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; }
# Set before anything starts, so that no signal falls between a start and its trap.
# The worker and the API run in sessions of their own (setsid), so the terminal's
# Ctrl-C reaches only make and this script, which turns it into one SIGTERM each: the
# worker's warm stop, gunicorn's graceful stop. (Had the worker seen the terminal's
# SIGINT too, the SIGTERM after it would count as its second signal, a cold stop.)
# A second Ctrl-C sends a second SIGTERM: the worker's cold stop.
trap stop INT TERM HUP

case "$BACKEND" in
    redis)
        setsid .venv/bin/python -m ingest &
        worker_pid=$!
        pids+=("$worker_pid")
        echo "run: ingest worker started (pid $worker_pid)"
        ;;
    sqlite)
        .venv/bin/python -m server.initdb
        ;;
esac

setsid .venv/bin/gunicorn -c gunicorn.conf.py server.app:app &
api_pid=$!
pids+=("$api_pid")
echo "run: API started (pid $api_pid, backend $BACKEND, http://${OG_BIND:-127.0.0.1:5000}); Ctrl-C stops it"

# Returns when one of them exits, or early when a trapped signal arrives.
wait -n "${pids[@]}" || true
stop
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
echo "run: stopped (exit status $status)"
exit "$status"
