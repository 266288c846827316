"""One pipeline for the Redis calls of concurrent requests in a worker.

Under gevent, many requests of one gunicorn worker wait on Redis at once. Instead of a
round trip each, the first caller becomes the leader: it sends every call queued so far
in one pipeline (one write, one read of all replies) and hands each caller its own reply.
Callers arriving while the leader waits queue up for the next pipeline, which the first
of them leads. A lone request pays no extra cost; a busy worker pays one round trip per
pipeline instead of per request, which is where the CPU of a Python API goes.

Plain `threading` primitives: gevent's patching makes them cooperative in gunicorn, and
they stay correct with real threads (tests, tools).
"""
import threading

from redis.exceptions import ConnectionError, ResponseError, TimeoutError


class _Call:
    __slots__ = ("commands", "replies", "ready", "lead")

    def __init__(self, commands):
        self.commands = commands
        self.replies = None
        self.ready = threading.Event()
        self.lead = False


class CoalescingClient:
    def __init__(self, pool, wait_timeout):
        """`pool`: a redis ConnectionPool; `wait_timeout`: bound on a queued call's wait."""
        self._pool = pool
        self._wait_timeout = wait_timeout
        self._lock = threading.Lock()
        self._queue = []
        self._leading = False

    def execute(self, *command):
        """Run one command; return its reply or raise its error."""
        return self.execute_many([command])[0]

    def execute_many(self, commands):
        """Run commands in one pipeline; return their replies, raising the first error."""
        call = _Call(commands)
        with self._lock:
            self._queue.append(call)
            lead = not self._leading
            self._leading = True
        if not lead:
            self._follow(call)
            lead = call.replies is None  # woken to lead the next pipeline
        if lead:
            self._lead()
        for reply in call.replies:
            if isinstance(reply, Exception):
                raise reply
        return call.replies

    def _follow(self, call):
        if call.ready.wait(self._wait_timeout):
            return
        with self._lock:
            if not call.lead and call in self._queue:
                self._queue.remove(call)  # never sent: safe to give up
                raise TimeoutError(f"no Redis reply within {self._wait_timeout} s")
        # Already in a pipeline on the wire (bounded by the socket timeout), or just
        # handed the lead: either way the reply or the lead is coming.
        call.ready.wait()

    def _lead(self):
        with self._lock:
            batch, self._queue = self._queue, []
        try:
            self._send(batch)
        finally:
            for call in batch:
                if call.replies is None:  # _send was interrupted
                    call.replies = [ConnectionError("pipeline interrupted")] * len(call.commands)
                call.ready.set()
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.ready.set()
                else:
                    self._leading = False

    def _send(self, batch):
        commands = [command for call in batch for command in call.commands]
        replies = []
        connection = self._pool.get_connection()
        try:
            connection.send_packed_command(connection.pack_commands(commands), check_health=False)
            for _ in commands:
                try:
                    replies.append(connection.read_response())
                except ResponseError as error:  # an error reply; the connection stays usable
                    replies.append(error)
        except (ConnectionError, TimeoutError, OSError) as error:
            # The connection state is unknown: drop it. Calls without a reply fail; whether
            # Redis ran them is unknown, so their requests get 503 and may be retried.
            connection.disconnect()
            failure = error if isinstance(error, (ConnectionError, TimeoutError)) else ConnectionError(str(error))
            replies.extend([failure] * (len(commands) - len(replies)))
        except BaseException:
            connection.disconnect()
            raise
        finally:
            self._pool.release(connection)
        position = 0
        for call in batch:
            call.replies = replies[position:position + len(call.commands)]
            position += len(call.commands)
