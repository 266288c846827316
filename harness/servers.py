"""Private redis-server, mariadbd and gunicorn processes for the tests.

Each runs on a free loopback port with its own data dir, is Popen'ed directly (so its
pid is ours to SIGTERM or SIGKILL) and can be stopped, killed and started again on the
same port and dir, which is how later tests crash the stores under load.
"""
import ctypes
import os
import random
import shutil
import signal
import socket
import subprocess
import time
import http.client
from dataclasses import dataclass
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

    clears_group = False
    """A master with workers (gunicorn, nginx): after a SIGKILL of the master (or a hang)
    its workers may remain, so the process group we created is cleared after a stop."""

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
        if self.clears_group:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
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
    """`gunicorn -c gunicorn.conf.py` (which serves server/wsgi.py) from the repo root,
    on a free port."""

    name = "gunicorn"
    clears_group = True

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
                "--control-socket", str(self.data_dir / "gunicorn.ctl")]

    def popen_kwargs(self):
        return {"cwd": REPO_ROOT, "env": {**self.env, "OG_BIND": f"127.0.0.1:{self.port}"}}

    def ready(self):
        # Any HTTP answer means a worker has booted.
        return _http_probe(http.client.HTTPConnection("127.0.0.1", self.port, timeout=1))



# --- a local Redis Cluster -------------------------------------------------------------

CLUSTER_SLOTS = 16384
CLUSTER_BUS_OFFSET = 10000
"""The cluster bus of a node listens on its port + 10000, so node ports stay <= 55535."""
CLUSTER_PORT_RANGE = (20000, 45000)
CLUSTER_NODE_TIMEOUT_MS = 1000
"""cluster-node-timeout of the test cluster: a SIGKILLed master is replaced in ~2-3 s."""
CLUSTER_READY_TIMEOUT_S = 60.0
"""Seconds to start the nodes, form the cluster and see it healthy."""
CLUSTER_RESTORE_TIMEOUT_S = 30.0
"""Seconds `RedisCluster.restore` tries to heal the cluster before building a new one."""
CLUSTER_FAILOVER_TIMEOUT_S = 30.0
CLUSTER_RESHARD_TIMEOUT_S = 60.0
_UNHEALTHY_FLAGS = frozenset({"fail", "fail?", "handshake", "noaddr"})


def _ephemeral_port_range():
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _port_is_free(port):
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port(taken=()):
    """A loopback port P such that P and its cluster bus port P + 10000 are both free.

    Picked at random below the kernel's ephemeral range when the range allows it
    (20000-22767 for the usual 32768-60999), so that while a test has a node down no
    outgoing connection can be given its port or its bus port and block the restart.
    `taken`: ports (node or bus) already handed out, never returned as P or P + 10000.
    """
    low, high = CLUSTER_PORT_RANGE
    below_ephemeral = min(high, _ephemeral_port_range()[0] - CLUSTER_BUS_OFFSET)
    candidates = range(low, below_ephemeral) if below_ephemeral - low >= 100 else range(low, high)
    taken = set(taken)
    pick = random.SystemRandom()
    for _ in range(1000):
        port = pick.choice(candidates)
        bus = port + CLUSTER_BUS_OFFSET
        if port in taken or bus in taken:
            continue
        if _port_is_free(port) and _port_is_free(bus):
            return port
    raise RuntimeError(f"no free port P with P + {CLUSTER_BUS_OFFSET} free in {candidates}")


