"""CPU time of the processes under test, read from /proc, to show where the cores went.

On two cores everything competes (API workers, Redis, MariaDB, the ingest worker and
the load generator itself), so each measured window records CPU seconds per role.
"""
import os
import time

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of one live process, in seconds (0.0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return [int(child) for child in listing.read().split()]
    except OSError:
        return []


def machine_busy_seconds():
    """CPU seconds all cores spent not idle since boot (/proc/stat), every process counted."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICKS


class CpuMeter:
    """CPU seconds per role between start() and stop(); roles map to pid lists.
    "machine" is every process on the host, ours and other people's."""

    def __init__(self, roles):
        self.roles = roles  # {"api": callable -> pids, ...}
        self._before = {}
        self._started = None

    def _sample(self):
        return {role: {pid: cpu_seconds(pid) for pid in pids()} for role, pids in self.roles.items()}

    def start(self):
        self._before = self._sample()
        self._machine = machine_busy_seconds()
        self._started = time.monotonic()
        return self

    def stop(self):
        """{role: cores used on average} over the window (1.0 = one core busy)."""
        elapsed = time.monotonic() - self._started
        machine = machine_busy_seconds() - self._machine
        after = self._sample()
        used = {}
        for role, pids in after.items():
            before = self._before.get(role, {})
            # A pid that appeared during the window counts from zero.
            seconds = sum(value - before.get(pid, 0.0) for pid, value in pids.items())
            used[role] = round(seconds / elapsed, 3) if elapsed else None
        used["machine"] = round(machine / elapsed, 3) if elapsed else None
        return used


def api_pids(server):
    """A master and its workers: gunicorn's (the API), or nginx's (the proxy)."""
    return lambda: [server.process.pid, *children(server.process.pid)] if server.running else []


def pid_of(server):
    return lambda: [server.process.pid] if server is not None and server.running else []



def pids_of(servers):
    """The pids of several servers (e.g. a cluster's nodes), those running."""
    return lambda: [server.process.pid for server in servers if server.running]
