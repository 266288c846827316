"""Settings live in core/config.py; this name stays for the frozen reference
(server/initdb.py imports it from here)."""
from core.config import get_sqlite_path  # noqa: F401
