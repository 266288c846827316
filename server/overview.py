"""GET /dashboard/overview: what the page shows, in one answer: the symbol dashboards of
a-z, the model's accuracy per symbol and the ingest pipeline's health; and, with
`?lower=..&upper=..`, the range dashboard of that window as `range`.

The dashboards come from server.app's own data_interface, so they are the API's numbers,
and the window is read by the app's own parser (server/validation.py), so a bad one gets
the 400 text /dashboard/range gives. Each API process computes the overview at most once
a second, and each window's range dashboard at most once a second (the last RANGES_KEPT
windows asked); meanwhile every caller gets the same copy, which is what makes many open
pages cheap for the stores. /dashboard/range itself is not cached: programs asking it
get an answer computed for them.
"""
import json
import logging
import threading
import time
from collections import OrderedDict
from string import ascii_lowercase
from urllib.parse import parse_qsl

from core import timestamps
from server import validation
from server.coalescing import SingleFlight
from server.data_interface import Conflict, DataError, NotFound, Unavailable

log = logging.getLogger(__name__)

CACHE_S = 1.0
"""How long one computed answer is served to every caller of a process."""
RANGES_KEPT = 64
"""Windows whose range dashboard a process keeps (least recently asked dropped first):
distinct windows asked on purpose cannot grow its memory past this."""
WINDOW_PARAMETERS = ("lower", "upper")
_RANGE_STATUS = {validation.BadRequest: 400, NotFound: 404, Conflict: 409, Unavailable: 503}
"""What server/app.py answers for each failure of dashboard_range (its _STATUS)."""
VOWELS = frozenset("aeiou")


class Overview:
    def __init__(self, data_interface, settings, clock=time.monotonic, ranges_kept=RANGES_KEPT):
        self.data_interface = data_interface
        self.settings = settings
        self.clock = clock
        self.ranges_kept = ranges_kept
        self._flight = SingleFlight()
        self._cached = None  # (computed at, status, body as JSON bytes, body)
        self._ranges = OrderedDict()  # (lower, upper) -> _Range, least recently asked first
        self._ranges_lock = threading.Lock()

    def answer(self, query=""):
        """(status, body as JSON bytes) for the query string `query`: 200, or 503 with
        `error` when a store did not answer (the parts that did answer are in the body
        all the same); with a window (`lower` and `upper`), its range dashboard as
        `range`, or 400 with the app's text for a bad window or query."""
        if not query:
            cached = self._overview()
            return cached[1], cached[2]
        try:
            window = validation.parse_range(*window_of(query))
        except validation.BadRequest as error:
            return 400, json.dumps({"error": str(error)}).encode()
        overview = self._overview()
        entry = self._range(window)
        combined = entry.combined
        if combined is None or combined[0] is not overview:
            # Encoded once per overview and window: callers of that second share the bytes.
            combined = entry.combined = (overview, *_combine(overview, entry))
        return combined[1], combined[2]

    def _overview(self):
        cached = self._cached
        if cached is not None and self.clock() - cached[0] < CACHE_S:
            return cached
        return self._flight.run("overview", self._refresh)

    def _refresh(self):
        started = self.clock()
        status, body = self._compute()
        # Encoded once: every caller of the next second gets these bytes as they are.
        self._cached = (started, status, json.dumps(body).encode(), body)
        return self._cached

    # --- the range dashboard of a window, at most CACHE_S old ----------------------------

    def _range(self, window):
        with self._ranges_lock:
            entry = self._ranges.get(window)
            if entry is not None:
                self._ranges.move_to_end(window)
        if entry is not None and self.clock() - entry.started < CACHE_S:
            return entry
        return self._flight.run(("range", window), lambda: self._refresh_range(window))

    def _refresh_range(self, window):
        started = self.clock()
        lower, upper = window
        part = {"status": 200, "lower": timestamps.format_datetime(lower),
                "upper": timestamps.format_datetime(upper), "generated_at": timestamps.now(),
                "cache_s": CACHE_S}
        try:
            part["dashboard"] = self.data_interface.dashboard_range(lower, upper)
        except Exception as error:  # noqa: BLE001 - each failure answered as the app would
            status = next((code for kind, code in _RANGE_STATUS.items()
                           if isinstance(error, kind)), None)
            if status is None:
                log.exception("overview: range %s .. %s failed", part["lower"], part["upper"])
            # Never the last good figures instead: the failure is in the answer, with its
            # text as /dashboard/range would give it.
            part.update(status=status or 500, dashboard=None,
                        error=str(error) if status else "internal error")
        entry = _Range(started, part)
        with self._ranges_lock:
            self._ranges[window] = entry
            self._ranges.move_to_end(window)
            while len(self._ranges) > self.ranges_kept:
                self._ranges.popitem(last=False)
        return entry

    def _compute(self):
        backend = self.settings.backend
        parts = {"symbols": self._symbols}
        pipeline_health = getattr(self.data_interface, "pipeline_health", None)
        if pipeline_health is not None:  # a write-behind backend
            parts.update(pipeline=self._pipeline, store=self._newest_stored)
        # The parts wait on different stores: asked side by side, the answer takes as long
        # as the slowest store's timeout, not their sum.
        results = _run_together(parts, self._deadline_s())
        body = {"generated_at": timestamps.now(), "backend": backend, "cache_s": CACHE_S}
        errors = {name: error for name, (_, error) in results.items() if error}
        symbols, _ = results["symbols"]
        body["symbols"] = symbols["dashboards"] if symbols else None
        body["accuracy"] = symbols["accuracy"] if symbols else None
        if pipeline_health is not None:
            health, _ = results["pipeline"]
            stored, _ = results["store"]
            body["pipeline"] = {"applies": True, **(health or {}), **(stored or {})}
        else:
            body["pipeline"] = {"applies": False, "reason": (
                f"the {backend} backend has no ingest pipeline: its range dashboard reads "
                "the store it writes")}
        if errors:
            body["errors"] = errors
            body["error"] = "; ".join(dict.fromkeys(errors.values()))
            return 503, body
        return 200, body

    def _deadline_s(self):
        # Every call below is bounded by one of these timeouts; this only catches a hang.
        return 2 * max(self.settings.redis_timeout, self.settings.database_timeout) + 1.0

    # --- the parts ---------------------------------------------------------------------

    def _symbols(self):
        # Asked all at once, the 26 reads join one pipeline of the app's coalescing client
        # (one round trip); one after another they would wait for 26 batches of writes.
        dashboards = _map_together(self.data_interface.dashboard_symbol, ascii_lowercase)
        return {"dashboards": dashboards, "accuracy": self._accuracy()}

    def _accuracy(self):
        # The model's own counts (docs/API.md section 4): per symbol, conversations it
        # guessed vowel (n1) or consonant (n0). Only the redis backend keeps them apart
        # from the dashboards; it reads them at most once a second per process.
        stats_of = getattr(self.data_interface, "guess_stats", None)
        if stats_of is None:
            return {"available": False, "reason": (
                f"not available: the {self.settings.backend} backend keeps no count of its guesses")}
        per_symbol, guesses, correct = {}, 0, 0
        for symbol in ascii_lowercase:
            stats = stats_of(symbol)
            n = stats.n_vowel + stats.n_consonant
            right = stats.n_vowel if symbol in VOWELS else stats.n_consonant
            per_symbol[symbol] = {"guesses": n, "correct": right,
                                  "rate": round(right / n, 4) if n else None}
            guesses, correct = guesses + n, correct + right
        return {"available": True, "symbols": per_symbol, "guesses": guesses, "correct": correct,
                "rate": round(correct / guesses, 4) if guesses else None}

    def _pipeline(self):
        # Unavailable: shown as the part's error. /dashboard/range counts an event once it
        # is in MariaDB: range_behind_s is how far it lags the writes.
        return self.data_interface.pipeline_health()

    def _newest_stored(self):
        newest = self.data_interface.newest_conversation()  # Unavailable: shown as the part's error
        return {"newest_stored": timestamps.format_datetime(newest) if newest else None,
                "newest_stored_age_s": round(time.time() - _epoch(newest), 3) if newest else None}


