"""Creates the reference SQLite database: one table of conversations.

Run as `python -m server.initdb [PATH]` (default OG_SQLITE_PATH); safe to run again.
"""
import os
import sqlite3
import sys

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    uuid        TEXT PRIMARY KEY,
    symbol      TEXT NOT NULL,
    guess       INTEGER NOT NULL,   -- 1 = the server guessed vowel
    ts          TEXT NOT NULL,      -- 'YYYY-MM-DD HH:MM:SS.ffffff' UTC of the /initial
    followup_ts TEXT                -- time of the /followup, NULL until there is one
);
CREATE INDEX IF NOT EXISTS conversations_symbol ON conversations (symbol, guess);
CREATE INDEX IF NOT EXISTS conversations_ts ON conversations (ts);
"""


def init_db(path):
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with sqlite3.connect(path) as connection:
        # WAL lets readers run beside the one writer of several gunicorn workers.
        connection.execute("PRAGMA journal_mode=WAL")
        connection.executescript(SCHEMA)
    connection.close()


if __name__ == "__main__":
    from server import config

    init_db(sys.argv[1] if len(sys.argv) > 1 else config.get_sqlite_path())
