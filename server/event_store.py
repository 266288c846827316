"""The raw event store in MariaDB: table `og.events` and the range dashboard's query.

One row per accepted event, append-only. The ingest worker writes it and creates it
when missing; the API reads it for /dashboard/range.
"""
from sqlalchemy import (CHAR, Boolean, Column, Enum, Index, MetaData, SmallInteger, String,
                        Table, case, create_engine, func, select)
from sqlalchemy.dialects.mysql import DATETIME

from server import timestamps

metadata = MetaData()

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
    mysql_engine="InnoDB",
    mysql_charset="ascii",
)


def build_engine(url, **options):
    # pool_pre_ping: a MariaDB restart costs one failed ping, not a failed request.
    return create_engine(url, pool_pre_ping=True, pool_recycle=3600, **options)


def create_tables(engine):
    metadata.create_all(engine, checkfirst=True)


def _counting(kind):
    return func.sum(case((events.c.kind == kind, 1), else_=0))


# Followup rows carry their conversation's time, so one range scan on conversation_ts
# finds a window's conversations and their followups, whenever those came.
_RANGE = (
    select(
        events.c.symbol,
        _counting("initial").label("count"),
        func.min(events.c.conversation_ts).label("earliest"),
        func.max(events.c.conversation_ts).label("latest"),
        _counting("followup").label("followups"),
    )
    .group_by(events.c.symbol)
    .order_by(events.c.symbol)
)


def range_summary(connection, lower, upper):
    rows = connection.execute(_RANGE.where(events.c.conversation_ts.between(lower, upper)))
    return [
        {"count": int(row.count), "symbol": row.symbol,
         "earliest": timestamps.format_datetime(row.earliest),
         "latest": timestamps.format_datetime(row.latest), "followups": int(row.followups)}
        for row in rows if row.count
    ]
