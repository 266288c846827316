"""The API's one timestamp format (server/timestamps.py)."""
import re
from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from core import timestamps

API_FORMAT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}\Z")
EPOCH = datetime(1970, 1, 1)

moments = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999))


def test_known_values():
    assert timestamps.to_micros(EPOCH) == 0
    assert timestamps.format_micros(0) == "1970-01-01 00:00:00.000000"
    assert timestamps.format_micros("1709622489000001") == "2024-03-05 07:08:09.000001"
    assert timestamps.to_micros(datetime(2024, 3, 5, 7, 8, 9, 1)) == 1709622489000001
    assert timestamps.format_datetime(datetime(2024, 3, 5, 7, 8, 9, 1)) == "2024-03-05 07:08:09.000001"


@given(moments)
def test_to_micros_and_format_micros_round_trip(moment):
    micros = timestamps.to_micros(moment)
    assert micros == (moment - EPOCH) // timedelta(microseconds=1)
    assert timestamps.format_micros(micros) == timestamps.format_datetime(moment)
    assert timestamps.format_micros(str(micros)) == timestamps.format_datetime(moment)
    assert datetime.strptime(timestamps.format_micros(micros), timestamps.FORMAT) == moment


@given(moments, moments)
def test_formatted_strings_sort_like_the_moments(a, b):
    # SQL stores compare these strings; their order must be time order.
    assert (timestamps.format_datetime(a) < timestamps.format_datetime(b)) == (a < b)


def test_now_is_utc_in_the_api_format():
    before = datetime.now(timezone.utc).replace(tzinfo=None)
    stamp = timestamps.now()
    after = datetime.now(timezone.utc).replace(tzinfo=None)
    assert API_FORMAT.match(stamp)
    assert before <= datetime.strptime(stamp, timestamps.FORMAT) <= after


def test_years_before_1000_keep_four_digits():
    assert timestamps.format_datetime(datetime(999, 12, 31, 23, 59, 59, 999999)) == (
        "0999-12-31 23:59:59.999999")
