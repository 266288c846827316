"""Worker CPU per Redis call: the coalescing client vs plain redis-py calls.

    .venv/bin/python -m benchmarks.pipeline_cost [--calls 20000] [--greenlets 64]

In one process patched by gevent (as a gunicorn worker is), N greenlets run
initial.lua through server/coalescing.py, then through redis-py's plain evalsha, against
a private Redis. Prints CPU microseconds per call and the average pipeline size.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

import gevent  # noqa: E402
import redis  # noqa: E402

from benchmarks.stack import Stack  # noqa: E402
from core import keys  # noqa: E402
from core.store.client import CoalescingClient  # noqa: E402
from core.store.scripts import ALL as SCRIPTS  # noqa: E402


def _run(greenlets, calls, one_call):
    def loop():
        for _ in range(calls // greenlets):
            one_call(str(uuid.uuid4()))

    cpu, wall = time.process_time(), time.perf_counter()
    gevent.joinall([gevent.spawn(loop) for _ in range(greenlets)])
    done = calls // greenlets * greenlets
    return (time.process_time() - cpu) / done * 1e6, (time.perf_counter() - wall) / done * 1e6


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--greenlets", type=int, default=64)
    args = parser.parse_args(argv)
    stack = Stack()
    try:
        url = stack.redis().url
        pool = redis.ConnectionPool.from_url(url, decode_responses=True, socket_timeout=2)
        plain = redis.Redis(connection_pool=pool)
        script = SCRIPTS["initial"]
        plain.script_load(script.text)
        coalescing = CoalescingClient(pool)
        sent = []
        original = coalescing._send
        coalescing._send = lambda commands: sent.append(len(commands)) or original(commands)

        def keys_of(u):
            return keys.initial_keys(0, u)

        def coalesced(u):
            coalescing.execute(*script.command(keys_of(u), (u, "a", "1", 3600, 10**9, 0, "0", 1)))

        def unbatched(u):
            plain.evalsha(script.sha, len(keys_of(u)), *keys_of(u), u, "a", "1", 3600, 10**9, 0, "0", 1)

        for label, call in (("coalesced", coalesced), ("plain evalsha", unbatched)):
            cpu_us, wall_us = _run(args.greenlets, args.calls, call)
            print(f"{label:>14}: {cpu_us:6.1f} us CPU/call, {wall_us:6.1f} us wall/call")
        print(f"average pipeline: {sum(sent) / len(sent):.1f} calls ({len(sent)} pipelines)")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
