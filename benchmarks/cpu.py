"""CPU time per process role, from /proc: on two cores the API, Redis, MariaDB, the worker and
the load generator all compete, so each window records who used the cores."""
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


class CpuMeter:
    """{role: cores used on average} between start() and stop() (1.0 = one core busy); roles
    map to callables listing pids; "machine" is every process on the host, ours or not."""

    def __init__(self, roles):
        self.roles = roles

    def _sample(self):
        with open("/proc/stat") as stat:  # all cores' time not idle nor iowait since boot
            fields = [int(x) for x in stat.readline().split()[1:9]]
        return {**{role: {pid: cpu_seconds(pid) for pid in pids()}
                   for role, pids in self.roles.items()},
                "machine": {0: (sum(fields) - fields[3] - fields[4]) / TICKS}}

    def start(self):
        self._before, self._started = self._sample(), time.monotonic()
        return self

    def stop(self):
        elapsed = time.monotonic() - self._started
        # A pid that appeared during the window counts from zero.
        seconds = {role: sum(value - self._before[role].get(pid, 0.0)
                             for pid, value in pids.items())
                   for role, pids in self._sample().items()}
        return {role: round(s / elapsed, 3) if elapsed else None for role, s in seconds.items()}


def api_pids(server):
    """A master and its workers: gunicorn's (the API), or nginx's (the proxy)."""
    return lambda: [server.process.pid, *children(server.process.pid)] if server.running else []


def pids_of(servers):
    """The pids of those of the servers running (e.g. a cluster's nodes)."""
    return lambda: [s.process.pid for s in servers if s is not None and s.running]


def pid_of(server):
    return pids_of([server])
