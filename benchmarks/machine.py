"""The machine and software the figures were measured on, for the report."""
import os
import platform
import re
import subprocess
from importlib import metadata

from harness.servers import REPO_ROOT, nginx_binary


def _first_line(argv):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return ((done.stdout or done.stderr).strip().splitlines() or [None])[0]


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as info:
            match = re.search(r"^model name\s*:\s*(.+)$", info.read(), re.M)
    except OSError:
        return None
    return match.group(1) if match else None


def _memory_gib():
    try:
        with open("/proc/meminfo") as info:
            kib = int(re.search(r"^MemTotal:\s*(\d+)", info.read(), re.M).group(1))
    except (OSError, AttributeError):
        return None
    return round(kib / 2**20, 1)


def load_average():
    return [round(x, 2) for x in os.getloadavg()]


def _version(package):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe():
    commit = _first_line(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _first_line(["git", "-C", str(REPO_ROOT), "status", "--porcelain"])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "os": _first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": platform.python_version(),
        "redis": _first_line(["redis-server", "--version"]),
        "mariadb": _first_line(["mariadbd", "--version"]),
        "wrk": _first_line(["wrk", "-v"]),
        "nginx": _first_line([nginx_binary(), "-v"]),
        "packages": {name: _version(name) for name in
                     ("gunicorn", "gevent", "Flask", "redis", "hiredis", "SQLAlchemy", "PyMySQL")},
        "git_commit": commit + (" (uncommitted changes)" if dirty else "") if commit else None,
        "load_average_before": load_average(),
    }
