"""Malformed, truncated and oversized bodies sent over real sockets straight to gunicorn
(no proxy): each is a JSON 400 or 413, never a 500 or HTML, and stores nothing."""
import http.client
import json
import socket

import pytest

from tests.workers import STREAM, new_uuid

TIMEOUT_S = 10.0


def exchange(url, raw, half_close=False):
    """Send raw request bytes; (status, content type, parsed JSON body or the text)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as sock:
        sock.sendall(raw)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        kind = response.getheader("Content-Type", "")
    try:
        return response.status, kind, json.loads(body)
    except ValueError:
        return response.status, kind, body.decode(errors="replace")


def chunked(path, *chunks):
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    return head + b"".join(chunks)


def chunk(data):
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def with_length(path, body, length):
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\nConnection: close\r\n\r\n").encode() + body


@pytest.fixture
def api(gunicorn_server, redis):
    server = gunicorn_server("redis", workers=1)
    return server


def assert_json_error(answer, status):
    code, kind, body = answer
    assert code == status, answer
    assert kind.startswith("application/json"), answer
    assert isinstance(body, dict) and list(body) == ["error"] and body["error"], answer


def initial_body():
    return json.dumps({"uuid": new_uuid(), "symbol": "a"}).encode()


@pytest.mark.parametrize("path", ["/initial", "/followup"])
@pytest.mark.parametrize("bad", [
    b"zz\r\n{}\r\n0\r\n\r\n",                 # chunk size not hex
    b"-5\r\n{}\r\n0\r\n\r\n",                 # negative chunk size
    b"2\r\n{}XX0\r\n\r\n",                    # chunk not ending in CRLF
    b"40\r\n{\"uuid\": ",                     # connection ends inside a chunk
], ids=["size-zz", "size-negative", "no-crlf", "cut-short"])
def test_malformed_chunked_bodies_are_400_and_store_nothing(api, redis, path, bad):
    before = redis.xlen(STREAM)
    assert_json_error(exchange(api.url, chunked(path, bad), half_close=True), 400)
    assert redis.xlen(STREAM) == before


def test_a_chunked_body_over_1_kib_is_413_never_cut(api, redis):
    body = initial_body() + b" " * 2000  # valid JSON, then spaces: cut at 1 KiB it would parse
    assert_json_error(exchange(api.url, chunked("/initial", chunk(body[:700]), chunk(body[700:]),
                                                b"0\r\n\r\n")), 413)
    assert redis.xlen(STREAM) == 0


def test_a_body_shorter_than_its_content_length_is_400_and_not_stored(api, redis):
    body = initial_body()  # whole JSON, but fewer bytes than announced, then a half-close
    assert_json_error(exchange(api.url, with_length("/initial", body, len(body) + 40),
                               half_close=True), 400)
    assert redis.xlen(STREAM) == 0


def test_well_formed_chunked_and_sized_bodies_still_work(api, redis):
    body = initial_body()
    status, kind, answer = exchange(api.url, chunked("/initial", chunk(body[:10]), chunk(body[10:]),
                                                     b"0\r\n\r\n"))
    assert status == 200 and answer["uuid"] == json.loads(body)["uuid"], answer
    status, _, _ = exchange(api.url, with_length("/initial", initial_body(), len(body)))
    assert status == 200
    assert redis.xlen(STREAM) == 2


def test_a_content_length_over_1_kib_is_413(api, redis):
    assert_json_error(exchange(api.url, with_length("/initial", b"{" + b" " * 1100 + b"}", 1102)), 413)
    assert redis.xlen(STREAM) == 0


def test_options_answers_json(api):
    raw = b"OPTIONS /initial HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    status, kind, body = exchange(api.url, raw)
    assert status == 200 and kind.startswith("application/json"), (status, kind, body)
    assert "POST" in body["allow"] and "GET" not in body["allow"]
    raw = b"OPTIONS /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    assert_json_error(exchange(api.url, raw), 404)
