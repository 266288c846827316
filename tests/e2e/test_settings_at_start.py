"""A bad setting stops the API and the worker at start, naming the variable."""
import subprocess
import sys

from harness.servers import REPO_ROOT
from tests.workers import process_env


def test_gunicorn_refuses_to_start_on_a_bad_setting():
    result = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "gunicorn"), "-c", "gunicorn.conf.py", "server.app:app"],
        cwd=REPO_ROOT, env=process_env(OG_STREAM_PARTITIONS="0", OG_BIND="127.0.0.1:1"),
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode != 0
    assert "OG_STREAM_PARTITIONS='0'" in result.stderr, result.stderr


def test_ingest_refuses_to_start_on_a_bad_setting():
    result = subprocess.run([sys.executable, "-m", "ingest"], cwd=REPO_ROOT,
                            env=process_env(OG_INGEST_BATCH_SIZE="lots"), capture_output=True,
                            text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert "OG_INGEST_BATCH_SIZE='lots'" in result.stderr, result.stderr
