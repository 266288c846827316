"""`ingest status` and the worker's gauges after Redis is killed and restarted from its
AOF under load (issue 11, item 4). Redis 7.0 comes back with the group's `entries-read`
and `lag` nil (and has been seen with `lag` stuck at tens of thousands on an empty
stream): the figures must come from the undrained counter and XPENDING instead, and
reach 0 once everything is written."""
import time

from core import keys
from harness.servers import free_port
from tests.workers import (STREAM, Load, assert_nothing_lost, ingest_status, scrape_metrics,
                           wait_drained, worker_port)

S = (("stream", STREAM),)


def consistent(status):
    """The figures agree with each other and with what Redis can prove."""
    assert status["pending"] <= status["undrained"] <= status["length"], status
    assert status["lag"] == status["undrained"] - status["pending"] >= 0, status
    assert sum(c["pending"] for c in status["consumer_details"]) == status["pending"], status


def test_status_and_gauges_after_a_redis_restart_under_load(gunicorn_server, redis, database,
                                                           redis_server, ingest):
    server = gunicorn_server("redis", workers=2)
    port = free_port()
    worker = ingest(OG_INGEST_METRICS_PORT=port, OG_INGEST_CLAIM_IDLE_MS=1000).start(redis)
    port = worker_port(worker)
    settings = {"REDIS_URL": redis_server.url}
    raw_lag = []
    with Load(server.url, threads=4, conversations=30_000, seconds=60, pause_s=0.002) as load:
        load.wait_for(500)
        consistent(ingest_status(**settings))
        redis_server.kill()  # SIGKILL; the AOF is fsynced at every write
        time.sleep(1.0)
        redis_server.start()
        client = redis_server.client()
        try:
            raw_lag.append(client.xinfo_groups(STREAM)[0]["lag"])  # Redis's own, for the record
            load.wait_for(len(load.snapshot()) + 500)
            for _ in range(5):  # under load, after the restart
                consistent(ingest_status(**settings))
                time.sleep(0.1)
        finally:
            client.close()
    assert load.statuses[503] > 0, "the outage was not seen"

    client = redis_server.client()
    try:
        wait_drained(client, worker)
        assert_nothing_lost(database, load.accepted, load.uncertain)
        status = ingest_status(**settings)
        assert (status["length"], status["undrained"], status["lag"], status["pending"]) == (
            0, 0, 0, 0), (status, f"XINFO GROUPS lag right after the restart: {raw_lag}")
        assert status["undrained_counter"] == 0
        assert status["oldest_pending_id"] is None
        assert [(c["name"], c["pending"]) for c in status["consumer_details"]] == [
            (worker.consumer, 0)]

        def settled():
            metrics = scrape_metrics(port)
            return [metrics.get((name, S)) for name in (
                "og_ingest_stream_length", "og_ingest_undrained", "og_ingest_lag",
                "og_ingest_pending", "og_ingest_oldest_pending_age_seconds")] == [0, 0, 0, 0, 0]

        deadline = time.monotonic() + 10
        while not settled():
            assert time.monotonic() < deadline, scrape_metrics(port)
            time.sleep(0.1)
        # More writes after the restart are counted from the right base: drained to 0 again.
        with Load(server.url, threads=2, conversations=200) as more:
            more.join()
        wait_drained(client, worker)
        status = ingest_status(**settings)
        assert (status["undrained"], status["lag"], status["pending"], status["undrained_counter"]) == (
            0, 0, 0, 0), status
        assert client.get(keys.undrained(0)) == "0"
    finally:
        client.close()
    assert worker.terminate() == 0
