"""SQLiteInterface: the naive reference backend.

A connection per call, the model's stats counted with SQL on every /initial and the
dashboards answered with GROUP BY. Slow by design, never wrong: it is the baseline.
"""
import sqlite3

from server import timestamps
from server.data_interface import Conflict, DataInterface, NotFound, Unavailable
from server.initdb import init_db
from server.model import GuessStats

BUSY_TIMEOUT_S = 5.0

_SUMMARY = """
SELECT symbol, COUNT(*), MIN(ts), MAX(ts), COUNT(followup_ts)
FROM conversations {where} GROUP BY symbol ORDER BY symbol
"""


def _summary(row):
    symbol, count, earliest, latest, followups = row
    return {"count": count, "symbol": symbol, "earliest": earliest, "latest": latest,
            "followups": followups}


class SQLiteInterface(DataInterface):
    def __init__(self, path, policy):
        self.path = path
        self.policy = policy
        init_db(path)

    def _connect(self):
        return sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)

    def _run(self, work):
        connection = self._connect()
        try:
            return work(connection)
        except sqlite3.OperationalError as error:  # "database is locked" past the timeout
            raise Unavailable(f"sqlite: {error}") from error
        finally:
            connection.close()

    def initial(self, uuid, symbol):
        def work(db):
            counts = {guess: (n, f) for guess, n, f in db.execute(
                "SELECT guess, COUNT(*), COUNT(followup_ts) FROM conversations"
                " WHERE symbol = ? GROUP BY guess", (symbol,))}
            (n_c, f_c), (n_v, f_v) = counts.get(0, (0, 0)), counts.get(1, (0, 0))
            guess = self.policy.guess(GuessStats(n_v, n_c, f_v, f_c))
            try:
                db.execute("INSERT INTO conversations (uuid, symbol, guess, ts) VALUES (?, ?, ?, ?)",
                           (uuid, symbol, int(guess), timestamps.now()))
            except sqlite3.IntegrityError:
                raise Conflict(f"conversation {uuid} already exists") from None
            return guess

        return self._run(work)

    def followup(self, uuid):
        def work(db):
            updated = db.execute(
                "UPDATE conversations SET followup_ts = ? WHERE uuid = ? AND followup_ts IS NULL",
                (timestamps.now(), uuid)).rowcount
            if updated:
                return
            if db.execute("SELECT 1 FROM conversations WHERE uuid = ?", (uuid,)).fetchone():
                raise Conflict(f"conversation {uuid} already followed up")
            raise NotFound(f"no conversation {uuid}")

        self._run(work)

    def dashboard_symbol(self, symbol):
        def work(db):
            row = db.execute(_SUMMARY.format(where="WHERE symbol = ?"), (symbol,)).fetchone()
            return _summary(row) if row else _summary((symbol, 0, None, None, 0))

        return self._run(work)

    def dashboard_range(self, lower, upper):
        def work(db):
            rows = db.execute(_SUMMARY.format(where="WHERE ts BETWEEN ? AND ?"),
                              (timestamps.format_datetime(lower), timestamps.format_datetime(upper)))
            return [_summary(row) for row in rows]

        return self._run(work)
