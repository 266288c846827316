"""The page's files (server/page/) as WSGI answers: read once per process, each with its
content type and cache headers.

index.html names its stylesheet and script by content hash (`page.js?v=<hash>`), so a
browser keeps them for good and a new version is a new URL; the HTML itself is asked
for again on every visit. That works behind nginx too, which passes no conditional
request headers on.
"""
import hashlib
import re
from pathlib import Path

PAGE_DIR = Path(__file__).with_name("page")
PREFIX = "/page/"
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
FOREVER = "public, max-age=31536000, immutable"
SECURITY = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    # Everything is the page's own: no inline script, nothing from another origin.
    ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "
                                "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
]
_ASSET = re.compile(r"@asset:([a-z0-9.\-]+)@")


class Asset:
    __slots__ = ("body", "content_type", "version")

    def __init__(self, body, content_type):
        self.body = body
        self.content_type = content_type
        self.version = hashlib.sha256(body).hexdigest()[:16]


class PageFiles:
    """index.html at `/`, every other file of the directory at /page/<name>."""

    def __init__(self, directory=PAGE_DIR):
        self.files = {path.name: Asset(path.read_bytes(), TYPES[path.suffix])
                      for path in sorted(directory.iterdir())
                      if path.suffix in TYPES and path.name != "index.html"}
        html = (directory / "index.html").read_text()
        html = _ASSET.sub(lambda m: f"page/{m.group(1)}?v={self.files[m.group(1)].version}", html)
        self.index = Asset(html.encode(), TYPES[".html"])

    def find(self, path):
        """(asset, cache policy) for a request path, or None when it is not the page's."""
        if path == "/":
            return self.index, "no-cache"
        if path.startswith(PREFIX) and path[len(PREFIX):] in self.files:
            return self.files[path[len(PREFIX):]], None
        return None

    def answer(self, environ, start_response, found):
        asset, cache = found
        if cache is None:
            # Kept for good only at the URL index.html names (its current hash).
            query = environ.get("QUERY_STRING", "")
            cache = FOREVER if query == f"v={asset.version}" else "no-cache"
        headers = [("Content-Type", asset.content_type), ("Content-Length", str(len(asset.body))),
                   ("Cache-Control", cache), *SECURITY]
        start_response("200 OK", headers)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [asset.body]
