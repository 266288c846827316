"""python -m ingest [run [--burst] | status [--json] | rebuild [--resize-uuid-filter]]

run      drain the event streams into MariaDB until SIGTERM (--burst: until empty)
status   per stream: undrained, lag, pending, oldest pending age, consumers, length,
         dead letters (core/pipeline.py says where each figure comes from)
rebuild  recompute the range buckets, every Redis aggregate and the uuid filter from
         og.events, writes fenced meanwhile (--resize-uuid-filter: to OG_UUID_FILTER_MB)
"""
import argparse
import json
import time
import logging
import random
import signal
import sys
import threading

from core import config, event_store, pipeline, range_buckets
from core.store.client import Unavailable
from core.store.gateway import Store
from ingest import rebuild
from ingest.metrics import Metrics, NoFreePort
from ingest.worker import BACKOFF_BASE_S, BACKOFF_CAP_S, LayoutMismatch, Worker
from ingest.writer import EventWriter

log = logging.getLogger("ingest")


REDIS_TIMEOUT_S = 10
"""Bound of every Redis reply to the worker (its blocking reads wait 1 s)."""
REBUILD_DATABASE_TIMEOUT_S = 600
"""The same for `ingest rebuild`, whose GROUP BY over og.events takes ~2 s a million."""


def build_store(settings, timeout=REDIS_TIMEOUT_S):
    """The store gateway (core/store/gateway.py) on a plain Redis or a cluster, as the
    URL's node says. NotRecorded if no node answers."""
    # surrogateescape: an entry that is not UTF-8 still decodes (and round-trips to the
    # dead-letter stream byte for byte) instead of crashing every read of the stream.
    return Store.connect(settings.redis_url, settings.stream_partitions, timeout,
                         connect_timeout=2, encoding_errors="surrogateescape")


def build_engine(settings, timeout=None):
    """An engine whose every socket read and write is bounded (OG_INGEST_DATABASE_TIMEOUT
    by default): a stalled MariaDB becomes "unavailable", retried with backoff, and a
    stop is heard, instead of a worker hung for good."""
    timeout = timeout or settings.ingest_database_timeout
    return event_store.build_engine(settings.database_url, connect_args={
        "connect_timeout": 2, "read_timeout": timeout, "write_timeout": timeout})


def build_worker(settings=None, metrics=None, store=None):
    settings = settings or config.load()
    # Creating tables and building the range buckets may take minutes on a large store:
    # that one-off step gets the rebuild's bound, the batches the short one.
    writer = EventWriter(build_engine(settings),
                         migrations=build_engine(settings, REBUILD_DATABASE_TIMEOUT_S))
    return Worker(store or build_store(settings), writer,
                  name=settings.consumer_name, partitions=settings.stream_partitions,
                  batch_size=settings.ingest_batch_size, batch_ms=settings.ingest_batch_ms,
                  claim_idle_ms=settings.ingest_claim_idle_ms,
                  max_deliveries=settings.ingest_max_deliveries, metrics=metrics,
                  consumer_idle_ms=settings.ingest_consumer_idle_ms,
                  commit_store=build_store(settings),
                  conversation_ttl=settings.conversation_ttl)


def _wait_for_redis(settings, stopping):
    """build_store, retried with capped backoff while Redis is unreachable: whether it is
    a cluster can only be asked of a node that answers. None if stopped meanwhile."""
    failures = 0
    while not stopping.is_set():
        try:
            return build_store(settings)
        except Unavailable as error:
            failures += 1
            log.warning("ingest: redis unreachable at start (%s); retry %d", error, failures)
            stopping.wait(random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** min(failures, 20))))
    return None


