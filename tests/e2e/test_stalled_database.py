"""A MariaDB that stops answering (SIGSTOP: connections open, nothing comes back) must not
hang the ingest worker: it counts the database away after OG_INGEST_DATABASE_TIMEOUT,
hears SIGTERM, and the events it held are written by the next worker."""
import os
import signal
import time

from tests.workers import Load, assert_nothing_lost, wait_drained

STALL_BOUND_S = 2


def test_a_worker_on_a_stalled_database_stops_on_sigterm_and_loses_nothing(
        gunicorn_server, redis, database, ingest, mariadb_server):
    server = gunicorn_server("redis", workers=1)
    worker = ingest(OG_INGEST_DATABASE_TIMEOUT=STALL_BOUND_S).start(redis)
    with Load(server.url, threads=2, conversations=2_000, seconds=30) as load:
        load.wait_for(200)
        os.kill(mariadb_server.pid, signal.SIGSTOP)
        try:
            load.wait_for(len(load.snapshot()) + 200)  # writes go on into Redis meanwhile
            load.stop()
            began = time.monotonic()
            # The committer is stuck in a write and the hand-over queue may be full: the
            # stop is heard once the stalled write times out, not never.
            assert worker.terminate(timeout=10 * STALL_BOUND_S) == 0, worker.log()
            assert time.monotonic() - began < 10 * STALL_BOUND_S
        finally:
            os.kill(mariadb_server.pid, signal.SIGCONT)
    successor = ingest(name="successor", OG_INGEST_CLAIM_IDLE_MS=500).start(redis)
    wait_drained(redis, successor)
    assert_nothing_lost(database, load.accepted, load.uncertain)