@dataclass(frozen=True)
class ClusterNodeEntry:
    """One line of CLUSTER NODES: how one node sees one node (itself if `myself`)."""

    node_id: str
    port: int
    flags: frozenset
    master_id: str  # None for a master
    config_epoch: int
    link_state: str
    slots: tuple  # inclusive (first, last) ranges
    open_slots: tuple  # "[slot->-id]" (migrating) / "[slot-<-id]" (importing), myself only

    @classmethod
    def parse(cls, line):
        parts = line.split()
        address = parts[1].split(",")[0].split("@")[0]
        ranges, open_slots = [], []
        for item in parts[8:]:
            if item.startswith("["):
                open_slots.append(item)
            else:
                first, _, last = item.partition("-")
                ranges.append((int(first), int(last or first)))
        return cls(node_id=parts[0], port=int(address.rpartition(":")[2] or 0),
                   flags=frozenset(parts[2].split(",")),
                   master_id=None if parts[3] == "-" else parts[3],
                   config_epoch=int(parts[6]), link_state=parts[7],
                   slots=tuple(ranges), open_slots=tuple(open_slots))

    @property
    def role(self):
        if "master" in self.flags:
            return "master"
        return "replica" if "slave" in self.flags else "unknown"

    @property
    def myself(self):
        return "myself" in self.flags

    @property
    def healthy(self):
        return not (self.flags & _UNHEALTHY_FLAGS)

    def has_slot(self, slot):
        return any(first <= slot <= last for first, last in self.slots)

    def slot_set(self):
        return {slot for first, last in self.slots for slot in range(first, last + 1)}

    def signature(self):
        """What all nodes must agree on about this node."""
        return (self.node_id, self.port, self.role, self.master_id, self.slots)


class RedisClusterNode(RedisServer):
    """One `redis-server --cluster-enabled yes` of a RedisCluster.

    Like RedisServer (AOF fsynced on every write, noeviction), plus nodes.conf in its data
    dir: started again on the same port and dir it comes back with its data and with its
    identity (`node_id`), and rejoins the cluster.
    """

    name = "redis-cluster-node"

    def __init__(self, data_dir, port, node_timeout_ms=CLUSTER_NODE_TIMEOUT_MS):
        super().__init__(data_dir, port)
        self.node_timeout_ms = node_timeout_ms
        self.node_id = None

    def __repr__(self):
        return f"<cluster node 127.0.0.1:{self.port} {(self.node_id or '?')[:8]}>"

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    @property
    def bus_port(self):
        return self.port + CLUSTER_BUS_OFFSET

    def command(self):
        return super().command() + [
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(self.data_dir / "nodes.conf"),
            "--cluster-node-timeout", str(self.node_timeout_ms),
            # However long a replica was cut off from its master, it may be promoted.
            "--cluster-replica-validity-factor", "0",
            # A replica (re)joining gets its full sync at once, not after the default 5 s
            # wait for more replicas to share it.
            "--repl-diskless-sync-delay", "0"]

    def after_start(self):
        self.node_id = self.execute("CLUSTER", "MYID")

    def execute(self, *args, timeout=5.0):
        """One command on a new single connection to this node (not cluster-aware)."""
        client = self.client(socket_timeout=timeout, socket_connect_timeout=min(timeout, 2.0),
                             single_connection_client=True)
        try:
            return client.execute_command(*args)
        finally:
            client.close()

    def cluster_info(self):
        """CLUSTER INFO as a dict of strings (cluster_state, cluster_slots_ok, ...)."""
        text = self.execute("CLUSTER", "INFO")
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def cluster_nodes(self):
        """CLUSTER NODES, parsed: this node's view of every node it knows."""
        return [ClusterNodeEntry.parse(line) for line in self.execute("CLUSTER", "NODES").splitlines()
                if line.strip()]

    def myself(self):
        """This node's CLUSTER NODES line about itself: its own idea of its role and slots."""
        return next(entry for entry in self.cluster_nodes() if entry.myself)

    def replication_info(self):
        client = self.client(socket_timeout=5, socket_connect_timeout=2)
        try:
            return client.info("replication")
        finally:
            client.close()


@dataclass
class _Killed:
    at: float
    entry: ClusterNodeEntry  # the node's own CLUSTER NODES line just before the SIGKILL
    replica_ids: tuple


