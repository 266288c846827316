"""gunicorn settings for the API: gevent workers, loopback by default.

    gunicorn -c gunicorn.conf.py server.app:app
"""
import os

bind = os.environ.get("OG_BIND", "127.0.0.1:5000")
worker_class = "gevent"
# One worker per core of the reference machine: a gevent worker is one CPU-bound
# process (benchmarks/results: the API uses ~1.6-1.7 of the 2 cores at saturation).
# More workers than cores only add context switches; try `python -m benchmarks --workers N`.
workers = int(os.environ.get("OG_WORKERS", "2"))
worker_connections = int(os.environ.get("OG_WORKER_CONNECTIONS", "1000"))
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
loglevel = os.environ.get("OG_LOG_LEVEL", "info")
