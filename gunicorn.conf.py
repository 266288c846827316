"""gunicorn settings for the API: gevent workers, loopback by default.

    gunicorn -c gunicorn.conf.py

serves server/wsgi.py (server.app:app behind the body guard of the HTTP edge).

Every setting comes from core/config.py, checked here once, in the master, so a bad
value stops gunicorn at start with its name instead of failing in each worker.
"""
import sys

# Only names gunicorn knows are settings here ("config" is one of them: import no
# module under that name).
from core.config import SettingsError, load as load_settings

try:
    _settings = load_settings()
except SettingsError as error:
    sys.exit(f"gunicorn.conf.py: {error}")

wsgi_app = "server.wsgi:application"
bind = _settings.gunicorn_bind or _settings.bind
worker_class = "gevent"
# One worker per core of the reference machine: a gevent worker is one CPU-bound
# process (benchmarks/results: the API uses ~1.6-1.7 of the 2 cores at saturation).
# More workers than cores only add context switches; try `python -m benchmarks --workers N`.
workers = _settings.workers
worker_connections = _settings.worker_connections
keepalive = 30
timeout = 30
graceful_timeout = 10
# No app preloading: each worker builds its clients after gevent has patched it.
preload_app = False
# gunicorn 27's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl),
# shared by every gunicorn of that user; we do not use it.
control_socket_disable = True
accesslog = None
errorlog = "-"
loglevel = _settings.log_level
