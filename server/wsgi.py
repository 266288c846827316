"""The WSGI entry gunicorn serves (gunicorn.conf.py's wsgi_app): server.app:app behind a
guard for what reaches it at the HTTP edge.

server/app.py stays as the assignment froze it; this module makes sure that, with or
without the reverse proxy in front, a request body is whole and at most 1 KiB before the
app sees it, and that the answers the app would give as HTML are JSON:
- a chunked body that is malformed (bad chunk size, a chunk not ending in CRLF, the
  connection ending mid-body) is a 400, not a 500 from inside the app;
- a body over 1 KiB is a 413, chunked or not, never silently cut at 1 KiB;
- a body shorter than its Content-Length (the client half-closed) is a 400: a prefix
  that happens to be valid JSON is not stored;
- OPTIONS answers JSON (the methods a route allows) instead of Flask's empty HTML;
- a 405 carries the Allow header RFC 9110 requires (the app's error handler keeps only
  the description of Flask's MethodNotAllowed, not its headers).
The app then reads the body from memory. HEAD works wherever GET does: Flask's routes
and the page's paths answer it with GET's headers and no body.

Beside the app, for people rather than programs: the page at `/` with its files under
/page/ (server/assets.py), and the one JSON answer it refreshes itself from,
GET /dashboard/overview (server/overview.py), computed through the app's own
data_interface (with `?lower=..&upper=..`, also the range dashboard of the page's window,
its bounds read by the app's own parser).
"""
import io
import json

from core import config
from server import assets, overview
from server.app import app, data_interface

MAX_BODY = 1024
"""Bytes: the contract's limit (docs/API.md section 2), the same as the app's own."""
READ_CHUNK = 4096


class BodyRefused(Exception):
    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status


_REASONS = {200: "OK", 400: "BAD REQUEST", 405: "METHOD NOT ALLOWED",
            413: "REQUEST ENTITY TOO LARGE", 500: "INTERNAL SERVER ERROR",
            503: "SERVICE UNAVAILABLE"}
OVERVIEW_PATH = "/dashboard/overview"
PAGE_METHODS = ("GET", "HEAD", "OPTIONS")
"""What the page's paths answer: they only read."""

_page_files = assets.PageFiles()
_overview = overview.Overview(data_interface, config.load())


def _json(start_response, status, payload, headers=()):
    body = json.dumps(payload).encode()
    start_response(f"{status} {_REASONS[status]}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                    *headers])
    return [body]


def read_body(environ):
    """The whole request body (at most MAX_BODY bytes), or BodyRefused."""
    stream = environ.get("wsgi.input")
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    declared = environ.get("CONTENT_LENGTH") or ""
    if stream is None or (not chunked and declared in ("", "0")):
        return b""
    if not chunked:
        try:
            length = int(declared)
        except ValueError:
            raise BodyRefused(400, "bad Content-Length") from None
        if length > MAX_BODY:
            raise BodyRefused(413, "request body larger than 1 KiB")
        want = length
    else:
        want = MAX_BODY + 1  # one byte more than allowed tells "too large"
    parts, size = [], 0
    try:
        while size < want:
            part = stream.read(min(READ_CHUNK, want - size))
            if not part:
                break
            parts.append(part)
            size += len(part)
    except Exception as error:  # noqa: BLE001 - see below
        # Reading the body fails only when the body is malformed or the connection ended
        # inside it: gunicorn raises InvalidChunkSize, ChunkMissingTerminator (parse
        # errors) or NoMoreData (an IOError); other servers raise their own.
        raise BodyRefused(400, f"malformed or incomplete request body ({type(error).__name__})") from None
    body = b"".join(parts)
    if chunked and size > MAX_BODY:
        raise BodyRefused(413, "request body larger than 1 KiB")
    if not chunked and size < want:
        raise BodyRefused(400, f"request body shorter than its Content-Length ({size} of {want} bytes)")
    return body


def application(environ, start_response):
    page = _page_route(environ, start_response)
    if page is not None:
        return page
    if environ.get("REQUEST_METHOD") == "OPTIONS":
        allowed = _allowed_methods(environ)
        if allowed:
            return _json(start_response, 200, {"allow": allowed}, [("Allow", ", ".join(allowed))])
    try:
        body = read_body(environ)
    except BodyRefused as refused:
        # The rest of a refused body is not worth reading: the connection is closed.
        return _json(start_response, refused.status, {"error": str(refused)},
                     [("Connection", "close")])
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    return app(environ, _allow_on_405(environ, start_response))


def _allow_on_405(environ, start_response):
    """start_response, adding Allow to the app's 405 (a method the route lacks).

    The app decides (its url_map is the one truth about methods); only its answer gains
    the header. Looked up on a 405 alone, off the routes' hot path."""
    def start(status, headers, exc_info=None):
        if status.startswith("405"):
            headers = [*headers, ("Allow", ", ".join(_allowed_methods(environ)))]
        return start_response(status, headers, exc_info)
    return start


def _allowed_methods(environ):
    """The methods the route at this path allows ([] for no route: the app says 404)."""
    try:
        methods = app.url_map.bind_to_environ(environ).allowed_methods()
    except Exception:  # noqa: BLE001 - a path the router cannot even parse: let the app answer
        return []
    return sorted(methods)


def _page_route(environ, start_response):
    """The answer for the page's paths (`/`, /page/<file>, /dashboard/overview), or None
    for any other path: those are the app's."""
    path = environ.get("PATH_INFO", "")
    found = _page_files.find(path)
    if found is None and path != OVERVIEW_PATH:
        return None
    method = environ.get("REQUEST_METHOD")
    allow = [("Allow", ", ".join(PAGE_METHODS))]
    if method == "OPTIONS":
        return _json(start_response, 200, {"allow": list(PAGE_METHODS)}, allow)
    if method not in PAGE_METHODS:
        return _json(start_response, 405, {"error": "The method is not allowed for the "
                                                    "requested URL."}, allow)
    if found is not None:
        return _page_files.answer(environ, start_response, found)
    # ?lower=..&upper=..: the page's window too (its range dashboard, cached like the rest).
    status, body = _overview.answer(environ.get("QUERY_STRING", ""))
    # Each answer is at most a second old already; a cache on the way would only age it.
    start_response(f"{status} {_REASONS[status]}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                    ("Cache-Control", "no-store")])
    return [] if method == "HEAD" else [body]
