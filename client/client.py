"""The mercurial client (SPEC section 5): many concurrent conversations against the API.

    python client/client.py --url http://127.0.0.1:5000 --conversations 5000 --concurrency 200 --seed 1

Each conversation: a new uuid4 and a random symbol, POST /initial, and if the
server's guess was right it follows up with probability 0.75, else 0.25.
Runs on gevent greenlets (patched at start), so hundreds of conversations overlap.
"""
import argparse
import http.client
import json
import random
import sys
import threading
import time
import uuid as uuidlib
from collections import Counter
from string import ascii_lowercase
from urllib.parse import urlsplit

VOWELS = frozenset("aeiou")
FOLLOW_IF_RIGHT = 0.75
FOLLOW_IF_WRONG = 0.25


def is_vowel(symbol):
    return symbol in VOWELS


def wants_followup(symbol, guess, rng):
    """The client's rule: reward a right guess (guess True = vowel)."""
    right = guess == is_vowel(symbol)
    return rng.random() < (FOLLOW_IF_RIGHT if right else FOLLOW_IF_WRONG)


def plan(seed, index):
    """The uuid, symbol and private random stream of conversation `index`."""
    if seed is None:
        rng = random.Random()
        return str(uuidlib.uuid4()), rng.choice(ascii_lowercase), rng
    rng = random.Random(f"{seed}:{index}")
    uuid = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
    return uuid, rng.choice(ascii_lowercase), rng


class Session:
    """One keep-alive HTTP connection, reopened after a failure."""

    def __init__(self, url, timeout=10.0):
        parts = urlsplit(url)
        self.host, self.port, self.timeout = parts.hostname, parts.port or 80, timeout
        self.connection = None

    def post(self, path, body):
        """(status, json) or (None, None) on a connection error. A POST is resent only
        when a reused keep-alive connection turns out to have been closed by the
        server, never after a timeout: the first attempt may have been stored."""
        payload = json.dumps(body).encode()
        while True:
            reused = self.connection is not None
            if not reused:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.connection.request("POST", path, payload, {"Content-Type": "application/json"})
                response = self.connection.getresponse()
                data = response.read()
                return response.status, (json.loads(data) if data else None)
            except (http.client.HTTPException, OSError, ValueError) as error:
                self.connection.close()
                self.connection = None
                stale = isinstance(error, (http.client.RemoteDisconnected, BrokenPipeError,
                                           ConnectionResetError))
                if not (reused and stale):
                    return None, None  # counted as a connection error


class Results:
    def __init__(self, conversations):
        self.lock = threading.Lock()
        self.statuses = Counter()
        self.latencies = []
        self.right = [None] * conversations
        self.followups = 0

    def request(self, status, seconds):
        with self.lock:
            self.statuses[status if status is not None else "connection"] += 1
            self.latencies.append(seconds)


def _converse(session, seed, index, results):
    uuid, symbol, rng = plan(seed, index)
    start = time.perf_counter()
    status, body = session.post("/initial", {"uuid": uuid, "symbol": symbol})
    results.request(status, time.perf_counter() - start)
    if status != 200:
        return
    guess = bool(body["vowel"])
    results.right[index] = guess == is_vowel(symbol)
    if wants_followup(symbol, guess, rng):
        start = time.perf_counter()
        status, _ = session.post("/followup", {"uuid": uuid})
        results.request(status, time.perf_counter() - start)
        if status == 200:
            with results.lock:
                results.followups += 1


def _accuracy(answers):
    known = [a for a in answers if a is not None]
    return round(sum(known) / len(known), 4) if known else None


def _percentile(ordered, q):
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2) if ordered else None


def run(url, conversations, concurrency, seed=None):
    """Drive `conversations` conversations, `concurrency` at a time; return the summary."""
    results = Results(conversations)
    next_index = iter(range(conversations))
    take = threading.Lock()

    def loop():
        session = Session(url)
        while True:
            with take:
                index = next(next_index, None)
            if index is None:
                return
            _converse(session, seed, index, results)

    started = time.perf_counter()
    threads = [threading.Thread(target=loop) for _ in range(max(1, min(concurrency, conversations)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    tenth = max(1, conversations // 10)
    ordered = sorted(results.latencies)
    return {
        "conversations": conversations,
        "followups": results.followups,
        "requests": len(ordered),
        "statuses": {str(k): v for k, v in sorted(results.statuses.items(), key=str)},
        "errors": sum(v for k, v in results.statuses.items() if k != 200),
        "seconds": round(elapsed, 3),
        "requests_per_s": round(len(ordered) / elapsed, 1) if elapsed else None,
        "p50_ms": _percentile(ordered, 0.50),
        "p99_ms": _percentile(ordered, 0.99),
        "accuracy_first_tenth": _accuracy(results.right[:tenth]),
        "accuracy_last_tenth": _accuracy(results.right[-tenth:]),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000")
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    args = parser.parse_args(argv)
    summary = run(args.url, args.conversations, args.concurrency, args.seed)
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:>22}: {value}")
    return 0 if summary["errors"] == 0 else 1


if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()  # threads become greenlets: hundreds of conversations at once
    sys.exit(main())
