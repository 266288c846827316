"""The event stream's backlog over time, sampled in a thread while a load runs.

Reads the same figures as `python -m ingest status` (core.pipeline.collect) through one
Redis connection, instead of starting a Python process per sample on a busy machine.
"""
import threading
import time

from core import pipeline
from core import keys
from core.store.gateway import Store

INTERVAL_S = 0.5


class Sampler:
    """A thread that appends `sample(seconds since start)` to `.samples` every interval
    while the `with` block runs (None: no sample this time)."""

    interval = INTERVAL_S

    def __init__(self):
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=type(self).__name__, daemon=True)

    def __enter__(self):
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()

    def now(self):
        return time.monotonic() - self._started

    def _loop(self):
        while True:
            sample = self.sample(self.now())
            if sample is not None:
                self.samples.append(sample)
            if self._stop.wait(self.interval):
                return

    def sample(self, at):
        raise NotImplementedError


class BacklogSampler(Sampler):
    """Samples (seconds since start, stream length, lag, pending) every interval."""

    def __init__(self, redis_url, partitions=1, interval=INTERVAL_S):
        super().__init__()
        self.store = Store.connect(redis_url, partitions, timeout=10)
        self.partitions = partitions
        self.interval = interval

    def sample(self, at):
        report = pipeline.collect(self.store)
        return {"t": round(at, 3),
                "length": sum(p["length"] for p in report),
                "lag": sum(p["lag"] for p in report),
                "pending": sum(p["pending"] for p in report)}

    def summary(self):
        backlog = [s["lag"] + s["pending"] for s in self.samples]
        return {"max_backlog": max(backlog, default=0),
                "last_backlog": backlog[-1] if backlog else 0,
                "samples": self.samples}


def stream_length(redis_client, partitions=1):
    return sum(redis_client.xlen(keys.stream(p)) for p in range(partitions))
