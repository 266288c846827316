"""Fixtures: private Redis / MariaDB / gunicorn processes and in-process apps per backend.

Servers are session-scoped and started on first use; `redis` and `database` hand each
test an empty store. See harness/servers.py for the process objects themselves.
"""
import importlib.util
import json
import itertools
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy

from harness.servers import (REPO_ROOT, GunicornServer, MariaDBServer, NginxServer, RedisCluster,
                           RedisServer, UnixGunicornServer)
from tests.workers import IngestProcess

TESTS_DIR = Path(__file__).resolve().parent
TIERS = ("unit", "integration", "e2e", "browser")
CONFIG_VARS = ("REDIS_URL", "DATABASE_URL")
"""Configuration variables besides OG_*; all of them are cleared for every test."""


def pytest_configure(config):
    # pytest.ini lists the first three tiers; the page's tests in headless Chromium are
    # the fourth (tests/browser), so `-m "not browser"` runs everything without a browser.
    config.addinivalue_line("markers", "browser: the page in headless Chromium against a "
                                       "live stack (tests/browser)")


def pytest_collection_modifyitems(items):
    # Each test is marked with its tier from its folder, so `-m "not e2e"` works.
    for item in items:
        parts = Path(item.path).resolve().relative_to(TESTS_DIR).parts
        if parts and parts[0] in TIERS:
            item.add_marker(parts[0])


def _is_config_var(name):
    return name.startswith("OG_") or name in CONFIG_VARS


# --- the stores --------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """The session's RedisServer (AOF, fsync always); tests may kill/stop/start it."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory):
    """The session's MariaDBServer with database `og`, user og/og; killable and restartable."""
    server = MariaDBServer(tmp_path_factory.mktemp("mariadb")).start()
    yield server
    server.stop()


@pytest.fixture
def redis(redis_server):
    """A decode_responses client on the session Redis, running and FLUSHALLed."""
    redis_server.ensure_running()
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def database(mariadb_server):
    """An SQLAlchemy engine on `og` as user og, with every table in `og` dropped first."""
    mariadb_server.ensure_running()
    mariadb_server.drop_all_tables()
    engine = sqlalchemy.create_engine(mariadb_server.url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """The session's RedisCluster: six nodes, three masters with one replica each.

    Started on first use (~2-3 s), stopped at the end of the session. Prefer `cluster`,
    which hands each test a healthy, empty cluster.
    """
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster(redis_cluster):
    """The session RedisCluster, healthy and FLUSHALLed, for tests that kill/reshard it.

    Before the test: nodes a previous test killed are started again and the cluster is
    waited for until it is healthy (all six nodes up, cluster_state:ok everywhere, three
    masters with one replica each, replicas in sync; a master left without a replica gets
    a spare node); if that takes over 30 s the cluster is thrown away and a new one built
    (new ports: read `.url` / `.nodes` after this fixture, not before). Then every master
    is FLUSHALLed. After the test the clients from `cluster.client()` are closed.
    """
    redis_cluster.restore()
    redis_cluster.flushall()
    yield redis_cluster
    redis_cluster.close_clients()


@pytest.fixture
def memory_dir(tmp_path):
    """A throwaway dir on tmpfs (/dev/shm) when there is one, else tmp_path.

    For long sequential SQLite runs whose subject is logic, not durability: there an
    fsync per commit would dominate the runtime.
    """
    if not os.path.isdir("/dev/shm"):
        yield tmp_path
        return
    directory = tempfile.mkdtemp(prefix="og-test-", dir="/dev/shm")
    yield Path(directory)
    shutil.rmtree(directory, ignore_errors=True)


# --- configuration and apps ----------------------------------------------------------


@pytest.fixture
def env(monkeypatch):
    """`env(NAME=value, ...)` sets configuration variables for the rest of the test.

    Any OG_*, REDIS_URL and DATABASE_URL inherited from the shell is cleared first, so a
    test sees only what it sets. None unsets; other values are str()-ed.
    """
    for name in [n for n in os.environ if _is_config_var(n)]:
        monkeypatch.delenv(name)

    def set_env(**values):
        for name, value in values.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, str(value))

    return set_env


