"""How big and how long each scenario is: the full run and the --quick check."""
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Plan:
    rounds: int
    """Interleaved rounds (null, sqlite, redis, redis+ingest, null, ...); figures are medians."""
    duration: int
    """Seconds of each conversation-flow window."""
    mixed_duration: int
    read_duration: int
    read_events: int
    """Events stored (not through the API) before the dashboard-read and mixed windows."""
    warmup: int
    read_delay_ms: int
    """Pause between two dashboard reads on one connection in the mixed workload."""
    read_connections: int
    client_conversations: int
    client_concurrency: int
    growth_events: int
    drain_batch_sizes: tuple
    drain_backlog: int
    """Backlog drained for each batch size."""
    drain_headline_backlog: int
    memory_conversations: int
    staleness_probes: int
    """Probes idle and as many under load."""
    range_events: tuple
    """Store sizes of the range scenario (30 uneven days; each store grows the previous one)."""
    range_sequential: int
    """Distinct windows asked one at a time through the API (and in-process)."""
    range_clients: int
    range_per_client: int
    """Concurrent API clients, and distinct windows each asks in turn."""
    range_cap_s: int
    """Bound on each API phase (sequential; concurrent)."""
    range_scan_queries: int
    range_scan_budget_s: int
    """The old scan of og.events: at most this many windows, this many seconds per store."""
    range_sqlite_max_events: int
    range_sqlite_queries: int
    range_sqlite_budget_s: int
    range_overload_clients: int
    """Clients asking one distinct window each at once, on the biggest store."""
    cluster_partitions: int
    """OG_STREAM_PARTITIONS on the 3-master Redis Cluster (about 4 per master)."""
    cluster_drain_backlog: int
    """Backlog one worker drains, from the cluster's partitions and from single Redis, per
    round (the request-path windows use `rounds` and `duration` like throughput)."""
    proxy_rounds: int
    """Rounds of the proxy scenario, each null, null+nginx, redis, redis+nginx (the order
    within each pair alternates from round to round: an even number balances it).
    --rounds sets it too."""
    proxy_duration: int
    """Seconds of each of its conversation-flow windows (after a plan.warmup one).
    --duration sets it too."""
    page_open_s: int
    """Seconds one real page (headless Chromium) stays open while its requests are counted."""
    page_watchers: int
    """Open pages simulated beside the conversation flow (one wrk connection each); the
    page scenario's windows use `rounds` and `duration` like throughput."""
    ops_rebuild_events: tuple
    """Sizes of og.events (a 30-day history made inside MariaDB) on which the operations
    scenario runs `ingest rebuild` under load; its index drains use the last one. Its
    uuid-filter windows and index drains use `rounds`, the filter windows `duration`."""
    ops_rebuild_rounds: int
    """Rebuilds per store size, each in its own load window."""
    ops_rebuild_before_s: int
    ops_rebuild_after_s: int
    """Seconds of the conversation flow before the rebuild starts, and after it ended."""
    ops_drain_backlog: int
    """Entries one worker drains, with and without the uuid index."""
    ops_drain_tail_s: float
    """MariaDB's CPU is counted this long past the drain (work it finishes after the commit)."""


FULL = Plan(rounds=3, duration=15, mixed_duration=10, read_duration=8, read_events=100_000,
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
            ops_rebuild_before_s=8, ops_rebuild_after_s=10, ops_drain_backlog=200_000,
            ops_drain_tail_s=1.0)

QUICK = Plan(rounds=1, duration=4, mixed_duration=3, read_duration=2, read_events=20_000,
             warmup=1, read_delay_ms=100, read_connections=2,
             client_conversations=1_500, client_concurrency=200,
             growth_events=30_000,
             drain_batch_sizes=(250, 1000, 5000), drain_backlog=20_000,
             drain_headline_backlog=50_000,
             memory_conversations=10_000, staleness_probes=5,
             range_events=(50_000, 200_000), range_sequential=300, range_clients=8,
             range_per_client=150, range_cap_s=60, range_scan_queries=300,
             range_scan_budget_s=30, range_sqlite_max_events=200_000,
             range_sqlite_queries=300, range_sqlite_budget_s=20, range_overload_clients=150,
             cluster_partitions=12, cluster_drain_backlog=30_000,
             proxy_rounds=1, proxy_duration=4, page_open_s=12, page_watchers=100,
             ops_rebuild_events=(20_000,), ops_rebuild_rounds=1,
             ops_rebuild_before_s=4, ops_rebuild_after_s=5, ops_drain_backlog=20_000,
             ops_drain_tail_s=1.0)


def build(quick=False, duration=None, rounds=None):
    plan = QUICK if quick else FULL
    if duration:
        plan = replace(plan, duration=duration, mixed_duration=duration,
                       read_duration=max(2, duration // 2), proxy_duration=duration)
    if rounds:
        plan = replace(plan, rounds=rounds, proxy_rounds=rounds)
    return plan
