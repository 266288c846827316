"""RFC 9110's method basics on every route, through server/wsgi.py (what gunicorn serves)
in process, on the null backend: a method a route lacks is a 405 JSON error with an
Allow header of exactly the route's methods, HEAD answers what GET does without a body,
OPTIONS lists the methods, and a path that is no route is a 404 whatever the method.
The same through nginx: tests/e2e/test_http_methods_proxied.py.
"""
import importlib.util
import json
import sys
import types

import pytest
from werkzeug.test import Client

from server.assets import PageFiles
from harness.servers import REPO_ROOT

POST_ONLY = {"OPTIONS", "POST"}
READ_ONLY = {"GET", "HEAD", "OPTIONS"}
ROUTES = {
    "/initial": POST_ONLY,
    "/followup": POST_ONLY,
    "/dashboard/symbol/a": READ_ONLY,
    "/dashboard/range/2024-01-01/2024-01-02": READ_ONLY,
    "/": READ_ONLY,
    "/dashboard/overview": READ_ONLY,
    **{f"/page/{name}": READ_ONLY for name in PageFiles().files},
}
READ_PATHS = [path for path, allowed in ROUTES.items() if allowed == READ_ONLY]
OTHER_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "TRACE", "FOO")
REFUSED = [(path, method) for path, allowed in ROUTES.items()
           for method in OTHER_METHODS if method not in allowed]


@pytest.fixture
def client(make_app, monkeypatch):
    """A werkzeug Client on a private copy of server/wsgi.py around a null-backend app.

    server/wsgi.py imports server.app, which picks its backend at import time; a private
    app in its place keeps the session's own server.app (if any) untouched."""
    api = make_app("null")
    shim = types.ModuleType("server.app")
    shim.app, shim.data_interface = api.app, api.data_interface
    monkeypatch.setitem(sys.modules, "server.app", shim)
    spec = importlib.util.spec_from_file_location("_og_wsgi_under_test",
                                                  REPO_ROOT / "server" / "wsgi.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return Client(module.application)


def allow_of(response):
    return {method.strip() for method in response.headers.get("Allow", "").split(",")
            if method.strip()}


def assert_json_error(response, status):
    assert response.status_code == status, (response.status_code, response.data)
    assert response.headers["Content-Type"].startswith("application/json")
    if response.request.method == "HEAD":
        assert response.data == b""
        return
    body = json.loads(response.data)
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]


@pytest.mark.parametrize("path,method", REFUSED)
def test_a_method_the_route_lacks_is_a_405_json_error_with_the_routes_allow(client, path, method):
    response = client.open(path, method=method)
    assert_json_error(response, 405)
    assert allow_of(response) == ROUTES[path], dict(response.headers)


@pytest.mark.parametrize("path", list(ROUTES))
def test_options_is_200_with_the_routes_allow(client, path):
    response = client.open(path, method="OPTIONS")
    assert response.status_code in (200, 204), response.data
    assert allow_of(response) == ROUTES[path]


@pytest.mark.parametrize("path", READ_PATHS)
def test_head_answers_gets_status_and_headers_without_a_body(client, path):
    got = client.get(path)
    head = client.head(path)
    assert head.status_code == got.status_code == 200
    assert head.data == b""
    assert head.headers.to_wsgi_list() == got.headers.to_wsgi_list()


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS"])
def test_a_path_that_is_no_route_is_a_404_json_error_whatever_the_method(client, method):
    for path in ("/nope", "/page/nope.js", "/dashboard/symbol/"):
        response = client.open(path, method=method)
        assert_json_error(response, 404)
        assert "Allow" not in response.headers
