"""The MariaDB schema: og.events, the raw event store, and the range dashboard's buckets.

og.events has one row per accepted event, append-only: the source of truth.
og.range_buckets is derived from it (core/range_buckets.py keeps it exact), and
og.migrations records which derived data is complete. The ingest worker writes them and
creates them when missing; the API reads them for /dashboard/range.
"""
import hashlib
from typing import NamedTuple

from sqlalchemy import (CHAR, Boolean, Column, Computed, Enum, Index, Integer, MetaData,
                        SmallInteger, String, Table, case, create_engine, func, select)
from sqlalchemy.dialects.mysql import BIGINT, DATETIME, INTEGER
from sqlalchemy.exc import OperationalError

from core import timestamps

metadata = MetaData()
DUPLICATE_KEY_NAME = 1061
DUPLICATE_COLUMN = 1060
NO_SUCH_INDEX = 1091
UUID_KEY = "IF(kind = 'initial', CAST(CONV(LEFT(MD5(RTRIM(uuid)), 16), 16, 10) AS UNSIGNED), NULL)"
"""64 bits of the uuid's MD5. Not CRC32: a client can make any number of uuids share a
CRC32 (it is linear), and every lookup of that key would read all of their rows."""
RETIRED_INDEXES = ("events_by_uuid",)
"""Indexes an earlier version made, dropped by create_tables (a full CHAR(36) uuid index
on every row: it halved the drain on a store larger than the buffer pool)."""
RETIRED_UUID_KEY_TYPE = "int(10) unsigned"
"""The CRC32 uuid_key an earlier version made: replaced (index and column) at start."""

events = Table(
    "events",
    metadata,
    # The stream entry id is unique within its partition's stream; (stream, event_id)
    # is unique overall, so a redelivered entry can never become a second row.
    Column("stream", SmallInteger, primary_key=True, autoincrement=False,
           comment="stream partition the event came from"),
    Column("event_id", String(41), primary_key=True, comment="Redis stream entry id"),
    Column("uuid", CHAR(36), nullable=False),
    Column("kind", Enum("initial", "followup", name="event_kind"), nullable=False),
    Column("symbol", CHAR(1), nullable=False),
    Column("guess", Boolean, nullable=False, comment="1 = the server guessed vowel"),
    Column("ts", DATETIME(fsp=6), nullable=False, comment="event time, UTC"),
    Column("conversation_ts", DATETIME(fsp=6), nullable=False,
           comment="the conversation's /initial time, UTC"),
    # Serves /dashboard/range from the index alone: a range scan on conversation_ts.
    Index("events_by_conversation_ts", "conversation_ts", "symbol", "kind"),
    # A followup after its conversation's window, or a reused uuid, looks the conversation
    # up here. Only initial rows have a key, and an 8-byte one: followup rows all index
    # NULL, in primary-key (time) order, so they append; initial rows are the only
    # random inserts, as small as they can be (docs/OPERATIONS.md: sizing).
    Column("uuid_key", BIGINT(unsigned=True),
           # RTRIM: MariaDB refuses an indexed virtual column on a bare CHAR column (its
           # value would depend on PAD_CHAR_TO_FULL_LENGTH).
           Computed(UUID_KEY, persisted=False),
           comment="64 bits of the MD5 of the uuid of an initial event (NULL for a followup)"),
    Index("events_by_uuid_key", "uuid_key"),
    mysql_engine="InnoDB",
    mysql_charset="ascii",
)

range_buckets = Table(
    "range_buckets",
    metadata,
    Column("span_s", Integer, primary_key=True, autoincrement=False,
           comment="bucket length in seconds: 1, 60, 3600 or 86400"),
    Column("start", DATETIME(fsp=0), primary_key=True, comment="bucket start, UTC"),
    Column("symbol", CHAR(1), primary_key=True),
    Column("conversations", INTEGER(unsigned=True), nullable=False,
           comment="initial events whose time is in the bucket"),
    Column("followups", INTEGER(unsigned=True), nullable=False,
           comment="followups of those conversations, whenever they came"),
    Column("earliest", DATETIME(fsp=6), nullable=True, comment="first initial in the bucket"),
    Column("latest", DATETIME(fsp=6), nullable=True, comment="last initial in the bucket"),
    mysql_engine="InnoDB",
    mysql_charset="ascii",
)

migrations = Table(
    "migrations",
    metadata,
    Column("name", String(64), primary_key=True,
           comment="derived data that is complete, e.g. 'range_buckets'"),
    Column("applied_at", DATETIME(fsp=6), nullable=False),
    mysql_engine="InnoDB",
    mysql_charset="ascii",
)


def build_engine(url, **options):
    # pool_pre_ping: a MariaDB restart costs one failed ping, not a failed request.
    return create_engine(url, pool_pre_ping=True, pool_recycle=3600, **options)


def create_tables(engine):
    """Create the missing tables, then build the range buckets if they are incomplete
    (a store made before them, or an interrupted rebuild); on a new store that is
    instant."""
    from core import range_buckets  # it queries these tables; they do not import it

    metadata.create_all(engine, checkfirst=True)
    _upgrade_events(engine)
    range_buckets.ensure_built(engine)


