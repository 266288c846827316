"""Moved to harness/servers.py; this alias remains only for benchmarks/yield_floor.py and
benchmarks/scenarios/ledger.py until they import harness.servers."""
from harness.servers import *  # noqa: F401,F403