def run(settings, burst):
    stopping = threading.Event()
    worker = None

    def on_signal(signum, _frame):
        if stopping.is_set():
            log.warning("ingest: second signal, stopping now; unacked entries stay pending")
            raise SystemExit(1)
        log.info("ingest: %s, finishing the batch in hand", signal.Signals(signum).name)
        stopping.set()
        if worker is not None:
            worker.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    metrics = Metrics(consumer=settings.consumer_name)
    if settings.ingest_metrics_port:
        # Several workers per host: each takes the first free port from the configured
        # one and says which in its file_sd target file (ingest/metrics.py).
        targets = settings.ingest_targets_path
        try:
            port = metrics.serve(settings.ingest_metrics_port, targets)
        except NoFreePort as error:
            log.error("ingest: no port for the metrics (OG_INGEST_METRICS_PORT=%d): %s",
                      settings.ingest_metrics_port, error)
            return 2
        except OSError as error:
            log.error("ingest: cannot write the Prometheus target file into %s "
                      "(OG_INGEST_TARGETS_DIR): %s", targets, error)
            return 2
        log.info("ingest %s: metrics on http://127.0.0.1:%d/metrics%s", settings.consumer_name,
                 port, f" (target file {metrics.target_file})" if metrics.target_file else "")
    try:
        store = _wait_for_redis(settings, stopping)
        if store is None:
            return 0
        worker = build_worker(settings, metrics, store)
        if stopping.is_set():
            worker.stop()
        try:
            worker.run(burst=burst)
        except LayoutMismatch as error:
            log.error("ingest: %s", error)
            return 2
        return 1 if worker.failed else 0  # a supervisor restarts a worker that failed
    finally:
        metrics.remove_target()  # a clean exit; a killed worker's file is handled at the next start


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ingest", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    run_parser = commands.add_parser("run", help="drain the streams into MariaDB (default)")
    run_parser.add_argument("--burst", action="store_true", help="exit once nothing is left")
    status_parser = commands.add_parser("status", help="backlog, lag, pending, dead letters")
    status_parser.add_argument("--json", action="store_true")
    rebuild_parser = commands.add_parser("rebuild", help="recompute the Redis aggregates from og.events")
    rebuild_parser.add_argument(
        "--resize-uuid-filter", action="store_true",
        help="give the uuid filter OG_UUID_FILTER_MB (else it keeps the size the store "
             "recorded); refilled with writes fenced")
    parser.add_argument("--burst", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        settings = config.load()
    except config.SettingsError as error:
        parser.exit(2, f"python -m ingest: {error}\n")
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(message)s")

    if args.command == "status":
        report = pipeline.collect(build_store(settings))
        print(json.dumps(report, indent=2) if args.json else pipeline.render(report))
        return 0
    if args.command == "rebuild":
        engine = build_engine(settings, REBUILD_DATABASE_TIMEOUT_S)
        began = time.monotonic()
        event_store.create_tables(engine)
        tables_s = round(time.monotonic() - began, 3)
        days = range_buckets.rebuild(engine)  # exact with workers running: it locks
        buckets_s = round(time.monotonic() - began - tables_s, 3)
        try:
            summary = rebuild.rebuild(build_store(settings), engine, settings.stream_partitions,
                                      uuid_filter_mb=settings.uuid_filter_mb,
                                      resize_filter=args.resize_uuid_filter)
        except rebuild.RebuildRefused as error:
            parser.exit(2, f"python -m ingest rebuild: {error}\n")
        except rebuild.FenceLost as error:
            parser.exit(1, f"python -m ingest rebuild: {error}\n")
        summary["range_bucket_days"] = days
        # Seconds per phase, for operators: the range buckets hold the workers' inserts,
        # the uuid filter is refilled with writes accepted, fenced_s is what writers see.
        summary["phases"] = {"create_tables_s": tables_s, "range_buckets_s": buckets_s,
                             **summary["phases"], "total_s": round(time.monotonic() - began, 3)}
        print(json.dumps(summary))
        return 0
    return run(settings, burst=args.burst)


if __name__ == "__main__":
    sys.exit(main())