class RedisCluster:
    """Six cluster-enabled redis-servers on loopback: three masters with one replica each.

    Formed with `redis-cli --cluster create ... --cluster-replicas 1`, every node in its own
    data dir under `base_dir`. Nodes can be SIGKILLed (`kill`), failed over
    (`wait_failover`), restarted on the same port and dir (`restart`) and slots moved
    (`reshard`); `restore` brings the cluster back to three masters with one replica each,
    or builds a new one. Every wait is bounded and fails with a RuntimeError naming what
    was still wrong. Roles are read live from CLUSTER NODES: after a failover the
    node objects in `.nodes` keep their identity but not their role.
    """

    node_class = RedisClusterNode
    """What each node runs as (a subclass may change its redis-server options)."""
    MASTERS = 3
    SIZE = 6

    def __init__(self, base_dir, node_timeout_ms=CLUSTER_NODE_TIMEOUT_MS):
        self.base_dir = Path(base_dir)
        self.node_timeout_ms = node_timeout_ms
        self.nodes = []
        self.generation = 0
        self.rebuilds = 0
        self.last_restore_error = None
        self.timings = {}
        """Seconds taken by the last `start`, `failover` (from the kill to the new master
        seen by all), `restart`, `reshard` and `restore`."""
        self._clients = []
        self._killed = {}
        self._retired_ports = set()

    def __repr__(self):
        return f"<RedisCluster {[node.port for node in self.nodes]}>"

    # --- life cycle ----------------------------------------------------------------

    def start(self, timeout=CLUSTER_READY_TIMEOUT_S):
        """Start six nodes on free ports, form the cluster, wait until it is healthy."""
        if self.nodes:
            return self
        began = time.monotonic()
        deadline = began + timeout
        self.generation += 1
        directory = self.base_dir / f"cluster-{self.generation}"
        taken = set(self._retired_ports)
        try:
            for index in range(self.SIZE):
                node = self._start_node(directory, index, taken, deadline)
                taken |= {node.port, node.bus_port}
                self.nodes.append(node)
            self._create(deadline)
            self._wait_for(self.problems, deadline, "a new cluster healthy")
        except BaseException:
            self.stop()
            self.nodes = []
            raise
        self.timings["start"] = time.monotonic() - began
        return self

    def _start_node(self, directory, index, taken, deadline):
        # A free port can be taken by someone else before redis-server binds it (it then
        # exits at once): try again with another port.
        for attempt in range(5):
            port = free_cluster_port(taken)
            node = self.node_class(directory / f"node-{index}-{port}", port, self.node_timeout_ms)
            try:
                return node.start(max(1.0, deadline - time.monotonic()))
            except RuntimeError:
                node.kill()
                if attempt == 4 or time.monotonic() > deadline:
                    raise

    def _create(self, deadline):
        command = ["redis-cli", "--cluster", "create", *[node.addr for node in self.nodes],
                   "--cluster-replicas", "1", "--cluster-yes"]
        self._run_cli(command, deadline, "redis-cli --cluster create")

    @staticmethod
    def _run_cli(command, deadline, what):
        try:
            result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True,
                                    text=True, timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(f"{what} did not finish in time:\n{error.stdout}\n{error.stderr}")
        if result.returncode != 0:
            raise RuntimeError(f"{what} exited with {result.returncode}:\n"
                               f"{result.stdout[-LOG_TAIL_BYTES:]}\n{result.stderr[-LOG_TAIL_BYTES:]}")
        return result.stdout

    def stop(self):
        """Close the clients handed out and stop every node (SIGTERM, then SIGKILL)."""
        self.close_clients()
        for node in self.nodes:
            node.stop()

    def rebuild(self, timeout=CLUSTER_READY_TIMEOUT_S):
        """Throw the nodes and their data away and start a new cluster on new dirs and on
        ports none of this object's earlier clusters used (so no stale client reaches it)."""
        self.close_clients()
        old = self.base_dir / f"cluster-{self.generation}"
        for node in self.nodes:
            node.kill()
            self._retired_ports |= {node.port, node.bus_port}
        self.nodes = []
        self._killed.clear()
        shutil.rmtree(old, ignore_errors=True)
        self.rebuilds += 1
        return self.start(timeout)

    def ensure_healthy(self, timeout=CLUSTER_RESTORE_TIMEOUT_S):
        """Start every node that is down, then wait until `problems()` is empty.

        While waiting, a master left without a replica gets one (CLUSTER REPLICATE from a
        spare node: a second replica of another master, or a master without slots).
        Raises RuntimeError if the cluster is not healthy within `timeout`.
        """
        began = time.monotonic()
        deadline = began + timeout
        for node in self.nodes:
            if not node.running:
                node.start(max(1.0, deadline - time.monotonic()))
                self._killed.pop(node, None)
        last_repair = 0.0
        while True:
            problems = self.problems()
            if not problems:
                return self
            now = time.monotonic()
            if now > deadline:
                raise RuntimeError(f"{self} not healthy within {timeout} s: {problems}; "
                                   f"CLUSTER NODES as each running node sees it:\n"
                                   + self._views_text())
            # Give the cluster time to settle by itself (a restarted master turns replica
            # within a few node timeouts) before moving replicas around.
            if now - began > 3 * self.node_timeout_ms / 1000 and now - last_repair > 3.0:
                if self._reattach_replicas():
                    last_repair = now
            time.sleep(POLL_S * 2)

    def _views_text(self):
        """Each running node's CLUSTER NODES, for a failure message."""
        views = []
        for node in self.nodes:
            if node.running:
                try:
                    views.append(f"{node}:\n{node.execute('CLUSTER', 'NODES')}")
                except redislib.RedisError as error:
                    views.append(f"{node}: {error}")
        return "\n".join(views)

    def restore(self, timeout=CLUSTER_RESTORE_TIMEOUT_S):
        """`ensure_healthy`, and if that fails in `timeout`, `rebuild`. Returns self."""
        began = time.monotonic()
        try:
            if not self.nodes:
                raise RuntimeError("no cluster")
            self.ensure_healthy(timeout)
        except (RuntimeError, redislib.RedisError) as error:
            self.last_restore_error = str(error)
            self.rebuild()
        self.timings["restore"] = time.monotonic() - began
        return self

    # --- state -----------------------------------------------------------------------

    def problems(self):
        """Why the cluster is not healthy; [] when it is.

        Healthy: all six nodes running; each says cluster_state:ok with 16384 slots ok and
        knows six nodes, none flagged fail/fail?/handshake/noaddr, no slot migrating or
        importing; all agree on every node's role, master and slots; three masters own
        slots and each has exactly one replica, whose link is up and not syncing.
        """
        problems, views = [], {}
        for node in self.nodes:
            if not node.running:
                problems.append(f"{node} is not running")
                continue
            try:
                info, entries = node.cluster_info(), node.cluster_nodes()
            except redislib.RedisError as error:
                problems.append(f"{node} does not answer: {error!r}")
                continue
            views[node] = entries
            if info.get("cluster_state") != "ok":
                problems.append(f"{node} says cluster_state:{info.get('cluster_state')}")
            if info.get("cluster_slots_ok") != str(CLUSTER_SLOTS):
                problems.append(f"{node} says cluster_slots_ok:{info.get('cluster_slots_ok')}")
            if len(entries) != self.SIZE:
                problems.append(f"{node} knows {len(entries)} nodes")
            for entry in entries:
                if not entry.healthy:
                    problems.append(f"{node} sees {entry.port} as {','.join(sorted(entry.flags))}")
                if entry.open_slots:
                    problems.append(f"{node} has open slots {entry.open_slots[:3]}")
        if problems:
            return problems
        problems = self._disagreements(views)
        if problems:
            return problems
        entries = views[self.nodes[0]]
        masters = [entry for entry in entries if entry.role == "master"]
        if len(masters) != self.MASTERS:
            problems.append(f"{len(masters)} masters, not {self.MASTERS}")
        for master in masters:
            replicas = [entry for entry in entries if entry.master_id == master.node_id]
            if not master.slots:
                problems.append(f"master {master.port} has no slots")
            if len(replicas) != 1:
                problems.append(f"master {master.port} has {len(replicas)} replicas")
        if problems:
            return problems
        for node in self.nodes:
            role = next((entry.role for entry in entries if entry.node_id == node.node_id), None)
            if role is None:
                problems.append(f"{node} is not part of the cluster")
                continue
            try:
                replication = node.replication_info()
            except redislib.RedisError as error:
                problems.append(f"{node} does not answer INFO: {error!r}")
                continue
            if role == "replica":
                if replication.get("master_link_status") != "up":
                    problems.append(f"replica {node} link {replication.get('master_link_status')}")
                elif replication.get("master_sync_in_progress"):
                    problems.append(f"replica {node} still syncing")
            elif replication.get("connected_slaves") != 1:
                problems.append(f"master {node} has {replication.get('connected_slaves')} "
                                "connected replicas")
        return problems

    def healthy(self):
        return not self.problems()

    def _disagreements(self, views):
        signatures = {node: sorted(entry.signature() for entry in entries if entry.healthy)
                      for node, entries in views.items()}
        distinct = {tuple(signature) for signature in signatures.values()}
        if len(distinct) <= 1:
            return []
        return ["nodes disagree about the configuration: " + "; ".join(
            f"{node.port} sees " + " ".join(
                f"{port}:{role}{'->' + master[:6] if master else ''}:{len(slots)}r"
                for _, port, role, master, slots in signature)
            for node, signature in signatures.items())]

    def _views(self, nodes=None):
        views = {}
        for node in nodes if nodes is not None else self.nodes:
            if node.running:
                try:
                    views[node] = node.cluster_nodes()
                except redislib.RedisError:
                    pass
        return views

    def _own_entries(self):
        return {node: next(entry for entry in entries if entry.myself)
                for node, entries in self._views().items()}

    def node(self, node_id):
        """The node object with this cluster node id."""
        return next(node for node in self.nodes if node.node_id == node_id)

    def masters(self):
        """Running nodes that are masters by their own CLUSTER NODES line, in `.nodes` order."""
        return [node for node, entry in self._own_entries().items() if entry.role == "master"]

    def replicas(self):
        """Running nodes that are replicas by their own CLUSTER NODES line, in `.nodes` order."""
        return [node for node, entry in self._own_entries().items() if entry.role == "replica"]

    def replicas_of(self, master):
        """Running nodes that say they replicate `master`."""
        return [node for node, entry in self._own_entries().items()
                if entry.master_id == master.node_id]

    def master_of(self, replica):
        """The node `replica` says it replicates (None for a master)."""
        master_id = replica.myself().master_id
        return self.node(master_id) if master_id else None

    def slots_of(self, master):
        """The set of slots `master` says it owns."""
        return master.myself().slot_set()

    def master_of_slot(self, slot):
        """The running master that owns `slot`: of the running nodes that claim it, the one
        with the highest config epoch (Redis' own rule; a restarted stale master loses)."""
        best = None
        for node, entry in self._own_entries().items():
            if entry.role == "master" and entry.has_slot(slot):
                if best is None or entry.config_epoch > best[0]:
                    best = (entry.config_epoch, node)
        return best[1] if best else None

    @property
    def url(self):
        """redis://127.0.0.1:PORT/0 of the first running master in `.nodes` order (so it
        points at a live node even after that first master was killed or failed over)."""
        masters = self.masters()
        running = masters or [node for node in self.nodes if node.running]
        if not running:
            raise RuntimeError(f"{self}: no node is running")
        return running[0].url

    def client(self, node=None, **kwargs):
        """A new redis.RedisCluster on `.url`, or learning the slot map from `node` first
        (decode_responses=True unless overridden). Closed by `close_clients` (the
        `cluster` fixture does at teardown) or `stop`."""
        options = {"decode_responses": True, **kwargs}
        client = (redislib.RedisCluster(host="127.0.0.1", port=node.port, **options) if node
                  else redislib.RedisCluster.from_url(self.url, **options))
        self._clients.append(client)
        return client

    def close_clients(self):
        clients, self._clients = self._clients, []
        for client in clients:
            try:
                client.close()
            except redislib.RedisError:
                pass

    def flushall(self):
        """FLUSHALL on every master, each followed by WAIT for its replicas (5 s at most)."""
        for master in self.masters():
            client = master.client(single_connection_client=True)
            try:
                client.flushall()
                replicas = int(client.info("replication").get("connected_slaves", 0))
                if replicas:
                    client.execute_command("WAIT", replicas, 5000)
            finally:
                client.close()

    # --- faults and changes ------------------------------------------------------------

    def kill(self, node):
        """SIGKILL `node` (waited for), remembering its role, slots and replicas for
        `wait_failover`."""
        entry, replica_ids = None, ()
        if node.running:
            try:
                entry = node.myself()
                replica_ids = tuple(replica.node_id for replica in self.replicas_of(node))
            except redislib.RedisError:
                pass
        node.kill()
        self._killed[node] = _Killed(time.monotonic(), entry, replica_ids)
        return node

    def wait_failover(self, old_master, timeout=CLUSTER_FAILOVER_TIMEOUT_S):
        """Wait until a replica of `old_master` (killed with `kill`) is its new master.

        Returns the promoted node once every surviving node says cluster_state:ok and sees
        that node as the owner of all of `old_master`'s slots, the node itself included.
        """
        killed = self._killed.get(old_master)
        if killed is None or killed.entry is None or killed.entry.role != "master":
            raise ValueError(f"{old_master} was not a master killed with RedisCluster.kill")
        firsts = [first for first, _ in killed.entry.slots]
        promoted = {}

        def problems():
            survivors = [node for node in self.nodes if node is not old_master and node.running]
            found = []
            owners = set()
            for node in survivors:
                try:
                    info, entries = node.cluster_info(), node.cluster_nodes()
                except redislib.RedisError as error:
                    found.append(f"{node} does not answer: {error!r}")
                    continue
                if info.get("cluster_state") != "ok":
                    found.append(f"{node} says cluster_state:{info.get('cluster_state')}")
                for slot in firsts:
                    owner = next((entry.node_id for entry in entries
                                  if entry.role == "master" and entry.has_slot(slot)), None)
                    owners.add(owner)
            if len(owners) != 1 or next(iter(owners)) not in killed.replica_ids:
                found.append(f"owners of {old_master}'s slots: {owners}, "
                             f"its replicas were {killed.replica_ids}")
            if not found:
                promoted["node"] = self.node(next(iter(owners)))
            return found

        self._wait_for(problems, time.monotonic() + timeout, f"failover of {old_master}")
        self.timings["failover"] = time.monotonic() - killed.at
        return promoted["node"]

    def restart(self, node, timeout=CLUSTER_READY_TIMEOUT_S):
        """Start `node` again on its port and dir and wait until it has rejoined: every
        running node sees it healthy with the role it claims, it sees every running node
        healthy, a master's claim is not stale, a replica's link is up and synced, and
        it says cluster_state:ok whenever another running node does."""
        began = time.monotonic()
        deadline = began + timeout
        node.start(timeout)
        self._killed.pop(node, None)
        self._wait_for(lambda: self._rejoin_problems(node), deadline, f"{node} rejoining")
        self.timings["restart"] = time.monotonic() - began
        return node

    def _rejoin_problems(self, node):
        try:
            own_entries = node.cluster_nodes()
            own_state = node.cluster_info().get("cluster_state")
        except redislib.RedisError as error:
            return [f"{node} does not answer: {error!r}"]
        me = next(entry for entry in own_entries if entry.myself)
        problems = []
        running_ids = {other.node_id for other in self.nodes if other.running}
        for entry in own_entries:
            if entry.node_id in running_ids and not entry.healthy:
                problems.append(f"{node} sees {entry.port} as {','.join(sorted(entry.flags))}")
        for other in self.nodes:
            if other is node or not other.running:
                continue
            try:
                entries, state = other.cluster_nodes(), other.cluster_info().get("cluster_state")
            except redislib.RedisError as error:
                problems.append(f"{other} does not answer: {error!r}")
                continue
            seen = next((entry for entry in entries if entry.node_id == node.node_id), None)
            if seen is None or not seen.healthy:
                problems.append(f"{other} sees {node} as {seen and ','.join(sorted(seen.flags))}")
            elif (seen.role, seen.master_id) != (me.role, me.master_id):
                problems.append(f"{other} sees {node} as {seen.role} of {seen.master_id}, "
                                f"it says {me.role} of {me.master_id}")
            if state == "ok" and own_state != "ok":
                problems.append(f"{node} says cluster_state:{own_state}, {other} says ok")
            if me.role == "master":
                for claim in entries:
                    if (claim.myself and claim.role == "master" and claim.config_epoch > me.config_epoch
                            and claim.slot_set() & me.slot_set()):
                        problems.append(f"{node} claims slots of {other} with an older epoch")
        if me.role == "replica":
            replication = node.replication_info()
            if replication.get("master_link_status") != "up":
                problems.append(f"{node} link {replication.get('master_link_status')}")
            elif replication.get("master_sync_in_progress"):
                problems.append(f"{node} still syncing")
        return problems

    def reshard(self, slots, from_node, to_node, timeout=CLUSTER_RESHARD_TIMEOUT_S):
        """Move `slots` slots (a count) from master `from_node` to master `to_node` with
        `redis-cli --cluster reshard`, keys included, bounded by `timeout`.

        Waits first until the running nodes agree and no slot is open (redis-cli refuses
        otherwise), and after until every running node sees `to_node` as the owner of the
        moved slots. Returns the sorted list of slots moved.
        """
        began = time.monotonic()
        deadline = began + timeout
        self._wait_for(self._reshard_blockers, deadline, "a cluster ready to reshard")
        before = self.slots_of(from_node)
        self._run_cli(["redis-cli", "--cluster", "reshard", from_node.addr,
                       "--cluster-from", from_node.node_id, "--cluster-to", to_node.node_id,
                       "--cluster-slots", str(slots), "--cluster-yes"],
                      deadline, f"redis-cli --cluster reshard of {slots} slots")
        moved = sorted(before - self.slots_of(from_node))
        firsts_lasts = {moved[0], moved[-1]} if moved else set()

        def problems():
            found = list(self._reshard_blockers())
            for node, entries in self._views().items():
                owner = {slot: next((entry.node_id for entry in entries
                                     if entry.role == "master" and entry.has_slot(slot)), None)
                         for slot in firsts_lasts}
                if any(owner_id != to_node.node_id for owner_id in owner.values()):
                    found.append(f"{node} sees moved slots owned by {set(owner.values())}")
            return found

        self._wait_for(problems, deadline, "the moved slots known to every node")
        self.timings["reshard"] = time.monotonic() - began
        return moved

    def _reshard_blockers(self):
        views = self._views()
        problems = self._disagreements(views)
        for node, entries in views.items():
            for entry in entries:
                if entry.open_slots:
                    problems.append(f"{node} has open slots {entry.open_slots[:3]}")
        return problems

    def _reattach_replicas(self):
        """Give each master without a replica a spare node; True if any was moved."""
        views = self._views()
        if len(views) != self.SIZE or self._disagreements(views):
            return False
        entries = [entry for entry in views[self.nodes[0]] if entry.healthy]
        replicas_of = {entry.node_id: [replica for replica in entries
                                       if replica.master_id == entry.node_id]
                       for entry in entries if entry.role == "master"}
        orphans = [entry for entry in entries
                   if entry.role == "master" and entry.slots and not replicas_of[entry.node_id]]
        spares = [entry for entry in entries if entry.role == "master" and not entry.slots
                  and not replicas_of[entry.node_id]]
        for master_id, replicas in replicas_of.items():
            spares.extend(replicas[1:])
        moved = False
        for orphan, spare in zip(orphans, spares):
            try:
                self.node(spare.node_id).execute("CLUSTER", "REPLICATE", orphan.node_id)
                moved = True
            except redislib.RedisError:
                pass
        return moved

    @staticmethod
    def _wait_for(problems, deadline, what):
        while True:
            found = problems()
            if not found:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: not reached in time; still {found}")
            time.sleep(POLL_S * 2)


