"""One codec per value the store keeps in Redis: the conversation state, a symbol's
stats, a stream event. The Lua scripts (core/store/lua/) write the same formats;
each format is described once, here, and the scripts' headers point here.

- Conversation (og:{p}:conv:<uuid>): "<state><symbol><guess><ts>", state '-' open or
  '+' followed up, guess '1' vowel / '0' consonant, ts epoch microseconds (16 digits).
- SymbolStats (fields of og:{p}:stats): <s>:n1 <s>:n0 conversations guessed vowel /
  consonant, <s>:f1 <s>:f0 those that followed up, <s>:first <s>:last the earliest /
  latest /initial (epoch µs). A symbol's totals are the merge over partitions.
- Stream event (og:{p}:events entries): kind, uuid, symbol, guess, ts, cts (the
  conversation's /initial time). The worker trusts no entry: one that does not parse is
  a poison entry (MalformedEntry), never a crash; every field is checked against a
  strict pattern, which is what lets the writer put values into its INSERT as literals.
"""
import re
import time
from typing import NamedTuple


# -- the conversation ---------------------------------------------------------------

class Conversation(NamedTuple):
    followed: bool
    symbol: str
    guess: bool
    started_us: int  # the /initial time, epoch microseconds

    def encode(self):
        return f"{'+' if self.followed else '-'}{self.symbol}{'1' if self.guess else '0'}{self.started_us}"

    @classmethod
    def decode(cls, text):
        return cls(text[0] == "+", text[1], text[2] == "1", int(text[3:]))


# -- a symbol's stats ---------------------------------------------------------------

STAT_NAMES = ("n1", "n0", "f1", "f0", "first", "last")


class SymbolStats(NamedTuple):
    n1: int = 0
    n0: int = 0
    f1: int = 0
    f0: int = 0
    first: int = None  # epoch µs of the earliest /initial, None before any
    last: int = None

    @staticmethod
    def fields(symbol):
        """The hash fields of `symbol`, in this tuple's order (HMGET)."""
        return [f"{symbol}:{name}" for name in STAT_NAMES]

    @classmethod
    def from_values(cls, values):
        """From HMGET's answer to fields(): missing fields are None."""
        n1, n0, f1, f0, first, last = values
        return cls(int(n1 or 0), int(n0 or 0), int(f1 or 0), int(f0 or 0),
                   int(first) if first else None, int(last) if last else None)

    @classmethod
    def from_hash(cls, mapping):
        """{symbol: SymbolStats} of a whole stats hash (HGETALL)."""
        found = {}
        for field, value in mapping.items():
            symbol, _, name = field.partition(":")
            if name in STAT_NAMES:
                found.setdefault(symbol, {})[name] = value
        return {symbol: cls.from_values([values.get(name) for name in STAT_NAMES])
                for symbol, values in found.items()}

    def merge(self, other):
        """Totals of two partitions (or of a partition and one event)."""
        return SymbolStats(self.n1 + other.n1, self.n0 + other.n0, self.f1 + other.f1,
                           self.f0 + other.f0, _bound(min, self.first, other.first),
                           _bound(max, self.last, other.last))

    def count(self, kind, guess, ts):
        """These stats with one event added."""
        g = "1" if guess else "0"
        if kind == "followup":
            return self._replace(**{"f" + g: getattr(self, "f" + g) + 1})
        return self._replace(**{"n" + g: getattr(self, "n" + g) + 1}).merge(
            SymbolStats(first=ts, last=ts))

    def mapping(self, symbol):
        """The hash fields and values of `symbol` (HSET), without the empty bounds."""
        return {field: value for field, value in zip(self.fields(symbol), self)
                if value is not None}

    @property
    def conversations(self):
        return self.n1 + self.n0

    @property
    def followups(self):
        return self.f1 + self.f0


def _bound(pick, a, b):
    return b if a is None else a if b is None else pick(a, b)


# -- the stream event ---------------------------------------------------------------

EVENT_FIELDS = ("kind", "uuid", "symbol", "guess", "ts", "cts")
"""The fields of an entry, as initial.lua and followup.lua XADD them."""

KINDS = frozenset(("initial", "followup"))
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_MICROS = re.compile(r"\d{16}\Z")
_ENTRY_ID = re.compile(r"\d{1,20}-\d{1,20}\Z")


class EventRow(NamedTuple):
    """One og.events row, in the column order of ingest/writer.py's INSERT."""
    stream: int
    event_id: str
    uuid: str
    kind: str
    symbol: str
    guess: int
    ts: str
    conversation_ts: str


_new_row = tuple.__new__


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
        """The EventRow of a stream entry (its fields as a dict), or MalformedEntry."""
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
        # tuple.__new__: a NamedTuple's own constructor costs ~0.7 us an event here.
        return _new_row(EventRow, (partition, entry_id, uuid, kind, symbol, int(guess),
                                   self._datetime(ts), self._datetime(conversation_ts)))
