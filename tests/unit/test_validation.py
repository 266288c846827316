"""Input rules of docs/API.md section 2 (server/validation.py), without an app."""
import uuid
from datetime import datetime

import pytest

from server.validation import (BadRequest, parse_body, parse_bound, parse_initial,
                               parse_range, parse_symbol, parse_uuid)


@pytest.mark.parametrize("text, upper, expected", [
    ("2024-03-05", False, datetime(2024, 3, 5, 0, 0, 0, 0)),
    ("2024-03-05", True, datetime(2024, 3, 5, 23, 59, 59, 999999)),
    ("2024-03-05 07:08:09", False, datetime(2024, 3, 5, 7, 8, 9)),
    ("2024-03-05 07:08:09", True, datetime(2024, 3, 5, 7, 8, 9)),
    ("2024-03-05T07:08:09", False, datetime(2024, 3, 5, 7, 8, 9)),
    ("2024-03-05 07:08:09.5", False, datetime(2024, 3, 5, 7, 8, 9, 500000)),
    ("2024-03-05T07:08:09.000001", True, datetime(2024, 3, 5, 7, 8, 9, 1)),
    ("2024-03-05 07:08:09.123456", False, datetime(2024, 3, 5, 7, 8, 9, 123456)),
    ("2024-02-29", False, datetime(2024, 2, 29)),  # a leap day
    ("2023-12-31 23:59:59.999999", False, datetime(2023, 12, 31, 23, 59, 59, 999999)),
])
def test_parse_bound_accepts_the_spec_forms(text, upper, expected):
    assert parse_bound(text, upper=upper) == expected


@pytest.mark.parametrize("text", [
    "", "2024", "2024-03", "24-03-05", "2024-3-5", "2024/03/05", "05-03-2024",
    "2024-03-05 07:08", "2024-03-05 7:08:09", "2024-03-05_07:08:09", "2024-03-05  07:08:09",
    "2024-03-05 07:08:09.", "2024-03-05 07:08:09.1234567", "2024-03-05 07:08:09Z",
    "2024-03-05 07:08:09+00:00", " 2024-03-05", "2024-03-05 ", "2024-03-05\n", "now",
    # well-shaped but impossible
    "2024-02-30", "2023-02-29", "2024-13-01", "2024-00-10", "2024-01-00", "2024-04-31",
    "2024-03-05 24:00:00", "2024-03-05 23:60:00", "2024-03-05 23:59:60", "0000-01-01",
])
@pytest.mark.parametrize("upper", [False, True])
def test_parse_bound_rejects_anything_else(text, upper):
    with pytest.raises(BadRequest):
        parse_bound(text, upper=upper)


def test_parse_range_orders_and_rejects_lower_after_upper():
    assert parse_range("2024-03-05", "2024-03-05") == (
        datetime(2024, 3, 5), datetime(2024, 3, 5, 23, 59, 59, 999999))
    moment = "2024-03-05 10:00:00.000001"
    assert parse_range(moment, moment) == (datetime(2024, 3, 5, 10, 0, 0, 1),) * 2
    with pytest.raises(BadRequest):
        parse_range("2024-03-06", "2024-03-05")
    with pytest.raises(BadRequest):
        parse_range("2024-03-05 10:00:00.000001", "2024-03-05 10:00:00")
    # A date-only lower later the same day as a datetime upper is still lower > upper.
    with pytest.raises(BadRequest):
        parse_range("2024-03-05 00:00:00.000001", "2024-03-04")


def test_uuid_is_canonicalised_to_lowercase():
    value = uuid.uuid4()
    assert parse_uuid({"uuid": str(value).upper()}) == str(value)
    assert parse_uuid({"uuid": str(value)}) == str(value)


@pytest.mark.parametrize("body", [
    {}, {"uuid": None}, {"uuid": 1}, {"uuid": ["x"]}, {"uuid": ""}, {"uuid": "not-a-uuid"},
    {"uuid": "{%s}" % uuid.UUID(int=1)}, {"uuid": "urn:uuid:%s" % uuid.UUID(int=1)},
    {"uuid": str(uuid.UUID(int=1)) + "0"}, {"uuid": str(uuid.UUID(int=1))[:-1]},
    {"uuid": str(uuid.UUID(int=1)) + "\n"}, {"uuid": "g" * 8 + str(uuid.UUID(int=1))[8:]},
])
def test_bad_uuids_are_rejected(body):
    with pytest.raises(BadRequest):
        parse_uuid(body)


@pytest.mark.parametrize("symbol", list("abcdefghijklmnopqrstuvwxyz"))
def test_every_lowercase_letter_is_a_symbol(symbol):
    assert parse_symbol(symbol) == symbol


@pytest.mark.parametrize("symbol", ["E", "A", "Z", "ab", "é", "", " ", "1", "a\n", "\na",
                                    "ａ", "ß", None, 1])
def test_other_symbols_are_rejected(symbol):
    with pytest.raises(BadRequest):
        parse_symbol(symbol)


def test_parse_initial_needs_both_string_fields_and_ignores_extras():
    value = str(uuid.uuid4())
    assert parse_initial({"uuid": value, "symbol": "q", "extra": [1]}) == (value, "q")
    for body in ({"uuid": value}, {"symbol": "q"}, {"uuid": value, "symbol": 7},
                 {"uuid": value, "symbol": ["q"]}, {"uuid": value, "symbol": "Q"}):
        with pytest.raises(BadRequest):
            parse_initial(body)


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'"x"', b"null", b"1", b"true",
                                 b"\xff\xfe\x00", b"{'uuid': 1}", b"[" * 1020,
                                 b'{"a":' * 200])
def test_parse_body_wants_a_json_object(raw):
    with pytest.raises(BadRequest):
        parse_body(raw)


def test_parse_body_returns_the_object():
    assert parse_body(b'{"uuid": "x", "n": 1}') == {"uuid": "x", "n": 1}


@pytest.mark.parametrize("text", ["٢٠٢٤-03-05", "２０２４-03-05", "2024-03-05 ０7:08:09"])
def test_bounds_with_non_ascii_digits_are_rejected(text):
    with pytest.raises(BadRequest):
        parse_bound(text, upper=False)
