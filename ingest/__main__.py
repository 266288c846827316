"""python -m ingest [run [--burst] | status [--json] | rebuild [--resize-uuid-filter]]

run      drain the event streams into MariaDB until SIGTERM (--burst: until empty)
status   per stream: undrained, lag, pending, oldest pending age, consumers, length,
         dead letters (core/pipeline.py says where each figure comes from)
rebuild  recompute the range buckets, every Redis aggregate and the uuid filter from
         og.events, writes fenced meanwhile (--resize-uuid-filter: to OG_UUID_FILTER_MB)
"""
import argparse
import json
import logging
import random
import signal
import sys
import threading

from redis.exceptions import RedisError

from core import config, event_store, pipeline, range_buckets, redis_client
from ingest import rebuild
from ingest.metrics import Metrics, NoFreePort
from ingest.worker import BACKOFF_BASE_S, BACKOFF_CAP_S, LayoutMismatch, Worker
from ingest.writer import EventWriter

log = logging.getLogger("ingest")


def build_redis(settings):
    """A plain Redis or a RedisCluster client, as the URL's node says (core/redis_client.py)."""
    # surrogateescape: an entry that is not UTF-8 still decodes (and round-trips to the
    # dead-letter stream byte for byte) instead of crashing every read of the stream.
    return redis_client.connect(settings.redis_url, decode_responses=True,
                                encoding_errors="surrogateescape",
                                socket_timeout=10, socket_connect_timeout=2,
                                health_check_interval=30)


def build_worker(settings=None, metrics=None, redis_client_=None):
    settings = settings or config.load()
    engine = event_store.build_engine(settings.database_url, connect_args={"connect_timeout": 2})
    return Worker(redis_client_ or build_redis(settings), EventWriter(engine),
                  name=settings.consumer_name, partitions=settings.stream_partitions,
                  batch_size=settings.ingest_batch_size, batch_ms=settings.ingest_batch_ms,
                  claim_idle_ms=settings.ingest_claim_idle_ms,
                  max_deliveries=settings.ingest_max_deliveries, metrics=metrics,
                  consumer_idle_ms=settings.ingest_consumer_idle_ms)


def _wait_for_redis(settings, stopping):
    """build_redis, retried with capped backoff while Redis is unreachable: whether it is
    a cluster can only be asked of a node that answers. None if stopped meanwhile."""
    failures = 0
    while not stopping.is_set():
        try:
            return build_redis(settings)
        except (RedisError, OSError) as error:
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
        client = _wait_for_redis(settings, stopping)
        if client is None:
            return 0
        worker = build_worker(settings, metrics, client)
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
        report = pipeline.collect(build_redis(settings), settings.stream_partitions)
        print(json.dumps(report, indent=2) if args.json else pipeline.render(report))
        return 0
    if args.command == "rebuild":
        engine = event_store.build_engine(settings.database_url)
        event_store.create_tables(engine)
        days = range_buckets.rebuild(engine)  # exact with workers running: it locks
        try:
            summary = rebuild.rebuild(build_redis(settings), engine, settings.stream_partitions,
                                      uuid_filter_mb=settings.uuid_filter_mb,
                                      resize_filter=args.resize_uuid_filter)
        except rebuild.RebuildRefused as error:
            parser.exit(2, f"python -m ingest rebuild: {error}\n")
        except rebuild.FenceLost as error:
            parser.exit(1, f"python -m ingest rebuild: {error}\n")
        summary["range_bucket_days"] = days
        print(json.dumps(summary))
        return 0
    return run(settings, burst=args.burst)


if __name__ == "__main__":
    sys.exit(main())