# --- the reverse proxy in front of gunicorn (make run's nginx) --------------------------

NGINX_RENDERER = REPO_ROOT / "provision" / "nginx_conf.py"


def nginx_binary():
    """nginx from Debian's package (provision/packages.sh); /usr/sbin is not on every PATH."""
    return shutil.which("nginx") or "/usr/sbin/nginx"


def _http_probe(connection):
    # Any HTTP answer means the server is up; an unknown route touches no backend.
    try:
        connection.request("GET", "/__readiness_probe__")
        connection.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class UnixGunicornServer(GunicornServer):
    """gunicorn as `make run` starts it behind nginx: listening on a unix socket
    (OG_GUNICORN_BIND=unix:PATH), not on a TCP port. `.upstream` is what nginx proxies to."""

    name = "gunicorn-unix"

    def __init__(self, data_dir, env):
        super().__init__(data_dir, env)
        self.socket_path = self.data_dir / "gunicorn.sock"
        self.port = None

    @property
    def upstream(self):
        return f"unix:{self.socket_path}"

    @property
    def url(self):
        raise AttributeError("a unix-socket gunicorn has no http:// URL; use .upstream")

    def popen_kwargs(self):
        return {"cwd": REPO_ROOT, "env": {**self.env, "OG_GUNICORN_BIND": self.upstream}}

    def ready(self):
        return _http_probe(_UnixHTTPConnection(str(self.socket_path), timeout=1))


