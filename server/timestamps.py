"""The timestamp format lives in core/timestamps.py; this name stays for the frozen
reference backend (server/sqlite_interface.py imports it from here)."""
from core.timestamps import FORMAT, format_datetime, format_micros, now, parse_micros, to_micros  # noqa: F401
