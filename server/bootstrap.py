"""Composition root: builds the backend named by OG_BACKEND from the settings.

Settings are read and checked here, once (core/config.py). Nothing here opens a
connection; backends connect on first use, which under gunicorn is in the worker,
after gevent has patched the standard library.
"""
from core import config
from server.model import Policy


def build_policy(settings):
    return Policy(epsilon=settings.epsilon, seed=settings.seed)


def build_data_interface(backend=None, settings=None):
    settings = settings or config.load()
    backend = backend or settings.backend
    if backend == "null":
        from server.null_interface import NullInterface

        return NullInterface()
    if backend == "sqlite":
        from server.sqlite_interface import SQLiteInterface

        return SQLiteInterface(settings.sqlite_path, build_policy(settings))
    if backend == "redis":
        from server.redis_interface import RedisInterface

        return RedisInterface.from_settings(build_policy(settings), settings)
    raise ValueError(f"OG_BACKEND must be one of {', '.join(config.BACKENDS)}, not {backend!r}")
