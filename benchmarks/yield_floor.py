"""Where the request path's CPU goes: worker CPU per request for null, null with one
gevent yield per request, and redis (1 gunicorn worker, wrk /initial flow, interleaved).

    .venv/bin/python -m benchmarks.yield_floor [--rounds 3] [--seconds 5]

A backend that answers only after Redis replies must yield its greenlet once per
request; this shows what that yield alone costs next to NullInterface, and so the
ceiling of the redis/null ratio on this machine.
"""
import argparse
import statistics

from benchmarks import load
from benchmarks.cpu import cpu_seconds, children
from benchmarks.stack import Stack
from tests.servers import GunicornServer


class YieldingApi(GunicornServer):
    def command(self):
        return [*super().command()[:-1], "benchmarks.yield_app:app"]


def measure(stack, label, env, seconds, server_class=GunicornServer):
    server = server_class(stack.dir / f"api-{label}", env)
    server.start()
    try:
        workers = children(server.pid)
        before = sum(cpu_seconds(pid) for pid in workers)
        result = load.wrk(server.url, "conversation", seconds)
        used = sum(cpu_seconds(pid) for pid in workers) - before
    finally:
        server.stop()
    return used / max(1, result["requests"]) * 1e6, result["ok_per_s"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args(argv)
    stack = Stack(workers=1)
    rows = {"null": [], "null + 1 yield": [], "redis": []}
    try:
        for round_ in range(args.rounds):
            for label in rows:
                backend = "redis" if label == "redis" else "null"
                if backend == "redis":
                    stack.redis().client().flushall()
                env = stack.env(backend)
                server_class = YieldingApi if "yield" in label else GunicornServer
                us, rate = measure(stack, f"{label}-{round_}".replace(" ", ""), env,
                                   args.seconds, server_class)
                rows[label].append((us, rate))
                print(f"round {round_ + 1} {label:>15}: {us:6.0f} us CPU/request, {rate:7.0f} ok/s",
                      flush=True)
    finally:
        stack.close()
    base = statistics.median(us for us, _ in rows["null"])
    print("\nmedian worker CPU per request (1 gunicorn gevent worker, wrk -c64 flow):")
    for label, values in rows.items():
        us = statistics.median(u for u, _ in values)
        print(f"  {label:>15}: {us:6.0f} us  ({us / base:4.2f}x null's CPU, "
              f"a CPU-bound ceiling of {base / us:4.2f}x null's throughput)")


if __name__ == "__main__":
    main()
