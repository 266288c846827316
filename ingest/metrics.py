"""Prometheus metrics of the ingest worker, served on a loopback port, and how Prometheus
finds them.

Any number of workers run per host with the same settings: each serves its metrics on
the first free port of OG_INGEST_METRICS_PORT .. +PORT_SPAN-1 (9108-9171 by default)
and writes a Prometheus file_sd target file naming that port, OG_INGEST_TARGETS_DIR/
ingest-<port>.json (atomically: temp file, then rename), removed at a clean exit.
Prometheus reads the directory (`file_sd_configs`, provision/prometheus-ingest.yml).

A file left by a killed worker names a port nothing serves: Prometheus shows that
target down (up == 0) until the file goes. It goes when the next worker takes that
port (files are keyed by port, so it is overwritten) or when any worker starts (each
start removes the files whose port no longer answers).

The stream gauges (undrained, lag, pending, ...) are core/pipeline.collect's figures,
the same as `ingest status`, read once a second; every worker exports them, so
aggregate with max by (stream), not sum. Per-consumer series are dropped when the
consumer leaves the group.
"""
import json
import logging
import os
import socket
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

from core import pipeline

log = logging.getLogger("ingest")

PORT_SPAN = 64
"""A worker tries its configured port and the next PORT_SPAN - 1 ports."""
PROBE_TIMEOUT_S = 0.5
TARGET_FILE = "ingest-{port}.json"


class NoFreePort(Exception):
    """Every port of the metrics range is taken."""


