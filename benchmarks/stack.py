"""Moved to harness/stack.py (alias for benchmarks/yield_floor.py and pipeline_cost.py)."""
from harness.stack import *  # noqa: F401,F403
