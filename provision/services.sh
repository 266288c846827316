#!/usr/bin/env bash
# Makes sure the two stores are up, with or without systemd, and prints one line each:
#   MariaDB - the system service, with database og and user og/og (docs/API.md section 6);
#   Redis   - the project's own instance from provision/redis.conf, data in var/redis.
# Safe to run again: what is already up is reused. `services.sh stop` stops the Redis,
# and first whatever provision/run.sh started that is still running (nginx, gunicorn, the
# ingest worker: left behind if run.sh itself was killed), found by their pid files.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REDIS_PORT=6379
REDIS_DIR="$ROOT/var/redis"
REDIS_PIDFILE="$REDIS_DIR/redis.pid"
WAIT_SECONDS=30

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)

has_systemd() { [ -d /run/systemd/system ]; }

# Calls "$@" once a second until it succeeds; fails after WAIT_SECONDS.
wait_for() {
    local i
    for ((i = 0; i < WAIT_SECONDS; i++)); do
        "$@" && return 0
        sleep 1
    done
    return 1
}

mariadb_alive() { "${SUDO[@]}" mariadb-admin --connect-timeout=2 ping >/dev/null 2>&1; }

start_mariadb() {
    if has_systemd; then
        # enable as well as start, so that the VM comes back with it after a reboot.
        "${SUDO[@]}" systemctl enable --now --quiet mariadb
        echo "systemctl"
        return
    fi
    # No init system will start it (and policy-rc.d may have stopped the package from
    # doing so): the SysV script first, then mysqld_safe by hand.
    if "${SUDO[@]}" /etc/init.d/mariadb start >/dev/null 2>&1 && mariadb_alive; then
        echo "/etc/init.d/mariadb"
        return
    fi
    "${SUDO[@]}" install -d -m 755 -o mysql -g root /run/mysqld
    "${SUDO[@]}" sh -c 'nohup /usr/bin/mysqld_safe >/dev/null 2>&1 &'
    echo "mysqld_safe"
}

ensure_mariadb() {
    local how=""
    if mariadb_alive; then
        has_systemd && "${SUDO[@]}" systemctl enable --quiet mariadb
    else
        how=$(start_mariadb)
        if ! wait_for mariadb_alive; then
            echo "mariadb: not answering after ${WAIT_SECONDS}s (started by $how)" >&2
            exit 1
        fi
    fi
    # Root reaches the server through the unix socket (Debian's default auth).
    # ALTER USER makes a user that already existed take the password og too.
    "${SUDO[@]}" mariadb --batch <<'SQL'
CREATE DATABASE IF NOT EXISTS og;
CREATE USER IF NOT EXISTS 'og'@'localhost' IDENTIFIED BY 'og';
CREATE USER IF NOT EXISTS 'og'@'127.0.0.1' IDENTIFIED BY 'og';
ALTER USER 'og'@'localhost' IDENTIFIED BY 'og';
ALTER USER 'og'@'127.0.0.1' IDENTIFIED BY 'og';
GRANT ALL PRIVILEGES ON og.* TO 'og'@'localhost';
GRANT ALL PRIVILEGES ON og.* TO 'og'@'127.0.0.1';
SQL
    # The API and the ingest worker connect over TCP, as DATABASE_URL says.
    mariadb --host=127.0.0.1 --port=3306 --user=og --password=og og --batch -e 'SELECT 1' >/dev/null
    if [ -n "$how" ]; then
        echo "mariadb: started ($how); database og and user og ready on 127.0.0.1:3306"
    else
        echo "mariadb: already running; database og and user og ready on 127.0.0.1:3306"
    fi
}

redis_pong() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

# The pid in the pidfile, if that process is alive and is a redis-server.
project_redis_pid() {
    local pid
    pid=$(cat "$REDIS_PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && grep -q '^redis-server' "/proc/$pid/comm" 2>/dev/null && echo "$pid"
}

ensure_redis() {
    # Debian's redis-server package starts its own instance under systemd (RDB snapshots,
    # no AOF) on the same port; the project's instance must be the one on 6379.
    if has_systemd && { systemctl is-enabled --quiet redis-server 2>/dev/null \
                        || systemctl is-active --quiet redis-server 2>/dev/null; }; then
        "${SUDO[@]}" systemctl disable --now --quiet redis-server
        echo "redis: disabled the distribution's redis-server.service"
    fi
    local pid
    if redis_pong; then
        if pid=$(project_redis_pid); then
            echo "redis: already running (project instance, pid $pid, data in $REDIS_DIR)"
        else
            local aof
            aof=$(redis-cli -p "$REDIS_PORT" config get appendonly 2>/dev/null | tail -n 1)
            echo "redis: reusing the server already on port $REDIS_PORT (not started here; appendonly=${aof:-?})"
        fi
        return
    fi
    mkdir -p "$REDIS_DIR"
    redis-server "$ROOT/provision/redis.conf" --dir "$REDIS_DIR" --daemonize yes \
        --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_DIR/redis.log"
    if ! wait_for redis_pong; then
        echo "redis: no PONG after ${WAIT_SECONDS}s; the end of $REDIS_DIR/redis.log:" >&2
        tail -n 20 "$REDIS_DIR/redis.log" >&2 || true
        exit 1
    fi
    echo "redis: started (pid $(project_redis_pid || echo '?'), data in $REDIS_DIR)"
}

stop_redis() {
    local pid i
    if ! pid=$(project_redis_pid); then
        echo "redis: project instance not running"
        return
    fi
    # SIGTERM is a clean shutdown: Redis fsyncs the AOF before it exits.
    kill -TERM "$pid"
    for ((i = 0; i < WAIT_SECONDS * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { echo "redis: stopped (pid $pid)"; return; }
        sleep 0.1
    done
    echo "redis: pid $pid still running after ${WAIT_SECONDS}s" >&2
    exit 1
}

# The pid in pidfile $1, if that process is alive and its command line contains $2.
live_pid() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] \
        && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$2" && echo "$pid"
}

# Sends signal $3 to the process of pidfile $2 (command line with $4) and waits for it.
stop_process() {
    local what=$1 pidfile=$2 signal=$3 pattern=$4 pid i
    pid=$(live_pid "$pidfile" "$pattern") || return 0
    kill "-$signal" "$pid" 2>/dev/null || return 0
    for ((i = 0; i < WAIT_SECONDS * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { echo "$what: stopped (pid $pid)"; return 0; }
        sleep 0.1
    done
    echo "$what: pid $pid still running after ${WAIT_SECONDS}s" >&2
    return 1
}

# make run's processes, if any are still up. A live run.sh is asked to stop (it stops
# the others, each with one signal); what a killed run.sh left behind is stopped here:
# nginx first (no new requests), then gunicorn (its graceful stop), then the worker (it
# finishes its batch).
stop_run() {
    stop_process "make run" "$ROOT/var/run/run.pid" TERM "provision/run.sh"
    stop_process nginx "$ROOT/var/nginx/nginx.pid" QUIT "-p $ROOT/var/nginx"
    stop_process gunicorn "$ROOT/var/run/gunicorn.pid" TERM "--pid $ROOT/var/run/gunicorn.pid"
    stop_process "ingest worker" "$ROOT/var/run/ingest.pid" TERM "-m ingest"
}

case "${1:-start}" in
    start) ensure_mariadb; ensure_redis ;;
    stop) stop_run; stop_redis ;;
    *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
