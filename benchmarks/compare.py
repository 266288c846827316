"""The request path of two commits side by side: `python -m benchmarks.compare BASE
[--rounds 3] [--seconds 10]`.

null, BASE's API and the working tree's API each serve the wrk conversation flow
(64 connections, no ingest worker: the request path alone), in interleaved rounds, each
redis API on its own private Redis. Prints each round and, as JSON, the medians, the
ratios to null and new/base per round. For "a change costs no more than before".
"""
import argparse
import json
import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from statistics import median

from benchmarks import load

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
PORTS = {"redis": (17101, 17102), "api": (17201, 17202, 17203)}


def _redis(port, directory, started):
    started.append(subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
         "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
        stdout=subprocess.DEVNULL))


def _api(tree, port, backend, redis_port, directory, started):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OG_")}
    env.update(OG_BACKEND=backend, REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
               OG_BIND=f"127.0.0.1:{port}", OG_WORKERS="2", OG_LOG_LEVEL="warning")
    with open(Path(directory) / f"api-{port}.log", "w") as log:
        started.append(subprocess.Popen([str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py"],
                                        cwd=tree, env=env, stdout=log, stderr=log))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/dashboard/symbol/a", timeout=1)
            return url
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the API of {tree} did not answer on {url}")


def main():
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare")
    parser.add_argument("base", help="the commit to compare the working tree with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    started = []
    with tempfile.TemporaryDirectory(prefix="og-compare-") as directory:
        base_tree = Path(directory) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(base_tree), args.base],
                       cwd=REPO, check=True, capture_output=True)
        try:
            for port, name in zip(PORTS["redis"], ("r1", "r2")):
                os.makedirs(Path(directory) / name)
                _redis(port, str(Path(directory) / name), started)
            time.sleep(0.5)
            null, base, new = PORTS["api"]
            targets = {"null": _api(REPO, null, "null", PORTS["redis"][0], directory, started),
                       "base": _api(base_tree, base, "redis", PORTS["redis"][0], directory, started),
                       "new": _api(REPO, new, "redis", PORTS["redis"][1], directory, started)}
            print(json.dumps(_measure(targets, args.rounds, args.seconds), indent=1))
        finally:
            for process in started:
                process.terminate()
            for process in started:
                process.wait(10)
            subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=REPO,
                           capture_output=True)


def _measure(targets, rounds, seconds):
    for url in targets.values():  # warm up: connections, scripts loaded, JIT-free Python
        load.wrk_result(load.start_wrk(url, "conversation", 3))
    results = {name: [] for name in targets}
    for number in range(1, rounds + 1):
        for name, url in targets.items():
            result = load.wrk_result(load.start_wrk(url, "conversation", seconds))
            results[name].append(result)
            print(f"round {number} {name:<5} {result['ok_per_s']:8.0f} 2xx/s  p99 "
                  f"{result['p99_ms']} ms  errors {result['errors']}", flush=True)

    def per_round(a, b):
        return [round(x["ok_per_s"] / y["ok_per_s"], 3) for x, y in zip(results[a], results[b])]

    summary = {name: {"ok_per_s": median(r["ok_per_s"] for r in rs),
                      "p99_ms": median(r["p99_ms"] for r in rs),
                      "errors": sum(r["errors"] for r in rs)} for name, rs in results.items()}
    for name in ("base", "new"):
        summary[name]["vs_null_rounds"] = per_round(name, "null")
        summary[name]["vs_null"] = median(summary[name]["vs_null_rounds"])
    summary["new_vs_base_rounds"] = per_round("new", "base")
    summary["new_vs_base"] = median(summary["new_vs_base_rounds"])
    return summary


if __name__ == "__main__":
    main()
