"""The server fixtures themselves: private, killable, restartable, and durable across both."""
import uuid

import pytest
import redis as redislib
import sqlalchemy


def test_redis_is_private_and_flushed(redis, redis_server):
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis.dbsize() == 0
    config = redis.config_get("appendfsync")
    assert config == {"appendfsync": "always"}
    assert redis.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}


@pytest.mark.parametrize("crash", ["kill", "stop"])
def test_redis_keeps_acknowledged_writes_across_a_crash_or_stop(redis, redis_server, crash):
    key, stream = f"k:{uuid.uuid4()}", f"s:{uuid.uuid4()}"
    for i in range(100):
        redis.hset(key, f"field{i}", i)
        redis.xadd(stream, {"i": i})
    first_pid = redis_server.pid

    getattr(redis_server, crash)()
    assert not redis_server.running
    with pytest.raises(redislib.ConnectionError):
        redis.ping()
    redis_server.start()

    assert redis_server.pid != first_pid
    client = redis_server.client()
    try:
        assert client.hlen(key) == 100
        assert client.hget(key, "field99") == "99"
        assert [fields["i"] for _, fields in client.xrange(stream)] == [str(i) for i in range(100)]
    finally:
        client.close()


def test_database_starts_empty_and_is_usable_as_og(database, mariadb_server):
    assert mariadb_server.url == f"mysql+pymysql://og:og@127.0.0.1:{mariadb_server.port}/og"
    with database.connect() as connection:
        assert connection.execute(sqlalchemy.text("SELECT CURRENT_USER()")).scalar() in (
            "og@127.0.0.1", "og@localhost")
        assert connection.execute(sqlalchemy.text("SHOW TABLES")).all() == []


def test_drop_all_tables_empties_og_even_with_foreign_keys(database, mariadb_server):
    # The `database` fixture runs this before every test.
    with database.begin() as connection:
        connection.execute(sqlalchemy.text("CREATE TABLE parent (id INT PRIMARY KEY)"))
        connection.execute(sqlalchemy.text(
            "CREATE TABLE child (id INT PRIMARY KEY, parent_id INT,"
            " FOREIGN KEY (parent_id) REFERENCES parent (id))"))
    with database.connect() as connection:
        tables = connection.execute(sqlalchemy.text("SHOW TABLES")).scalars().all()
    assert sorted(tables) == ["child", "parent"]

    mariadb_server.drop_all_tables()

    with database.connect() as connection:
        assert connection.execute(sqlalchemy.text("SHOW TABLES")).all() == []


@pytest.mark.parametrize("crash", ["kill", "stop"])
def test_mariadb_keeps_committed_rows_across_a_crash_or_stop(database, mariadb_server, crash):
    marker = str(uuid.uuid4())
    with database.begin() as connection:
        connection.execute(sqlalchemy.text(
            "CREATE TABLE survivors (id INT PRIMARY KEY, marker CHAR(36)) ENGINE=InnoDB"))
        connection.execute(sqlalchemy.text("INSERT INTO survivors VALUES (:id, :marker)"),
                           [{"id": i, "marker": marker} for i in range(200)])
    database.dispose()
    first_pid = mariadb_server.pid

    getattr(mariadb_server, crash)()
    assert not mariadb_server.running
    with pytest.raises(sqlalchemy.exc.OperationalError):
        with database.connect():
            pass
    mariadb_server.start()

    assert mariadb_server.pid != first_pid
    database.dispose()  # the pool's connections died with the server
    with database.connect() as connection:
        rows = connection.execute(sqlalchemy.text(
            "SELECT COUNT(*), MIN(marker), MAX(marker) FROM survivors")).one()
    assert tuple(rows) == (200, marker, marker)


def test_restart_reuses_port_and_data_dir(redis, redis_server):
    port, data_dir = redis_server.port, redis_server.data_dir
    redis.set("survives-restart", "yes")
    redis_server.restart()
    assert (redis_server.port, redis_server.data_dir) == (port, data_dir)
    client = redis_server.client()
    try:
        assert client.get("survives-restart") == "yes"
    finally:
        client.close()
