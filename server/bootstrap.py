"""Composition root: builds the backend named by OG_BACKEND from configuration.

Nothing here opens a connection; backends connect on first use, which under
gunicorn is in the worker, after gevent has patched the standard library.
"""
from core import config
from server.model import Policy


def build_policy():
    return Policy(epsilon=config.get_epsilon(), seed=config.get_seed())


def build_data_interface(backend=None):
    backend = backend or config.get_backend()
    if backend == "null":
        from server.null_interface import NullInterface

        return NullInterface()
    if backend == "sqlite":
        from server.sqlite_interface import SQLiteInterface

        return SQLiteInterface(config.get_sqlite_path(), build_policy())
    if backend == "redis":
        from server.redis_interface import RedisInterface

        return RedisInterface.from_config(build_policy())
    raise ValueError(f"OG_BACKEND must be null, sqlite or redis, not {backend!r}")
