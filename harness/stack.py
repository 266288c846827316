"""The processes under test: private Redis and MariaDB, the API per backend, the worker.

Built on the process objects of harness/servers.py: each child is Popen'ed
into its own session on a free loopback port with a throwaway data dir, dies with us
(PR_SET_PDEATHSIG) and is stopped by `Stack.close()` whatever happens.
"""
import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import redis as redislib

from harness.servers import (REPO_ROOT, GunicornServer, MariaDBServer, NginxServer, RedisCluster,
                           RedisClusterNode, RedisServer, ServerProcess, UnixGunicornServer)

PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")
PRODUCT_VARS = ("REDIS_URL", "DATABASE_URL")
INGEST_TIMEOUT_S = 600
"""Bound on one `python -m ingest` command (a 1M-event rebuild or drain included)."""
CLUSTER = "cluster"
"""The store name of the private Redis Cluster (`Stack.env(..., redis=CLUSTER)`)."""
CLUSTER_NODE_TIMEOUT_MS = 5000
"""cluster-node-timeout of the benchmark's cluster: long enough that two cores saturated
by the load never make a node look failed (no failover is wanted here)."""


class BenchRedis(RedisServer):
    """As provision/redis.conf runs it: AOF fsynced every second, no eviction."""

    def command(self):
        return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.data_dir), "--save", "", "--appendonly", "yes",
                "--appendfsync", "everysec", "--maxmemory-policy", "noeviction"]


class BenchClusterNode(RedisClusterNode):
    """A cluster node as BenchRedis runs: AOF fsynced every second (the tests' nodes fsync
    every write)."""

    def command(self):
        argv = super().command()
        argv[argv.index("--appendfsync") + 1] = "everysec"
        return argv


class BenchCluster(RedisCluster):
    """harness/servers.py's six-node cluster (3 masters + 1 replica each) of BenchClusterNodes."""

    node_class = BenchClusterNode


class ProxiedApi:
    """The API as `make run` serves it: gunicorn (the same gunicorn.conf.py) on a unix
    socket, and the project's nginx (provision/nginx.conf.template rendered by
    provision/nginx_conf.py, as make run renders it) in front of it on a loopback port."""

    def __init__(self, gunicorn, nginx):
        self.gunicorn = gunicorn
        self.nginx = nginx

    @property
    def url(self):
        return self.nginx.url

    @property
    def running(self):
        return self.gunicorn.running and self.nginx.running


class IngestWorker(ServerProcess):
    """`python -m ingest` (run until SIGTERM, which finishes the batch in hand)."""

    name = "ingest"

    def __init__(self, data_dir, env):
        super().__init__(data_dir)
        self.env = env

    def command(self):
        return [PYTHON, "-m", "ingest", "run"]

    def popen_kwargs(self):
        return {"cwd": REPO_ROOT, "env": self.env}

    def ready(self):
        return True


