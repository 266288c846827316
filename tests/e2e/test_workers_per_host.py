"""Several ingest workers on one host with the same settings (issue 11, item 2): each
serves its metrics on its own port, found through its Prometheus file_sd target file;
one killed under load, the others drain everything exactly once; a later one takes the
freed port."""
import json
import os
import signal
import time

from core import keys
from harness.servers import free_port
from tests.workers import (STREAM, Load, assert_stored_exactly, metrics_targets,
                           scrape_metrics, wait_drained, wait_for, worker_port)

WAIT_S = 30.0


def test_three_workers_on_one_host_one_killed(gunicorn_server, redis, database, ingest):
    server = gunicorn_server("redis", workers=2)
    base = free_port()
    # The same settings for all: only the consumer name (pid in production) differs.
    settings = {"OG_INGEST_METRICS_PORT": base, "OG_INGEST_CLAIM_IDLE_MS": 500,
                "OG_INGEST_BATCH_SIZE": 50}
    workers = [ingest(name=f"w{i}", **settings).start(redis) for i in range(3)]
    ports = [worker_port(worker) for worker in workers]
    assert len(set(ports)) == 3, ports
    assert all(base <= port < base + 64 for port in ports), (base, ports)
    targets = metrics_targets(workers[0].targets_dir)
    assert {port: labels["consumer"] for port, labels in targets.items()} == {
        port: worker.consumer for port, worker in zip(ports, workers)}
    for port, worker in zip(ports, workers):
        metrics = scrape_metrics(port)
        assert metrics[("og_ingest_worker_info", (("consumer", worker.consumer),))] == 1

    with Load(server.url, threads=4, conversations=30_000, seconds=60) as load:
        load.wait_for(300)
        for worker in workers:
            worker.wait_reading(redis)
        victim, survivors = workers[1], [workers[0], workers[2]]
        # Kill it while it holds entries it read but has not acknowledged: frozen
        # (SIGSTOP) while it holds some, so that they cannot be acked before the kill.
        deadline = time.monotonic() + WAIT_S
        while True:
            os.kill(victim.process.pid, signal.SIGSTOP)
            held = len(redis.xpending_range(STREAM, keys.GROUP, min="-", max="+", count=10_000,
                                            consumername=victim.consumer))
            if held:
                break
            os.kill(victim.process.pid, signal.SIGCONT)
            assert time.monotonic() < deadline, "the victim never held a batch"
            time.sleep(0.005)
        victim.kill()
        load.wait_for(len(load.snapshot()) + 500)
        for worker in survivors:
            assert worker.running, worker.log()
    assert set(load.statuses) == {200}, load.statuses

    # The killed worker's file stays behind, naming a port nothing serves (Prometheus:
    # up == 0 for it); the survivors still answer on theirs.
    victim_port = ports[1]
    assert metrics_targets(victim.targets_dir)[victim_port]["consumer"] == victim.consumer
    for port in (ports[0], ports[2]):
        scrape_metrics(port)

    wait_drained(redis, survivors[0], timeout=60)
    assert_stored_exactly(database, load.accepted)
    written = sum(scrape_metrics(port)[("og_ingest_events_written_total", ())]
                  for port in (ports[0], ports[2]))
    assert 0 < written <= len(load.accepted)  # the victim wrote the rest, none twice
    # What it held was reclaimed by the survivors and is acknowledged now.
    assert held > 0
    assert not redis.xpending_range(STREAM, keys.GROUP, min="-", max="+", count=1)

    # A fourth worker with the same settings gets a port: the first free one, which is
    # the one the killed worker freed; its file replaces the stale one.
    fourth = ingest(name="w3", **settings).start(redis)
    fourth_port = worker_port(fourth)
    assert fourth_port == victim_port, (ports, fourth_port)
    targets = metrics_targets(fourth.targets_dir)
    assert {port: labels["consumer"] for port, labels in targets.items()} == {
        ports[0]: workers[0].consumer, ports[2]: workers[2].consumer,
        fourth_port: fourth.consumer}
    assert scrape_metrics(fourth_port)[("og_ingest_worker_info",
                                        (("consumer", fourth.consumer),))] == 1

    # A clean exit removes the worker's own file.
    for worker in (*survivors, fourth):
        assert worker.terminate() == 0
    assert metrics_targets(fourth.targets_dir) == {}


def test_a_start_removes_target_files_whose_port_does_not_answer(redis, database, ingest,
                                                                  tmp_path):
    directory = tmp_path / "targets"
    directory.mkdir()
    dead = free_port()  # nothing listens there
    stale = directory / f"ingest-{dead}.json"
    stale.write_text(json.dumps([{"targets": [f"127.0.0.1:{dead}"],
                                  "labels": {"consumer": "gone-1"}}]))
    worker = ingest(OG_INGEST_METRICS_PORT=free_port(),
                    OG_INGEST_TARGETS_DIR=str(directory)).start(redis)
    port = worker_port(worker)
    assert metrics_targets(directory) == {port: {"consumer": worker.consumer,
                                                 "host": metrics_targets(directory)[port]["host"]}}
    assert not stale.exists()
    # A second worker does not take the first one's (live) file for stale.
    second = ingest(name="second", OG_INGEST_METRICS_PORT=port,
                    OG_INGEST_TARGETS_DIR=str(directory)).start(redis)
    second_port = worker_port(second)
    assert second_port != port
    assert set(metrics_targets(directory)) == {port, second_port}
    assert worker.terminate() == 0 and second.terminate() == 0
    assert metrics_targets(directory) == {}


def test_a_configured_port_taken_by_something_else_is_skipped(redis, database, ingest):
    """The configured port taken by something else: the worker takes the next one."""
    import socket

    base = free_port()
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", base))
    squatter.listen()
    try:
        worker = ingest(OG_INGEST_METRICS_PORT=base).start(redis)
        port = worker_port(worker)
        assert base < port < base + 64
        assert f"metrics on http://127.0.0.1:{port}/metrics" in worker.log()
        assert worker.terminate() == 0
    finally:
        squatter.close()
