"""The one timestamp format of the API: 'YYYY-MM-DD HH:MM:SS.ffffff', UTC."""
import time
from datetime import datetime, timezone

FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def format_datetime(moment: datetime) -> str:
    # isoformat, unlike strftime('%Y') here, keeps four digits in years before 1000.
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")


def now() -> str:
    return format_datetime(datetime.now(timezone.utc))


def format_micros(micros) -> str:
    """Epoch microseconds (int or digit string, as Redis TIME gives) -> API format."""
    seconds, fraction = divmod(int(micros), 1_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) + ".%06d" % fraction


def to_micros(moment: datetime) -> int:
    """A naive UTC datetime -> epoch microseconds."""
    delta = moment.replace(tzinfo=timezone.utc) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_micros(micros) -> datetime:
    """Epoch microseconds -> naive UTC datetime."""
    seconds, fraction = divmod(int(micros), 1_000_000)
    return datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None, microsecond=fraction)
