"""The load generators: wrk with the Lua scripts in benchmarks/wrk/, and client/client.py;
pinned to one core, bounded in time, each reporting its own CPU use (rusage)."""
import json
import os
import random
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from harness.servers import REPO_ROOT

WRK_DIR = Path(__file__).with_name("wrk")
LOAD_CORE = "1"
CONNECTIONS = 64
REQUEST_TIMEOUT = "5s"  # wrk gives up on a request after this and counts a timeout (an error)
GRACE_S = 30  # a load process still running this long after its duration is killed
_running = set()


class LoadProcess:
    """A load generator child: started at once, waited for with a bound, CPU accounted."""

    def __init__(self, argv, seconds, env=None):
        self.seconds = seconds
        self.output = tempfile.TemporaryFile()
        self.process = subprocess.Popen(argv, stdout=self.output, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env, cwd=REPO_ROOT)
        self.started = time.monotonic()
        _running.add(self)

    def wait(self):
        """(exit code, stdout text, CPU seconds used, wall seconds); killed past its bound."""
        deadline = self.started + self.seconds + GRACE_S
        while not (reaped := os.wait4(self.process.pid, os.WNOHANG))[0]:
            if time.monotonic() > deadline:
                os.kill(self.process.pid, signal.SIGKILL)  # not reaped yet: still its pid
            time.sleep(0.05)
        _, status, usage = reaped
        wall = time.monotonic() - self.started
        _running.discard(self)
        # Reaped here (for its rusage), so Popen must not wait for it again.
        self.process.returncode = os.waitstatus_to_exitcode(status)
        with self.output:
            self.output.seek(0)
            text = self.output.read().decode(errors="replace")
        return self.process.returncode, text, usage.ru_utime + usage.ru_stime, wall

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        _running.discard(self)


def kill_all():
    """After an interruption: no load may outlive the harness."""
    for process in list(_running):
        process.kill()


def start_wrk(url, script, seconds, args=(), connections=CONNECTIONS):
    """wrk -t1 -cN -dS -s benchmarks/wrk/SCRIPT.lua URL -- SEED ARGS..., pinned."""
    argv = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
            f"--timeout={REQUEST_TIMEOUT}", "-s", str(WRK_DIR / f"{script}.lua"), url,
            "--", str(random.getrandbits(31)), *map(str, args)]
    return LoadProcess(argv, seconds, {**os.environ, "LUA_PATH": f"{WRK_DIR}/?.lua;;"})


def wrk_result(process):
    code, text, cpu, wall = process.wait()
    line = next((l for l in text.splitlines() if l.startswith("WRK_JSON ")), None)
    if code != 0 or line is None:
        raise RuntimeError(f"wrk exited {code} without a WRK_JSON line:\n{text[-2000:]}")
    raw = json.loads(line[len("WRK_JSON "):])
    seconds, latency = raw["duration_us"] / 1e6, raw["latency_us"]
    statuses = {int(k): v for k, v in raw["counters"].pop("statuses").items()}
    ok = sum(v for k, v in statuses.items() if 200 <= k < 300)
    # With no response at all (a window spent waiting on a lock), there is no latency.
    percentiles = [(p, us / 1000) for p, us in latency["percentiles"]] if raw["requests"] else []
    at = {p: round(ms, 2) for p, ms in percentiles}
    return {
        "seconds": round(seconds, 3), "requests": raw["requests"], "ok": ok,
        "ok_per_s": round(ok / seconds, 1),
        "errors": raw["requests"] - ok + sum(v for k, v in raw["errors"].items() if k != "status"),
        "statuses": statuses, "socket_errors": raw["errors"], "counters": raw["counters"],
        "p50_ms": at.get(50), "p99_ms": at.get(99), "p999_ms": at.get(99.9),
        "mean_ms": round(latency["mean"] / 1000, 2) if percentiles else None,
        "max_ms": round(latency["max"] / 1000, 2) if percentiles else None,
        "percentiles_ms": percentiles, "generator_cores": round(cpu / wall, 3),
    }


def wrk(url, script, seconds, args=(), connections=CONNECTIONS):
    return wrk_result(start_wrk(url, script, seconds, args, connections))


def run_client(url, conversations, concurrency, bound_s):
    """client/client.py --json at high concurrency, pinned like wrk; its summary + CPU."""
    argv = ["taskset", "-c", LOAD_CORE, str(REPO_ROOT / ".venv" / "bin" / "python"),
            "client/client.py", "--url", url, "--conversations", str(conversations),
            "--concurrency", str(concurrency), "--json"]
    code, text, cpu, wall = LoadProcess(argv, bound_s).wait()
    # client.py exits 1 when any request failed; its summary is printed all the same.
    if code not in (0, 1):
        raise RuntimeError(f"client.py exited {code}:\n{text[-2000:]}")
    summary = json.loads(text.strip().splitlines()[-1])
    summary["generator_cores"] = round(cpu / wall, 3)
    return summary
