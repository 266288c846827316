"""Private redis-server, mariadbd and gunicorn processes for the tests.

Each runs on a free loopback port with its own data dir, is Popen'ed directly (so its
pid is ours to SIGTERM or SIGKILL) and can be stopped, killed and started again on the
same port and dir, which is how later tests crash the stores under load.
"""
import ctypes
import os
import signal
import socket
import subprocess
import time
import http.client
from pathlib import Path

import pymysql
import redis as redislib

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 60.0
"""Seconds a server may take to answer after start (MariaDB crash recovery included)."""
STOP_TIMEOUT_S = 30.0
"""Seconds a server may take to exit after SIGTERM before it is SIGKILLed."""
POLL_S = 0.05
LOG_TAIL_BYTES = 4000

_PR_SET_PDEATHSIG = 1


def _die_with_pytest():
    # Runs in the child before exec: if pytest dies without teardown (kill -9, a crash),
    # the kernel kills the server too instead of leaving it bound to its port.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port():
    """A loopback port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def log_tail(path):
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - LOG_TAIL_BYTES))
            return log.read().decode(errors="replace")
    except OSError as error:
        return f"(no log: {error})"


class ServerProcess:
    """A child process we own: start with a bounded wait for readiness, stop, kill."""

    name = "server"

    def __init__(self, data_dir, port=None):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.process = None

    # Subclasses say how to run and how to tell it is ready.
    def command(self):
        raise NotImplementedError

    def ready(self):
        raise NotImplementedError

    def after_start(self):
        pass

    @property
    def log_path(self):
        return self.data_dir / f"{self.name}.log"

    @property
    def pid(self):
        return self.process.pid if self.running else None

    @property
    def running(self):
        return self.process is not None and self.process.poll() is None

    def popen_kwargs(self):
        return {}

    def start(self, timeout=READY_TIMEOUT_S):
        if self.running:
            return self
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_pytest, **self.popen_kwargs())
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode} on start; "
                                   f"log {self.log_path}:\n{log_tail(self.log_path)}")
            if self.ready():
                break
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.name} not ready on port {self.port} within {timeout} s; "
                                   f"log {self.log_path}:\n{log_tail(self.log_path)}")
            time.sleep(POLL_S)
        self.after_start()
        return self

    def ensure_running(self):
        """Start it again if a test killed or stopped it (and did not restart it)."""
        return self.start()

    def _signal_and_wait(self, signum, timeout):
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        return self.process.returncode

    def stop(self, timeout=STOP_TIMEOUT_S):
        """Clean shutdown (SIGTERM), waited for; SIGKILL if it takes over `timeout` s."""
        return self._signal_and_wait(signal.SIGTERM, timeout)

    def kill(self):
        """SIGKILL: a crash, no chance to flush anything. Waited for."""
        return self._signal_and_wait(signal.SIGKILL, STOP_TIMEOUT_S)

    def restart(self):
        self.stop()
        return self.start()


class RedisServer(ServerProcess):
    """redis-server with an AOF fsynced on every write, so a SIGKILL loses nothing acked."""

    name = "redis"

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self):
        return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.data_dir), "--save", "", "--appendonly", "yes",
                "--appendfsync", "always", "--maxmemory-policy", "noeviction"]

    def client(self, **kwargs):
        """A new redis.Redis on this server (decode_responses=True); the caller closes it."""
        options = {"decode_responses": True, "socket_timeout": 10, "socket_connect_timeout": 2}
        options.update(kwargs)
        return redislib.Redis.from_url(self.url, **options)

    def ready(self):
        client = self.client(socket_timeout=1, socket_connect_timeout=1)
        try:
            return client.ping()
        except (redislib.ConnectionError, redislib.TimeoutError, redislib.BusyLoadingError):
            return False
        finally:
            client.close()


class MariaDBServer(ServerProcess):
    """mariadbd on a private datadir, with database `og` and user og/og as docs/API.md section 6."""

    name = "mariadb"
    DATABASE = "og"

    @property
    def url(self):
        return f"mysql+pymysql://og:og@127.0.0.1:{self.port}/{self.DATABASE}"

    @property
    def root_url(self):
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/"

    def command(self):
        d = self.data_dir
        # A private tmpdir: in the shared /tmp, on-disk temp tables of two mariadbd with
        # the same pid in different pid namespaces collide ("Error on delete of
        # '/tmp/#sql-temptable-...'"), which broke a 1M-row GROUP BY in a benchmark.
        tmp = d.parent / f"{d.name}-tmp"
        tmp.mkdir(exist_ok=True)
        # Durability settings stay at their defaults (flush at every commit): tests
        # that kill -9 MariaDB rely on them.
        return ["mariadbd", "--no-defaults", f"--datadir={d}", f"--socket={d}/mysqld.sock",
                f"--pid-file={d}/mysqld.pid", f"--port={self.port}", "--bind-address=127.0.0.1",
                "--user=root", f"--log-error={self.log_path}", "--innodb-buffer-pool-size=128M",
                f"--tmpdir={tmp}"]

    def start(self, timeout=READY_TIMEOUT_S):
        if not (self.data_dir / "mysql").is_dir():
            install = subprocess.run(
                ["mariadb-install-db", "--no-defaults", f"--datadir={self.data_dir}",
                 "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db"],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
            if install.returncode != 0:
                raise RuntimeError(f"mariadb-install-db failed:\n{install.stdout}\n{install.stderr}")
        return super().start(timeout)

    def connect(self, user="root", password="", database=None, **kwargs):
        """A PyMySQL connection over TCP (root has no password on this instance)."""
        return pymysql.connect(host="127.0.0.1", port=self.port, user=user, password=password,
                               database=database, autocommit=True, **kwargs)

    def drop_all_tables(self):
        """Drop every table in `og`, so a test starts as on a fresh install."""
        connection = self.connect(database=self.DATABASE)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")
                tables = [row[0] for row in cursor.fetchall()]
                cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
                for table in tables:
                    cursor.execute(f"DROP TABLE `{table}`")
        finally:
            connection.close()

    def ready(self):
        try:
            self.connect(connect_timeout=1).close()
            return True
        except pymysql.err.MySQLError:
            return False

    def after_start(self):
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE IF NOT EXISTS {self.DATABASE}")
                for host in ("127.0.0.1", "localhost"):
                    cursor.execute(f"CREATE USER IF NOT EXISTS 'og'@'{host}' IDENTIFIED BY 'og'")
                    cursor.execute(f"GRANT ALL ON {self.DATABASE}.* TO 'og'@'{host}'")
        finally:
            connection.close()


class GunicornServer(ServerProcess):
    """`gunicorn -c gunicorn.conf.py server.app:app` from the repo root, on a free port."""

    name = "gunicorn"

    def __init__(self, data_dir, env, port=None):
        super().__init__(data_dir, port)
        self.env = dict(env)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def command(self):
        # gunicorn 27 opens a control socket at ~/.gunicorn/gunicorn.ctl by default,
        # one path shared by every gunicorn of the user: keep ours private.
        return [str(REPO_ROOT / ".venv" / "bin" / "gunicorn"), "-c", "gunicorn.conf.py",
                "--control-socket", str(self.data_dir / "gunicorn.ctl"), "server.app:app"]

    def popen_kwargs(self):
        return {"cwd": REPO_ROOT, "env": {**self.env, "OG_BIND": f"127.0.0.1:{self.port}"}}

    def ready(self):
        # Any HTTP answer means a worker has booted; an unknown route touches no backend.
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            connection.request("GET", "/__readiness_probe__")
            connection.getresponse().read()
            return True
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def _signal_and_wait(self, signum, timeout):
        code = super()._signal_and_wait(signum, timeout)
        # The master stops its workers on SIGTERM; after a SIGKILL of the master (or a
        # hang) its workers may remain, so clear the process group we created.
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return code