class Metrics:
    def __init__(self, registry=None, consumer=None):
        self.registry = registry or CollectorRegistry()
        self.consumer = consumer
        self.port = None
        self.target_file = None
        r = self.registry
        self.info = Info("og_ingest_worker", "This worker: its consumer name in the group", registry=r)
        if consumer:
            self.info.info({"consumer": consumer})
        self.events_written = Counter("og_ingest_events_written", "Events written to og.events", registry=r)
        self.batches = Counter("og_ingest_batches", "Batches written", registry=r)
        self.batch_seconds = Histogram(
            "og_ingest_batch_seconds", "Time to write and commit one batch", registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.dead_letters = Counter("og_ingest_dead_letters", "Entries moved to a dead-letter stream", registry=r)
        self.retries = Counter("og_ingest_retries", "Retries after a failure", ["reason"], registry=r)
        self.consumers_removed = Counter(
            "og_ingest_consumers_removed", "Gone consumers (nothing pending, idle past the bound) "
            "this worker removed from the group", registry=r)
        self.undrained = Gauge("og_ingest_undrained", "Entries appended and not yet acknowledged "
                               "(written to MariaDB): lag + pending", ["stream"], registry=r)
        self.lag = Gauge("og_ingest_lag", "Stream entries not yet delivered to any worker", ["stream"], registry=r)
        self.pending = Gauge("og_ingest_pending", "Entries delivered but not yet acknowledged", ["stream"], registry=r)
        self.backlog = Gauge("og_ingest_stream_length", "Entries in the stream, acknowledged or not, until trimmed", ["stream"], registry=r)
        self.oldest_pending_age = Gauge(
            "og_ingest_oldest_pending_age_seconds", "Age (since its append) of the oldest entry "
            "delivered and not acknowledged; 0 when nothing is pending", ["stream"], registry=r)
        self.consumers = Gauge("og_ingest_consumers", "Consumers the group lists", ["stream"], registry=r)
        self.consumer_pending = Gauge("og_ingest_consumer_pending", "Entries each consumer holds pending",
                                      ["stream", "consumer"], registry=r)
        self.consumer_idle = Gauge("og_ingest_consumer_idle_seconds", "Time since each consumer last "
                                   "read or claimed", ["stream", "consumer"], registry=r)
        self.dead_letter_length = Gauge("og_ingest_dead_letter_length", "Entries in the dead-letter stream",
                                        ["stream"], registry=r)
        self.observed_at = Gauge("og_ingest_streams_observed_timestamp_seconds", "When the stream gauges "
                                 "were last read from Redis (they keep their values while it is away)",
                                 registry=r)
        self._consumer_series = set()

    # -- serving and being found ------------------------------------------------------

    def serve(self, first_port, targets_dir=None, addr="127.0.0.1"):
        """Serve on the first free port from `first_port` (PORT_SPAN ports at most) and
        write this worker's target file into `targets_dir` (a Path, or None: no file).
        Returns the port; NoFreePort if all are taken."""
        if targets_dir is not None:
            targets_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_targets(targets_dir)
        for port in range(first_port, min(first_port + PORT_SPAN, 65536)):
            try:
                start_http_server(port, addr=addr, registry=self.registry)
            except OSError:
                continue  # taken (by another worker, most likely)
            self.port = port
            break
        else:
            raise NoFreePort(f"ports {first_port}-{min(first_port + PORT_SPAN, 65536) - 1} are all taken")
        if targets_dir is not None:
            self.target_file = targets_dir / TARGET_FILE.format(port=self.port)
            self.write_target(addr)
        return self.port

    def write_target(self, addr="127.0.0.1"):
        labels = {"consumer": self.consumer or "", "host": socket.gethostname()}
        write_atomically(self.target_file, [{"targets": [f"{addr}:{self.port}"], "labels": labels}])
        self._target_text = self.target_file.read_text()

    def keep_target(self):
        """Write the target file again if it is gone or names another worker (a worker
        starting at the same moment may have taken it for stale)."""
        if self.target_file is None:
            return
        try:
            if self.target_file.read_text() == self._target_text:
                return
        except OSError:
            pass
        try:
            self.write_target()
            log.info("ingest: target file %s written again", self.target_file)
        except OSError as error:
            log.warning("ingest: cannot write %s: %s", self.target_file, error)

    def remove_target(self):
        if self.target_file is None:
            return
        try:
            if self.target_file.read_text() == self._target_text:
                self.target_file.unlink()
        except OSError:
            pass
        self.target_file = None

    # -- events ---------------------------------------------------------------------

    def batch(self, events, seconds):
        self.batches.inc()
        self.events_written.inc(events)
        self.batch_seconds.observe(seconds)

    def dead_letter(self):
        self.dead_letters.inc()

    def retry(self, reason):
        self.retries.labels(reason).inc()

    def removed_consumers(self, count):
        self.consumers_removed.inc(count)

    # -- the streams ------------------------------------------------------------------

    def observe_streams(self, store):
        """Set the stream gauges from one pipeline.collect (the figures of `ingest status`)."""
        self.observe(pipeline.collect(store))
        self.keep_target()

    def observe(self, report):
        series = set()
        for item in report:
            stream = item["stream"]
            self.undrained.labels(stream).set(item["undrained"])
            self.lag.labels(stream).set(item["lag"])
            self.pending.labels(stream).set(item["pending"])
            self.backlog.labels(stream).set(item["length"])
            self.oldest_pending_age.labels(stream).set(item["oldest_pending_age_s"] or 0)
            self.consumers.labels(stream).set(item["consumers"])
            self.dead_letter_length.labels(stream).set(item["dead_letters"])
            for consumer in item["consumer_details"]:
                key = (stream, consumer["name"])
                series.add(key)
                self.consumer_pending.labels(*key).set(consumer["pending"])
                self.consumer_idle.labels(*key).set(consumer["idle_ms"] / 1000)
        for key in self._consumer_series - series:  # gone from the group: no stale series
            self.consumer_pending.remove(*key)
            self.consumer_idle.remove(*key)
        self._consumer_series = series
        self.observed_at.set(time.time())


def write_atomically(path, content):
    """JSON `content` to `path` through a temp file in the same directory and a rename,
    so a reader (Prometheus) never sees half a file."""
    path = Path(path)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as out:
            json.dump(content, out)
            out.write("\n")
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def port_answers(port, addr="127.0.0.1"):
    try:
        with socket.create_connection((addr, port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def remove_stale_targets(targets_dir):
    """Remove the target files (and temp files) whose worker is gone: its port does not
    answer. Returns the paths removed."""
    removed = []
    for path in sorted(Path(targets_dir).glob("ingest-*.json")):
        try:
            entries = json.loads(path.read_text())
            ports = [int(target.rpartition(":")[2]) for entry in entries for target in entry["targets"]]
        except (OSError, ValueError, KeyError, TypeError):
            ports = []  # unreadable: not one of ours to keep
        if ports and any(port_answers(port) for port in ports):
            continue
        try:
            path.unlink()
            removed.append(path)
            log.info("ingest: removed stale target file %s", path)
        except OSError:
            pass
    for path in Path(targets_dir).glob(".ingest-*.json.*.tmp"):
        if time.time() - path.stat().st_mtime > 60:  # a writer killed mid-write
            try:
                path.unlink()
            except OSError:
                pass
    return removed
