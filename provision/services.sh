#!/usr/bin/env bash
# Makes sure the two stores are up, with or without systemd, and prints one line each:
#   MariaDB - the system service, with database og and user og/og (docs/API.md section 6);
#   Redis   - the project's own instance from provision/redis.conf, data in var/redis.
# Safe to run again: what is already up is reused. `services.sh stop` stops the Redis.
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

case "${1:-start}" in
    start) ensure_mariadb; ensure_redis ;;
    stop) stop_redis ;;
    *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
