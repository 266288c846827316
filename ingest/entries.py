"""Stream entries -> og.events rows, checked field by field.

The API's Lua scripts are the only writers of the stream, but the worker trusts no
entry: one that does not parse is a poison entry (MalformedEntry), never a crash.
Every field of a row is checked against a strict pattern here, which is what lets the
writer put the values into its INSERT as literals (see ingest/writer.py).
"""
import re
import time

KINDS = frozenset(("initial", "followup"))
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_MICROS = re.compile(r"\d{16}\Z")
_ENTRY_ID = re.compile(r"\d{1,20}-\d{1,20}\Z")


class MalformedEntry(ValueError):
    """The entry cannot become a row; str() says why."""


class Rows:
    """Builds rows; remembers formatted seconds, which consecutive events share."""

    def __init__(self):
        self._seconds = {}

    def _datetime(self, micros):
        seconds = micros[:-6]
        text = self._seconds.get(seconds)
        if text is None:
            if len(self._seconds) > 4096:
                self._seconds.clear()
            text = self._seconds[seconds] = time.strftime(
                "%Y-%m-%d %H:%M:%S", time.gmtime(int(seconds)))
        return f"{text}.{micros[-6:]}"

    def row(self, partition, entry_id, fields):
        """A tuple in the column order of ingest.writer.COLUMNS, or MalformedEntry."""
        if not isinstance(partition, int) or not _ENTRY_ID.match(entry_id):
            raise MalformedEntry(f"bad entry id {partition!r}/{entry_id!r}")
        try:
            kind, uuid, symbol, guess = fields["kind"], fields["uuid"], fields["symbol"], fields["guess"]
            ts, conversation_ts = fields["ts"], fields["cts"]
        except KeyError as missing:
            raise MalformedEntry(f"missing field {missing}") from None
        if kind not in KINDS:
            raise MalformedEntry(f"bad kind {kind!r}")
        if not _UUID.match(uuid):
            raise MalformedEntry(f"bad uuid {uuid!r}")
        if len(symbol) != 1 or not "a" <= symbol <= "z":
            raise MalformedEntry(f"bad symbol {symbol!r}")
        if guess not in ("0", "1"):
            raise MalformedEntry(f"bad guess {guess!r}")
        if not _MICROS.match(ts) or not _MICROS.match(conversation_ts):
            raise MalformedEntry(f"bad timestamp {ts!r} / {conversation_ts!r}")
        return (partition, entry_id, uuid, kind, symbol, int(guess),
                self._datetime(ts), self._datetime(conversation_ts))
