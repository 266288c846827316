"""The ingest worker: drains the Redis event streams into MariaDB og.events.

Run `python -m ingest` (see ingest/__main__.py for status and rebuild).
"""
