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


FULL = Plan(rounds=3, duration=15, mixed_duration=10, read_duration=8, read_events=100_000,
            warmup=2, read_delay_ms=100, read_connections=2,
            client_conversations=20_000, client_concurrency=200,
            growth_events=1_000_000,
            drain_batch_sizes=(250, 1000, 2000, 5000), drain_backlog=200_000,
            drain_headline_backlog=1_000_000,
            memory_conversations=200_000, staleness_probes=30)

QUICK = Plan(rounds=1, duration=4, mixed_duration=3, read_duration=2, read_events=20_000,
             warmup=1, read_delay_ms=100, read_connections=2,
             client_conversations=1_500, client_concurrency=200,
             growth_events=30_000,
             drain_batch_sizes=(250, 1000, 5000), drain_backlog=20_000,
             drain_headline_backlog=50_000,
             memory_conversations=10_000, staleness_probes=5)


def build(quick=False, duration=None, rounds=None):
    plan = QUICK if quick else FULL
    if duration:
        plan = replace(plan, duration=duration, mixed_duration=duration,
                       read_duration=max(2, duration // 2))
    if rounds:
        plan = replace(plan, rounds=rounds)
    return plan
