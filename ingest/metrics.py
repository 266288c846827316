"""Prometheus metrics of the ingest worker, served on a loopback port."""
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from core.pipeline import stream_group_info


class Metrics:
    def __init__(self, registry=None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events_written = Counter("og_ingest_events_written", "Events written to og.events", registry=r)
        self.batches = Counter("og_ingest_batches", "Batches written", registry=r)
        self.batch_seconds = Histogram(
            "og_ingest_batch_seconds", "Time to write and commit one batch", registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.dead_letters = Counter("og_ingest_dead_letters", "Entries moved to a dead-letter stream", registry=r)
        self.retries = Counter("og_ingest_retries", "Retries after a failure", ["reason"], registry=r)
        self.lag = Gauge("og_ingest_lag", "Stream entries not yet delivered to the group", ["stream"], registry=r)
        self.pending = Gauge("og_ingest_pending", "Entries delivered but not yet acknowledged", ["stream"], registry=r)
        self.backlog = Gauge("og_ingest_stream_length", "Entries in the stream (the API sheds above its high-water mark)", ["stream"], registry=r)

    def serve(self, port, addr="127.0.0.1"):
        return start_http_server(port, addr=addr, registry=self.registry)

    def batch(self, events, seconds):
        self.batches.inc()
        self.events_written.inc(events)
        self.batch_seconds.observe(seconds)

    def dead_letter(self):
        self.dead_letters.inc()

    def retry(self, reason):
        self.retries.labels(reason).inc()

    def observe_streams(self, redis_client, streams):
        for stream in streams:
            group = stream_group_info(redis_client, stream)
            self.lag.labels(stream).set(group.get("lag") or 0)
            self.pending.labels(stream).set(group.get("pending", 0))
            self.backlog.labels(stream).set(redis_client.xlen(stream))

