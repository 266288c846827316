"""Sizes and durations of the full run and of --quick (what each means: benchmarks/README.md)."""
from dataclasses import make_dataclass, replace

_FULL = dict(rounds=3, duration=15, mixed_duration=10, read_duration=8, read_events=100_000,
             warmup=2, read_delay_ms=100, read_connections=2,
             client_conversations=20_000, client_concurrency=200,
             growth_events=1_000_000,
             drain_batch_sizes=(250, 1000, 2000, 5000), drain_backlog=200_000,
             drain_headline_backlog=1_000_000,
             memory_conversations=200_000, staleness_probes=30,
             range_events=(1_000_000, 10_000_000), range_sequential=300, range_clients=8,
             range_per_client=150, range_cap_s=180, range_scan_queries=300,
             range_scan_budget_s=150, range_sqlite_max_events=10_000_000,
             range_sqlite_queries=300, range_sqlite_budget_s=90, range_overload_clients=150,
             cluster_partitions=12, cluster_drain_backlog=300_000,
             proxy_rounds=4, proxy_duration=12, page_open_s=30, page_watchers=100,
             ops_rebuild_events=(100_000, 1_000_000), ops_rebuild_rounds=2,
             ops_rebuild_before_s=8, ops_rebuild_after_s=10)
# Its fields in this order: results.json's "plan" is the plan's __dict__.
Plan = make_dataclass("Plan", [(name, type(value)) for name, value in _FULL.items()],
                      frozen=True)
FULL = Plan(**_FULL)
QUICK = replace(FULL, rounds=1, duration=4, mixed_duration=3, read_duration=2,
                read_events=20_000, warmup=1, client_conversations=1_500, growth_events=30_000,
                drain_batch_sizes=(250, 1000, 5000), drain_backlog=20_000,
                drain_headline_backlog=50_000, memory_conversations=10_000, staleness_probes=5,
                range_events=(50_000, 200_000), range_cap_s=60, range_scan_budget_s=30,
                range_sqlite_max_events=200_000, range_sqlite_budget_s=20,
                cluster_drain_backlog=30_000, proxy_rounds=1, proxy_duration=4, page_open_s=12,
                ops_rebuild_events=(20_000,), ops_rebuild_rounds=1, ops_rebuild_before_s=4,
                ops_rebuild_after_s=5)


def build(quick=False, duration=None, rounds=None):
    plan = QUICK if quick else FULL
    if duration:
        plan = replace(plan, duration=duration, mixed_duration=duration,
                       read_duration=max(2, duration // 2), proxy_duration=duration)
    if rounds:
        plan = replace(plan, rounds=rounds, proxy_rounds=rounds)
    return plan