def product_env(**settings):
    """This environment without any product setting, plus `settings` (None = unset)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OG_") and k not in PRODUCT_VARS}
    env.update({k: str(v) for k, v in settings.items() if v is not None})
    env.setdefault("OG_INGEST_METRICS_PORT", "0")
    return env


class Stack:
    """Lazily started stores (by name), and APIs and workers on them, all in one temp dir."""

    def __init__(self, workers=None, keep=False):
        self.dir = Path(tempfile.mkdtemp(prefix="og-bench-"))
        self.workers = workers
        self.keep = keep
        self._redis = {}
        self._cluster = None
        self._mariadb = None
        self._exit = contextlib.ExitStack()

    def close(self):
        try:
            self._exit.close()
        finally:
            if not self.keep:
                shutil.rmtree(self.dir, ignore_errors=True)

    def _own(self, server):
        self._exit.callback(server.stop)
        return server.start()

    def redis(self, name="main"):
        if name not in self._redis:
            self._redis[name] = self._own(BenchRedis(self.dir / f"redis-{name}"))
        return self._redis[name]

    def redis_cluster(self):
        """The private Redis Cluster (started on first use, 6 nodes)."""
        if self._cluster is None:
            self._cluster = self._own(BenchCluster(self.dir / "redis-cluster",
                                                   node_timeout_ms=CLUSTER_NODE_TIMEOUT_MS))
        return self._cluster

    def started_redis_cluster(self):
        return self._cluster

    def redis_url(self, name="main"):
        return self.redis_cluster().url if name == CLUSTER else self.redis(name).url

    def redis_client(self, name="main"):
        """A new client on a store (redis.RedisCluster on the cluster); the caller closes it."""
        if name == CLUSTER:
            return redislib.RedisCluster.from_url(self.redis_url(name), decode_responses=True,
                                                  socket_timeout=10, socket_connect_timeout=2)
        return self.redis(name).client()

    def mariadb(self):
        if self._mariadb is None:
            self._mariadb = self._own(MariaDBServer(self.dir / "mariadb"))
        return self._mariadb

    def started_redis(self, name="main"):
        return self._redis.get(name)

    def started_mariadb(self):
        return self._mariadb

    def database_url(self, database="og"):
        """og as user og (docs/API.md), any other database as root (created here if missing)."""
        server = self.mariadb()
        if database == MariaDBServer.DATABASE:
            return server.url
        connection = server.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        finally:
            connection.close()
        return f"mysql+pymysql://root@127.0.0.1:{server.port}/{database}"

    def sqlite_path(self, name="main"):
        return self.dir / f"sqlite-{name}" / "og.sqlite3"

    def env(self, backend, redis="main", database="og", sqlite="main", **extra):
        settings = {"OG_BACKEND": backend, "OG_WORKERS": self.workers}
        if backend == "sqlite":
            settings["OG_SQLITE_PATH"] = self.sqlite_path(sqlite)
        if backend == "redis":
            settings["REDIS_URL"] = self.redis_url(redis)
            settings["DATABASE_URL"] = self.database_url(database)
        settings.update(extra)
        return product_env(**settings)

    @contextlib.contextmanager
    def api(self, label, env):
        """The same gunicorn.conf.py for every backend; yields the running GunicornServer."""
        server = GunicornServer(self.dir / f"api-{label}", env)
        try:
            yield server.start()
        finally:
            server.stop()

    @contextlib.contextmanager
    def proxied_api(self, label, env):
        """gunicorn on a unix socket with nginx in front (harness/servers.py UnixGunicornServer
        and NginxServer, as make run starts them: nginx once gunicorn answers); yields a
        ProxiedApi. nginx is stopped first (SIGQUIT), then gunicorn."""
        gunicorn = UnixGunicornServer(self.dir / f"api-{label}", env)
        nginx = NginxServer(self.dir / f"nginx-{label}", gunicorn.upstream)
        try:
            gunicorn.start()
            nginx.start()
            yield ProxiedApi(gunicorn, nginx)
        finally:
            try:
                nginx.stop()
            finally:
                gunicorn.stop()

    @contextlib.contextmanager
    def ingest_worker(self, env, label="worker"):
        worker = IngestWorker(self.dir / f"ingest-{label}", env)
        try:
            yield worker.start()
        finally:
            worker.stop()

    def ingest(self, env, *args, timeout=INGEST_TIMEOUT_S):
        """Run `python -m ingest ARGS` to completion; return its stdout."""
        done = subprocess.run([PYTHON, "-m", "ingest", *args], cwd=REPO_ROOT, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                              start_new_session=True)
        with open(self.dir / "ingest-commands.log", "ab") as log:
            log.write(b"$ python -m ingest " + " ".join(args).encode() + b"\n" + done.stderr)
        if done.returncode != 0:
            raise RuntimeError(f"python -m ingest {' '.join(args)} exited {done.returncode}:\n"
                               + done.stderr.decode(errors="replace")[-3000:])
        return done.stdout.decode()
