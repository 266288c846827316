"""The machine and software the figures were measured on, for the report."""
import os
import platform
import re
import subprocess
from importlib import metadata

from harness.servers import REPO_ROOT, nginx_binary

PACKAGES = ("gunicorn", "gevent", "Flask", "redis", "hiredis", "SQLAlchemy", "PyMySQL")


def _first_line(*argv):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return ((done.stdout or done.stderr).strip().splitlines() or [None])[0]


def _proc(path, pattern):
    """The first group of `pattern` in a /proc file (None if absent)."""
    try:
        with open(path) as info:
            return re.search(pattern, info.read(), re.M).group(1)
    except (OSError, AttributeError):
        return None


def _version(package):
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def load_average():
    return [round(x, 2) for x in os.getloadavg()]


def describe():
    commit = _first_line("git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD")
    dirty = _first_line("git", "-C", str(REPO_ROOT), "status", "--porcelain")
    kib = _proc("/proc/meminfo", r"^MemTotal:\s*(\d+)")
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _proc("/proc/cpuinfo", r"^model name\s*:\s*(.+)$"),
        "memory_gib": round(int(kib) / 2**20, 1) if kib else None,
        "kernel": platform.release(),
        "os": _first_line("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"),
        "python": platform.python_version(),
        "redis": _first_line("redis-server", "--version"),
        "mariadb": _first_line("mariadbd", "--version"),
        "wrk": _first_line("wrk", "-v"),
        "nginx": _first_line(nginx_binary(), "-v"),
        "packages": {name: _version(name) for name in PACKAGES},
        "git_commit": commit + (" (uncommitted changes)" if dirty else "") if commit else None,
        "load_average_before": load_average(),
    }