class NginxServer(ServerProcess):
    """The project's nginx (provision/nginx.conf.template, rendered by
    provision/nginx_conf.py exactly as `make run` does) on a free loopback port, in the
    foreground, in front of `upstream` (gunicorn's unix:PATH). Its prefix (pid, logs/,
    tmp/, nginx.conf) is data_dir; error.log is under logs/, and stdout/stderr go to
    `.log_path`. Stopped with SIGQUIT (graceful), like make run does; killed with the
    process group. `per_client` sets the requests in progress per client address."""

    name = "nginx"
    clears_group = True

    def __init__(self, data_dir, upstream, port=None, per_client=None):
        super().__init__(data_dir, port)
        self.upstream = upstream
        self.per_client = per_client

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def conf_path(self):
        return self.data_dir / "nginx.conf"

    @property
    def error_log_path(self):
        return self.data_dir / "logs" / "error.log"

    def render(self):
        # .venv's python, as provision/run.sh renders it for make run.
        python = str(REPO_ROOT / ".venv" / "bin" / "python")
        command = [python, str(NGINX_RENDERER), "--listen", f"127.0.0.1:{self.port}",
                   "--upstream", self.upstream, "--prefix", str(self.data_dir)]
        if self.per_client is not None:
            command += ["--per-client", str(self.per_client)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"{NGINX_RENDERER.name} failed: {done.stderr}")
        return self.conf_path

    def command(self):
        return [nginx_binary(), "-p", str(self.data_dir), "-c", str(self.conf_path)]

    def start(self, timeout=READY_TIMEOUT_S):
        if not self.running:
            if not os.access(nginx_binary(), os.X_OK):
                raise RuntimeError("nginx is not installed: `make setup` (provision/packages.sh) "
                                   "installs it")
            self.render()
        return super().start(timeout)

    def ready(self):
        return _http_probe(http.client.HTTPConnection("127.0.0.1", self.port, timeout=1))

    def stop(self, timeout=STOP_TIMEOUT_S):
        return self._signal_and_wait(signal.SIGQUIT, timeout)


    def error_log(self):
        return log_tail(self.error_log_path)