class _Range:
    """One window's range dashboard: `part` is the answer's `range`, computed at
    `started` (the clock's); `combined` the last whole answer built with it."""
    __slots__ = ("started", "part", "combined")

    def __init__(self, started, part):
        self.started = started
        self.part = part
        self.combined = None  # (the overview's cache entry, status, body as JSON bytes)


def window_of(query):
    """(lower, upper) as given in a query string, or BadRequest. Both or neither: an
    empty query string is the overview alone (not passed here)."""
    # The raw bytes of the query as UTF-8, as Flask decodes /dashboard/range's path.
    text = query.encode("latin-1", "replace").decode("utf-8", "replace")
    given = {}
    for name, value in parse_qsl(text, keep_blank_values=True, encoding="utf-8",
                                 errors="replace"):
        if name not in WINDOW_PARAMETERS:
            raise validation.BadRequest(
                f"unknown parameter '{name}': the overview takes only lower and upper "
                "(the window of /dashboard/range)")
        if name in given:
            raise validation.BadRequest(f"parameter '{name}' given more than once")
        given[name] = value
    if len(given) != len(WINDOW_PARAMETERS):
        raise validation.BadRequest("give both lower and upper (the window of "
                                    "/dashboard/range), or neither")
    return given["lower"], given["upper"]


def _combine(overview, entry):
    """(status, JSON bytes): the overview's body with the window's `range`; 503 when
    either did not answer, with the range's failure among `errors`."""
    _, status, _, body = overview
    part = entry.part
    body = {**body, "range": part}
    if part["status"] != 200:
        errors = {**body.get("errors", {}), "range": part["error"]}
        body.update(errors=errors, error="; ".join(dict.fromkeys(errors.values())))
        status = 503
    return status, json.dumps(body).encode()


class _Failed(Exception):
    """A part of the overview whose store did not answer; str() is shown on the page."""


def _run_together(parts, deadline_s):
    """{name: (value, error text or None)} for each part, run side by side."""
    results = {name: (None, "timed out") for name in parts}

    def run(name, work):
        try:
            results[name] = (work(), None)
        except (_Failed, DataError) as error:
            results[name] = (None, str(error))
        except Exception as error:  # noqa: BLE001 - a bug: logged, and the page says so
            log.exception("overview: %s failed", name)
            results[name] = (None, f"internal error in {name}: {type(error).__name__}")

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in parts.items()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + deadline_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return dict(results)


def _map_together(function, items):
    """[function(item) for item in items], the calls made side by side; the first error
    is raised once all have ended (each call is bounded by its store's timeout)."""
    results, errors = [None] * len(items), []

    def call(index, item):
        try:
            results[index] = function(item)
        except Exception as error:  # noqa: BLE001 - re-raised below, in the caller
            errors.append(error)

    threads = [threading.Thread(target=call, args=pair, daemon=True) for pair in enumerate(items)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results




def _epoch(naive_utc):
    return timestamps.to_micros(naive_utc) / 1e6
