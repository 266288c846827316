"""Distinct random /dashboard/range windows of every kind, seeded, with their URL bounds.

Kinds: whole days and runs of days (date-only bounds), microsecond bounds of any length,
sub-second windows (a zero-length one included), windows across a minute, an hour or a
day boundary, windows wholly before or after the data, windows that start before the
data and end inside it (or the reverse), and the whole history. Bounds are written as
the API takes them (server/validation.py): 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS[.f..]'
with a space or a 'T', 0, 3 or 6 fraction digits; URL-quoted.

Windows are distinct as the API parses them (server.validation.parse_range), so no two
share an answer through the API's single flight, and a date-only day is never also
asked as its microsecond spelling.
"""
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from server.validation import parse_range

KINDS = {
    # kind: weight
    "day": 4, "days": 8, "micros": 20, "subsecond": 10, "minute_edge": 10, "hour_edge": 10,
    "day_edge": 10, "before": 4, "after": 4, "partial": 8, "history": 4, "seconds": 8,
}
RETRIES = 30
MICRO = timedelta(microseconds=1)


@dataclass(frozen=True)
class Window:
    kind: str
    lower: str
    """The bound as text (unquoted); `path` has them quoted."""
    upper: str
    low: datetime
    """As the API parses it: what the in-process queries are given."""
    high: datetime

    @property
    def path(self):
        return f"/dashboard/range/{quote(self.lower, safe=':')}/{quote(self.upper, safe=':')}"

    def as_dict(self):
        return {"kind": self.kind, "lower": self.lower, "upper": self.upper}


def _text(moment, rng, digits=None):
    digits = rng.choice((0, 3, 6, 6)) if digits is None else digits
    separator = rng.choice((" ", " ", "T"))
    text = moment.strftime(f"%Y-%m-%d{separator}%H:%M:%S")
    if digits:
        text += "." + f"{moment.microsecond:06d}"[:digits]
    return text


def _truncate(moment, digits):
    unit = 10 ** (6 - digits)
    return moment.replace(microsecond=moment.microsecond // unit * unit)


class Generator:
    def __init__(self, first, last, seed):
        """first, last: the data's time span (naive UTC datetimes)."""
        self.first, self.last = first, last
        self.rng = random.Random(seed)
        self.seen = set()

    def _moment(self, low=None, high=None):
        low, high = low or self.first, high or self.last
        return low + timedelta(microseconds=self.rng.randrange(int((high - low) / MICRO)))

    def _date(self, pad_days=0):
        days = (self.last.date() - self.first.date()).days
        return self.first.date() + timedelta(days=self.rng.randint(-pad_days, days + pad_days))

    def _bounds(self, kind):
        r = self.rng
        if kind == "day":
            day = self._date(pad_days=2).isoformat()
            return day, day
        if kind == "days":
            a = self._date(pad_days=1)
            return a.isoformat(), (a + timedelta(days=r.randint(1, 29))).isoformat()
        if kind in ("micros", "seconds"):
            digits = 6 if kind == "micros" else 0
            length = timedelta(seconds=10 ** r.uniform(0, 6.4))  # 1 s .. ~29 days
            low = _truncate(self._moment(high=self.last - length / 2), digits)
            high = _truncate(low + length, digits)
            return _text(low, r, digits), _text(high, r, digits)
        if kind == "subsecond":
            low = self._moment()
            high = low + timedelta(microseconds=r.choice((0, r.randrange(1, 1_000_000))))
            return _text(low, r, 6), _text(high, r, 6)
        if kind in ("minute_edge", "hour_edge", "day_edge"):
            unit = {"minute_edge": 60, "hour_edge": 3600, "day_edge": 86400}[kind]
            anchor = self._moment()
            epoch = datetime(1970, 1, 1)
            edge = epoch + timedelta(seconds=int((anchor - epoch).total_seconds()) // unit * unit)
            before = timedelta(microseconds=r.randrange(1, unit * 1_000_000))
            after = timedelta(microseconds=r.randrange(0, unit * 1_000_000))
            digits = r.choice((0, 3, 6))
            low, high = _truncate(edge - before, digits), _truncate(edge + after, digits)
            return _text(low, r, digits), _text(high, r, digits)
        if kind == "before":
            high = self.first - timedelta(seconds=10 ** r.uniform(-3, 7))
            low = high - timedelta(seconds=10 ** r.uniform(-3, 8))
            return _text(low, r, 6), _text(high, r, 6)
        if kind == "after":
            low = self.last + timedelta(days=1, seconds=10 ** r.uniform(-3, 7))
            high = low + timedelta(seconds=10 ** r.uniform(-3, 8))
            return _text(low, r, 6), _text(high, r, 6)
        if kind == "partial":  # from before the data into it, or from inside it to past it
            if r.random() < 0.5:
                low = self.first - timedelta(seconds=10 ** r.uniform(0, 6))
                return _text(low, r), _text(self._moment(), r, 6)
            high = self.last + timedelta(seconds=10 ** r.uniform(0, 6))
            return _text(self._moment(), r, 6), _text(high, r)
        if kind == "history":
            low = self.first - timedelta(days=r.randint(1, 3000))
            high = self.last + timedelta(days=r.randint(2, 3000))
            if r.random() < 0.5:
                return low.date().isoformat(), high.date().isoformat()
            return _text(low, r), _text(high, r)
        raise ValueError(kind)

    def window(self, kind):
        for _ in range(RETRIES):
            lower, upper = self._bounds(kind)
            low, high = parse_range(lower, upper)
            if (low, high) not in self.seen:
                self.seen.add((low, high))
                return Window(kind, lower, upper, low, high)
        return None

    def take(self, count):
        """`count` distinct windows, kinds drawn by weight (a kind that runs out of
        distinct windows, such as single days, gives way to the others)."""
        kinds, weights = list(KINDS), list(KINDS.values())
        out = []
        while len(out) < count:
            window = self.window(self.rng.choices(kinds, weights)[0])
            if window is None:
                continue
            out.append(window)
        return out