def _upgrade_events(engine):
    """Bring an og.events made by an earlier version up to this schema, online: the
    virtual uuid_key column (INSTANT), then its index (INPLACE, LOCK=NONE: workers keep
    inserting meanwhile). Concurrent callers are harmless: one adds each, the others find
    it there or fail on the duplicate name, which is the same thing."""
    with engine.connect() as connection:
        columns = {row[0]: row[1] for row in connection.exec_driver_sql("SHOW COLUMNS FROM events")}
        present = {row[2] for row in connection.exec_driver_sql("SHOW INDEX FROM events")}
        steps = []
        if columns.get("uuid_key") == RETIRED_UUID_KEY_TYPE:
            steps += ["DROP INDEX events_by_uuid_key"] if "events_by_uuid_key" in present else []
            steps.append("DROP COLUMN uuid_key")
            present.discard("events_by_uuid_key")
            del columns["uuid_key"]
        if "uuid_key" not in columns:
            steps.append("ADD COLUMN uuid_key BIGINT UNSIGNED AS (" + UUID_KEY + ") VIRTUAL")
        for index in events.indexes:
            if index.name not in present:
                columns_ = ", ".join(column.name for column in index.columns)
                steps.append(f"ADD INDEX {index.name} ({columns_}), ALGORITHM=INPLACE, LOCK=NONE")
        steps += [f"DROP INDEX {name}" for name in RETIRED_INDEXES if name in present]
        for step in steps:
            try:
                connection.exec_driver_sql("ALTER TABLE events " + step)
            except OperationalError as error:
                if error.orig.args[0] not in (DUPLICATE_KEY_NAME, DUPLICATE_COLUMN, NO_SUCH_INDEX):
                    raise


def find_conversation(connection, uuid):
    """(symbol, guess, conversation_ts, followed) of the uuid's latest conversation in
    og.events, or None: for a followup after the conversation's window, or a uuid the
    uuid filter may have seen. Two index lookups: the initial rows by uuid_key, then that
    conversation's followup by its time (events_by_conversation_ts)."""
    started = connection.execute(
        select(events.c.symbol, events.c.guess, events.c.conversation_ts)
        .where(events.c.uuid_key == uuid_key(uuid), events.c.uuid == uuid)
        .order_by(events.c.conversation_ts.desc()).limit(1)).first()
    if started is None:
        return None
    followed = connection.execute(
        select(events.c.event_id)
        .where(events.c.conversation_ts == started.conversation_ts,
               events.c.kind == "followup", events.c.uuid == uuid).limit(1)).first()
    return started.symbol, bool(started.guess), started.conversation_ts, followed is not None


class StoredEvent(NamedTuple):
    event_id: str
    uuid: str
    kind: str
    symbol: str
    guess: bool
    ts_us: int
    conversation_ts_us: int


def entry_order(entry_id):
    """A stream entry id as a number pair: ids compare so, not as strings."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


def events_after(connection, stream, entry_id, limit=200_000):
    """The events of one stream partition stored with an entry id after `entry_id`, in id
    order (a primary-key range from the id's millisecond on)."""
    after = entry_order(entry_id)
    rows = connection.execute(
        select(events.c.event_id, events.c.uuid, events.c.kind, events.c.symbol, events.c.guess,
               events.c.ts, events.c.conversation_ts)
        .where(events.c.stream == stream, events.c.event_id >= f"{after[0]}-")
        .limit(limit))
    found = [StoredEvent(row.event_id, row.uuid, row.kind, row.symbol, bool(row.guess),
                         timestamps.to_micros(row.ts), timestamps.to_micros(row.conversation_ts))
             for row in rows if entry_order(row.event_id) > after]
    return sorted(found, key=lambda event: entry_order(event.event_id))


def uuid_key(uuid):
    """Python's twin of UUID_KEY for an initial event's uuid."""
    return int(hashlib.md5(uuid.encode()).hexdigest()[:16], 16)


def newest_conversation(connection):
    """The newest conversation time in og.events, or None (the index's last entry)."""
    return connection.execute(select(func.max(events.c.conversation_ts))).scalar()


def _counting(kind):
    return func.sum(case((events.c.kind == kind, 1), else_=0))


# The range dashboard as a scan of og.events: what the API ran before the buckets (its
# cost grows with the events in the window). Kept as the reference the benchmark and
# the tests compare the buckets with. Followup rows carry their conversation's time,
# so one range scan on conversation_ts finds a window's conversations and followups.
_RANGE = (
    select(
        events.c.symbol,
        _counting("initial").label("count"),
        func.min(case((events.c.kind == "initial", events.c.conversation_ts))).label("earliest"),
        func.max(case((events.c.kind == "initial", events.c.conversation_ts))).label("latest"),
        _counting("followup").label("followups"),
    )
    .group_by(events.c.symbol)
    .order_by(events.c.symbol)
)


def scan_summary(connection, lower, upper):
    rows = connection.execute(_RANGE.where(events.c.conversation_ts.between(lower, upper)))
    return [
        {"count": int(row.count), "symbol": row.symbol,
         "earliest": timestamps.format_datetime(row.earliest),
         "latest": timestamps.format_datetime(row.latest), "followups": int(row.followups)}
        for row in rows if row.count
    ]
