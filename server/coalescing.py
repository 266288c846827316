"""Single flight: concurrent identical range queries of an API process share one run.

(The request path's Redis pipelines, the same idea for writes, are CoalescingClient in
core/store/client.py, the one Redis client of the API and the worker.)
"""
import threading


class _Flight:
    __slots__ = ("result", "error", "done", "waiters")

    def __init__(self):
        self.result = None
        self.error = None
        self.done = threading.Event()
        self.waiters = 0


class SingleFlight:
    """Concurrent identical reads share one execution (the same idea, for queries).

    A dashboard watched by many people asks the same range query many times at once;
    the first caller runs it, callers arriving meanwhile wait for its answer instead of
    queueing their own copies on the database. An answer is never older than the query
    that produced it, which started before the caller arrived by at most its own
    duration: well within the freshness /dashboard/range already documents.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._flights = {}

    def run(self, key, work):
        with self._lock:
            flight = self._flights.get(key)
            lead = flight is None
            if lead:
                flight = self._flights[key] = _Flight()
            else:
                flight.waiters += 1
        if not lead:
            flight.done.wait()  # the leader's own waits are bounded; it always sets done
            if flight.error is not None:
                raise flight.error
            return flight.result
        try:
            flight.result = work()
            return flight.result
        except Exception as error:
            flight.error = error
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
