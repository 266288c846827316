"""RFC 9110's method basics through nginx (make run's configuration) in front of gunicorn:
a method a route lacks is a 405 JSON error with an Allow header of exactly the route's
methods, whether nginx answers it itself (TRACE, which nginx refuses before any location,
and a method name that is not 3-20 capital letters) or the app does (PUT, DELETE, ...).
nginx's own Allow (a map in provision/nginx.conf.template) is held to the app's, read
from OPTIONS. A path that is no route is a 404, as the app says. In process, without
nginx: tests/integration/test_http_methods.py.
"""
import http.client
import json

from server.assets import PageFiles

TIMEOUT_S = 10.0
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
NGINX_OWN = ("TRACE", "PO")
"""Refused by nginx itself: TRACE always, a 2-letter method by the template's check."""
APP_REFUSED = ("GET", "POST", "PUT", "DELETE", "PATCH")


def request(port, method, path):
    """(status, headers dict with lower-case names, body bytes) on a fresh connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, response.read()
    finally:
        connection.close()


def allow_of(headers):
    return {method.strip() for method in headers.get("allow", "").split(",") if method.strip()}


def error_problem(answer, status):
    code, headers, body = answer
    if code != status or not headers.get("content-type", "").startswith("application/json"):
        return f"{code} {headers.get('content-type')!r}: {body[:200]!r}"
    try:
        payload = json.loads(body)
    except ValueError:
        return f"not JSON: {body[:200]!r}"
    if not (isinstance(payload, dict) and list(payload) == ["error"] and payload["error"]):
        return f"not {{'error': reason}}: {payload!r}"
    return None


def test_every_405_through_nginx_is_json_with_the_routes_allow(proxied_api):
    api = proxied_api("null", workers=1)
    problems = []
    for path, allowed in ROUTES.items():
        status, headers, _ = request(api.port, "OPTIONS", path)
        if status not in (200, 204) or allow_of(headers) != allowed:
            problems.append(f"OPTIONS {path}: {status}, Allow {headers.get('allow')!r}")
        for method in NGINX_OWN + tuple(m for m in APP_REFUSED if m not in allowed):
            answer = request(api.port, method, path)
            problem = error_problem(answer, 405)
            if problem is None and allow_of(answer[1]) != allowed:
                problem = f"Allow {answer[1].get('allow')!r}, expected {sorted(allowed)}"
            if problem:
                problems.append(f"{method} {path}: {problem}")
    assert not problems, "\n".join(problems)


def test_a_path_that_is_no_route_is_a_404_through_nginx_even_for_trace(proxied_api):
    api = proxied_api("null", workers=1)
    problems = []
    for method in NGINX_OWN + ("GET", "PUT"):
        for path in ("/nope", "/page/nope.js", "/initial/x"):
            answer = request(api.port, method, path)
            problem = error_problem(answer, 404)
            if problem is None and "allow" in answer[1]:
                problem = f"a 404 with Allow {answer[1]['allow']!r}"
            if problem:
                problems.append(f"{method} {path}: {problem}")
    assert not problems, "\n".join(problems)


def test_head_through_nginx_answers_gets_headers_without_a_body(proxied_api):
    api = proxied_api("null", workers=1)
    for path, allowed in ROUTES.items():
        if "GET" not in allowed:
            continue
        got_status, got, _ = request(api.port, "GET", path)
        status, head, body = request(api.port, "HEAD", path)
        assert status == got_status == 200 and body == b"", (path, status)
        del got["date"], head["date"]  # the only header that may differ: the second
        assert head == got, path
