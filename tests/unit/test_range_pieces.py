"""How a window is cut into buckets and edges (core/range_buckets.py), and the bucket
increments of a batch: pure functions, checked against brute force."""
from datetime import datetime, timedelta

from hypothesis import given, settings, strategies as st

from core import range_buckets, timestamps
from core.range_buckets import SPANS_S, window_pieces

SECOND = 1_000_000
START = datetime(2024, 2, 27, 22, 58, 0)
# Windows around minute, hour, day, month and leap-day boundaries, to the microsecond.
moments = st.integers(0, 4 * 86400 * SECOND).map(lambda us: START + timedelta(microseconds=us))
nearby = st.integers(0, 3 * SECOND)


def covering(pieces, moment):
    """Which pieces hold `moment`: a bucket piece holds the bucket of its span that
    contains the moment if that bucket starts inside the piece; an edge holds it directly."""
    found = []
    micros = timestamps.to_micros(moment)
    for index, (span, first, end) in enumerate(pieces.buckets):
        start = micros - micros % (span * SECOND)
        if timestamps.to_micros(first) <= start < timestamps.to_micros(end):
            found.append(("bucket", index))
    (first0, end0), (first1, last1) = pieces.edges
    if first0 <= moment < end0:
        found.append(("edge", 0))
    if first1 <= moment <= last1:
        found.append(("edge", 1))
    return found


def check(lower, upper):
    pieces = window_pieces(lower, upper)
    assert len(pieces.buckets) == 7  # one query shape
    for span, first, end in pieces.buckets:
        unit = span * SECOND
        # Bucket pieces start and end on their span's boundaries: whole buckets only.
        assert timestamps.to_micros(first) % unit == 0 or first == end, (span, first, end)
        assert timestamps.to_micros(end) % unit == 0 or first == end, (span, first, end)
    probes = {lower, upper, lower - timedelta(microseconds=1), upper + timedelta(microseconds=1)}
    for moment in list(probes):
        for step in (SECOND // 2, SECOND, 60 * SECOND, 3600 * SECOND):
            probes.update({moment + timedelta(microseconds=step), moment - timedelta(microseconds=step)})
    for (span, first, end) in pieces.buckets:
        for edge in (first, end):
            probes.update({edge, edge - timedelta(microseconds=1)})
    for moment in probes:
        inside = lower <= moment <= upper
        assert len(covering(pieces, moment)) == (1 if inside else 0), (lower, upper, moment, pieces)


@settings(max_examples=400, deadline=None)
@given(moments, moments)
def test_pieces_cover_any_window_exactly_once(a, b):
    check(min(a, b), max(a, b))


@settings(max_examples=200, deadline=None)
@given(moments, nearby)
def test_pieces_cover_short_windows_exactly_once(lower, length):
    check(lower, lower + timedelta(microseconds=length))


def test_bucket_pieces_read_a_bounded_number_of_buckets():
    lower, upper = datetime(2024, 1, 1, 0, 0, 0, 1), datetime(2024, 3, 1, 23, 59, 58, 999999)
    pieces = window_pieces(lower, upper)
    counts = {}
    for span, first, end in pieces.buckets:
        counts[span] = counts.get(span, 0) + (end - first) // timedelta(seconds=span)
    assert counts[1] <= 2 * 59 and counts[60] <= 2 * 59 and counts[3600] <= 2 * 23
    assert counts[86400] == 59
    assert pieces.edges[0] == (lower, datetime(2024, 1, 1, 0, 0, 1))


def test_a_window_outside_what_mariadb_can_store_is_clamped_or_empty():
    assert window_pieces(datetime(1, 1, 1), datetime(999, 12, 31)) is None
    whole = window_pieces(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999))
    assert whole.edges[0][0] == datetime(1000, 1, 1)


def test_deltas_equal_brute_force_per_span():
    events = [
        ("initial", "a", "2024-02-28 23:59:59.999999"),
        ("initial", "a", "2024-02-29 00:00:00.000000"),
        ("followup", "a", "2024-02-29 00:00:00.000000"),
        ("followup", "b", "2024-02-29 00:00:00.500000"),  # its initial is in another batch
        ("initial", "a", "2024-02-29 00:00:59.000001"),
        ("initial", "a", "2024-02-29 00:59:59.100000"),
    ]
    got = dict(range_buckets.deltas(events))
    want = {}
    for kind, symbol, cts in events:
        moment = datetime.strptime(cts, timestamps.FORMAT)
        for span in SPANS_S:
            micros = timestamps.to_micros(moment)
            start = timestamps.parse_micros(micros - micros % (span * SECOND))
            key = (span, start.strftime("%Y-%m-%d %H:%M:%S"), symbol)
            bucket = want.setdefault(key, [0, 0, None, None])
            if kind == "initial":
                bucket[0] += 1
                bucket[2] = cts if bucket[2] is None else min(bucket[2], cts)
                bucket[3] = cts if bucket[3] is None else max(bucket[3], cts)
            else:
                bucket[1] += 1
    assert got == want
    assert got[(86400, "2024-02-29 00:00:00", "a")] == [3, 1, "2024-02-29 00:00:00.000000",
                                                        "2024-02-29 00:59:59.100000"]
    assert got[(1, "2024-02-29 00:00:00", "b")] == [0, 1, None, None]
    keys = [key for key, _ in range_buckets.deltas(events)]
    assert keys == sorted(keys)  # one lock order for every worker