@dataclass
class InProcessApi:
    backend: str
    app: object
    client: object  # Flask test client
    data_interface: object
    env: dict = field(default_factory=dict)

    @property
    def sqlite_path(self):
        return self.env.get("OG_SQLITE_PATH")

    # The one in-process driver: (status, decoded JSON or None) for every call.
    def post(self, path, body):
        """POST `body` (a dict, as JSON; or raw bytes) with Content-Type application/json."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = self.client.post(path, data=data, content_type="application/json")
        return response.status_code, response.get_json(silent=True)

    def get(self, path):
        response = self.client.get(path)
        return response.status_code, response.get_json(silent=True)


_app_copies = itertools.count()


def _fresh_app_module():
    # server/app.py builds `data_interface` at import time from the environment. A
    # private copy of the module per app (rather than importlib.reload of server.app)
    # keeps each app's `data_interface` global its own: a reload would rebind the global
    # that every earlier app's views read, silently switching their backend.
    name = f"_og_app_under_test_{next(_app_copies)}"
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "server" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # Flask(__name__) looks its module up here for root_path
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def _backend_defaults(backend, directory, request, index):
    """Private stores for a backend, unless the caller names its own."""
    if backend == "sqlite":
        return {"OG_SQLITE_PATH": str(directory / f"og-{index}.sqlite3")}
    if backend == "redis":
        return {"REDIS_URL": request.getfixturevalue("redis_server").url,
                "DATABASE_URL": request.getfixturevalue("mariadb_server").url}
    return {}


@pytest.fixture
def make_app(env, tmp_path, request):
    """`make_app(backend, **env)` -> InProcessApi(backend, app, client, data_interface, env).

    Sets OG_BACKEND=backend plus the given variables (through `env`, so they stay set for
    the rest of the test), then executes a private copy of server/app.py, exactly the
    import-time path gunicorn takes. Defaults: sqlite gets a new file in tmp_path
    (`.sqlite_path`); redis gets the session's private Redis and MariaDB URLs (starting
    them on first use).
    """
    indexes = itertools.count()

    def build(backend, **values):
        settings = {"OG_BACKEND": backend,
                    **_backend_defaults(backend, tmp_path, request, next(indexes)), **values}
        env(**settings)
        module = _fresh_app_module()
        return InProcessApi(backend, module.app, module.app.test_client(), module.data_interface,
                            {k: str(v) for k, v in settings.items() if v is not None})

    return build


@pytest.fixture
def gunicorn_server(tmp_path_factory, request):
    """`gunicorn_server(backend, workers=2, **env)` -> a started GunicornServer.

    Runs `.venv/bin/gunicorn -c gunicorn.conf.py server.app:app` from the repo root with
    OG_BIND on a free loopback port, OG_BACKEND, OG_WORKERS and the given variables
    (inherited config variables are dropped; store defaults as for make_app). Returns
    once a worker answers HTTP; `.url` is the base URL, `.env` its whole environment, the log
    is `.log_path`. Every server started is stopped (SIGTERM, then SIGKILL) at teardown.
    """
    started = []

    def start(backend, workers=2, **values):
        directory = tmp_path_factory.mktemp(f"gunicorn-{backend}")
        base = {k: v for k, v in os.environ.items() if not _is_config_var(k)}
        settings = {"OG_BACKEND": backend, "OG_WORKERS": workers,
                    **_backend_defaults(backend, directory, request, 0), **values}
        settings = {k: str(v) for k, v in settings.items() if v is not None}
        server = GunicornServer(directory, {**base, **settings})
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@dataclass
class ProxiedApi:
    """nginx (`make run`'s configuration) in front of gunicorn on a unix socket."""
    url: str
    """The public base URL: nginx's loopback port."""
    nginx: NginxServer
    gunicorn: UnixGunicornServer

    @property
    def port(self):
        return self.nginx.port


@pytest.fixture
def proxied_api(tmp_path_factory, request):
    """`proxied_api(backend, workers=2, per_client=None, **env)` -> a started ProxiedApi.

    As `make run` serves: gunicorn on a unix socket (OG_GUNICORN_BIND=unix:PATH) with
    OG_BACKEND, OG_WORKERS and the given variables (inherited config variables dropped;
    store defaults as for make_app), and nginx in front of it on a free loopback port,
    from the same template and renderer as make run (`per_client`: its limit of requests
    in progress per client address; None: the template's). Returns once both answer
    HTTP. At teardown nginx is stopped (SIGQUIT), then gunicorn (SIGTERM), each SIGKILLed
    if it takes too long.
    """
    started = []

    def start(backend, workers=2, per_client=None, **values):
        directory = tmp_path_factory.mktemp(f"proxied-{backend}")
        base = {k: v for k, v in os.environ.items() if not _is_config_var(k)}
        settings = {"OG_BACKEND": backend, "OG_WORKERS": workers,
                    **_backend_defaults(backend, directory, request, 0), **values}
        settings = {k: str(v) for k, v in settings.items() if v is not None}
        gunicorn = UnixGunicornServer(directory / "gunicorn", {**base, **settings})
        started.append(gunicorn)
        gunicorn.start()
        nginx = NginxServer(directory / "nginx", gunicorn.upstream, per_client=per_client)
        started.append(nginx)
        nginx.start()
        return ProxiedApi(nginx.url, nginx, gunicorn)

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def ingest(tmp_path, redis_server, mariadb_server):
    """`ingest(**settings)` -> a new IngestProcess (not started) on the session's Redis and
    MariaDB, logging into tmp_path. Every one still running at teardown is SIGKILLed."""
    made = []

    def build(name="worker", **settings):
        worker = IngestProcess(tmp_path, name=name, **{
            "REDIS_URL": redis_server.url, "DATABASE_URL": mariadb_server.url, **settings})
        made.append(worker)
        return worker

    yield build
    for worker in made:
        if worker.process is not None:
            worker.kill()
