"""Input rules of docs/API.md section 2, checked once in the app for every backend.

Each parser returns the canonical value or raises BadRequest with a reason that is
shown to the caller as-is.
"""
import json
import re
from datetime import datetime, time

SYMBOL = re.compile(r"[a-z]\Z")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
# re.ASCII: \d would otherwise also take other scripts' digits, such as '٢٠٢٤'.
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})\Z", re.ASCII)
_DATETIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?\Z",
                       re.ASCII)


class BadRequest(ValueError):
    """400: the request does not follow docs/API.md section 2."""


def parse_body(raw: bytes) -> dict:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: '[[[[...' nested ~1000 deep
        raise BadRequest("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _string_field(body: dict, name: str) -> str:
    if name not in body:
        raise BadRequest(f"missing field '{name}'")
    value = body[name]
    if not isinstance(value, str):
        raise BadRequest(f"field '{name}' must be a string")
    return value


def parse_uuid(body: dict) -> str:
    value = _string_field(body, "uuid")
    # uuid.UUID alone would also take braces, 'urn:uuid:' and misplaced hyphens.
    if not _UUID.match(value):
        raise BadRequest("field 'uuid' is not a valid UUID")
    return value.lower()


def parse_symbol(value: str) -> str:
    if not isinstance(value, str) or not SYMBOL.match(value):
        raise BadRequest("symbol must be exactly one character in a-z")
    return value


def parse_initial(body: dict):
    uuid = parse_uuid(body)
    return uuid, parse_symbol(_string_field(body, "symbol"))


def parse_bound(text: str, upper: bool) -> datetime:
    """A range bound; a date-only lower is the day's start, a date-only upper its end."""
    try:
        match = _DATE.match(text)
        if match:
            day = datetime(*map(int, match.groups()))
            return datetime.combine(day, time.max if upper else time.min)
        match = _DATETIME.match(text)
        if match:
            *fields, fraction = match.groups()
            micros = int((fraction or "0").ljust(6, "0"))
            return datetime(*map(int, fields), micros)
    except ValueError:
        pass  # a well-shaped but impossible date, such as 2024-02-30
    raise BadRequest(
        f"bad date '{text}': use YYYY-MM-DD or YYYY-MM-DD HH:MM:SS[.ffffff] (UTC)"
    )


def parse_range(lower: str, upper: str):
    low, high = parse_bound(lower, upper=False), parse_bound(upper, upper=True)
    if low > high:
        raise BadRequest("lower bound is after upper bound")
    return low, high
