"""The client (docs/API.md section 5) as a process against a live gunicorn with gevent workers."""
import json
import subprocess
import sys
from string import ascii_lowercase

import pytest

from harness.servers import REPO_ROOT, log_tail
from tests.workers import get_json

CLIENT = REPO_ROOT / "client" / "client.py"
CONVERSATIONS = 300
CLIENT_TIMEOUT_S = 90


def run_client(url, *args, timeout=CLIENT_TIMEOUT_S):
    return subprocess.run([sys.executable, str(CLIENT), "--url", url, *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)



@pytest.mark.parametrize("backend", ["null", "sqlite"])
def test_client_drives_concurrent_conversations(gunicorn_server, backend):
    server = gunicorn_server(backend, workers=2, OG_SEED=7)
    result = run_client(server.url, "--conversations", str(CONVERSATIONS),
                        "--concurrency", "50", "--seed", "7", "--json")
    # client.py counts a refused or reset connection and a body that is not JSON alike
    # ("connection"): gunicorn's log tells them apart.
    assert result.returncode == 0, (result.stdout + result.stderr
                                    + f"\ngunicorn's log:\n{log_tail(server.log_path)}")
    summary = json.loads(result.stdout)

    assert summary["conversations"] == CONVERSATIONS
    assert summary["errors"] == 0
    assert summary["statuses"] == {"200": CONVERSATIONS + summary["followups"]}
    assert summary["requests"] == CONVERSATIONS + summary["followups"]
    assert 0 < summary["followups"] < CONVERSATIONS
    assert 0 < summary["p50_ms"] <= summary["p99_ms"]
    assert summary["requests_per_s"] > 0
    for key in ("accuracy_first_tenth", "accuracy_last_tenth"):
        assert 0 <= summary[key] <= 1

    if backend == "sqlite":
        rows = [get_json(server.url, f"/dashboard/symbol/{s}") for s in ascii_lowercase]
        assert all(status == 200 for status, _ in rows)
        assert sum(body["count"] for _, body in rows) == CONVERSATIONS
        assert sum(body["followups"] for _, body in rows) == summary["followups"]
        status, window = get_json(server.url, "/dashboard/range/1970-01-01/9999-12-31")
        assert status == 200
        assert [body for _, body in rows if body["count"]] == window


def test_client_prints_a_readable_summary(gunicorn_server):
    server = gunicorn_server("null", workers=1)
    result = run_client(server.url, "--conversations", "20", "--concurrency", "5")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = dict(line.split(":", 1) for line in result.stdout.splitlines())
    summary = {key.strip(): value.strip() for key, value in lines.items()}
    assert summary["conversations"] == "20" and summary["errors"] == "0"
    for key in ("followups", "statuses", "requests_per_s", "p50_ms", "p99_ms",
                "accuracy_first_tenth", "accuracy_last_tenth"):
        assert summary[key]


def test_client_reports_errors_and_fails(gunicorn_server):
    # Same seed twice on one store: the second run's uuids all conflict (409).
    server = gunicorn_server("sqlite", workers=1)
    args = ["--conversations", "30", "--concurrency", "10", "--seed", "3", "--json"]
    assert run_client(server.url, *args).returncode == 0
    result = run_client(server.url, *args)
    summary = json.loads(result.stdout)
    assert result.returncode == 1
    assert summary["errors"] == 30 and summary["statuses"] == {"409": 30}
    assert summary["followups"] == 0
