"""The per-worker pipeline and single-flight reads, with real threads and a real Redis."""
import threading

import pytest
import redis as redislib
from redis.exceptions import ConnectionError, ResponseError

from core.store.client import CoalescingClient
from server.coalescing import SingleFlight


def _client(redis_server):
    pool = redislib.ConnectionPool.from_url(redis_server.url, decode_responses=True,
                                            socket_timeout=2, socket_connect_timeout=2)
    return CoalescingClient(pool)


def _in_threads(count, target):
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)


def test_each_concurrent_caller_gets_its_own_replies(redis, redis_server):
    client = _client(redis_server)
    seen = {}

    def caller(i):
        seen[i] = [client.execute("ECHO", f"{i}:{n}") for n in range(25)]
        seen[i].append(client.execute_many([("INCR", "og:test:counter"), ("ECHO", f"{i}!")])[1])

    _in_threads(40, caller)
    assert seen == {i: [f"{i}:{n}" for n in range(25)] + [f"{i}!"] for i in range(40)}
    assert redis.get("og:test:counter") == "40"


def test_an_error_reply_fails_only_its_own_call(redis, redis_server):
    client = _client(redis_server)
    results = {}

    def caller(i):
        try:
            results[i] = client.execute("NOSUCHCOMMAND") if i % 5 == 0 else client.execute("ECHO", str(i))
        except ResponseError as error:
            results[i] = error

    _in_threads(30, caller)
    for i, result in results.items():
        if i % 5 == 0:
            assert isinstance(result, ResponseError)
        else:
            assert result == str(i)


def test_a_dead_redis_fails_every_call_without_hanging(redis_server):
    redis_server.ensure_running()
    client = _client(redis_server)
    assert client.execute("PING") == "PONG"
    redis_server.kill()
    try:
        errors = []

        def caller(i):
            try:
                client.execute("PING")
            except ConnectionError as error:
                errors.append(error)

        _in_threads(20, caller)
        assert len(errors) == 20
    finally:
        redis_server.start()
    assert client.execute("PING") == "PONG"  # and it reconnects by itself


def _wait_for_waiters(flights, key, count):
    for _ in range(1000):
        with flights._lock:
            if flights._flights[key].waiters == count:
                return
        threading.Event().wait(0.01)
    raise AssertionError(f"{count} callers never joined the flight")


def test_single_flight_shares_one_execution_among_concurrent_callers():
    flights = SingleFlight()
    started, release = threading.Event(), threading.Event()
    runs = []

    def work():
        runs.append(1)
        started.set()
        release.wait(10)
        return ["answer"]

    answers = []
    first = threading.Thread(target=lambda: answers.append(flights.run("k", work)))
    first.start()
    assert started.wait(10)
    others = [threading.Thread(target=lambda: answers.append(flights.run("k", work)))
              for _ in range(5)]
    for thread in others:
        thread.start()
    _wait_for_waiters(flights, "k", 5)
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert runs == [1] and answers == [["answer"]] * 6
    assert flights.run("k", lambda: "fresh") == "fresh"  # nothing cached afterwards


def test_single_flight_hands_the_error_to_every_waiter_and_keeps_keys_apart():
    flights = SingleFlight()
    started, release = threading.Event(), threading.Event()

    def failing():
        started.set()
        release.wait(10)
        raise RuntimeError("database gone")

    outcomes = []

    def call():
        try:
            flights.run("k", failing)
        except RuntimeError as error:
            outcomes.append(str(error))

    first = threading.Thread(target=call)
    first.start()
    assert started.wait(10)
    waiter = threading.Thread(target=call)
    waiter.start()
    _wait_for_waiters(flights, "k", 1)
    assert flights.run("other", lambda: 7) == 7  # a different key is not held up
    release.set()
    for thread in (first, waiter):
        thread.join(10)
    assert outcomes == ["database gone", "database gone"]
    with pytest.raises(KeyError):
        flights.run("k", lambda: {}["missing"])
