"""How far behind the drain is, per stream partition: read by `python -m ingest status`,
the worker's metrics and the API's health route alike."""
import time

from core import keys


def collect(redis_client, partitions):
    report = []
    now_ms = int(time.time() * 1000)
    for partition in range(partitions):
        stream = keys.stream(partition)
        group = stream_group_info(redis_client, stream) if redis_client.exists(stream) else {}
        oldest = None
        if group.get("pending"):
            summary = redis_client.xpending(stream, keys.GROUP)
            oldest = summary["min"]
        report.append({
            "stream": stream,
            "length": redis_client.xlen(stream),
            "group": bool(group),
            "lag": group.get("lag"),
            "pending": group.get("pending", 0),
            "consumers": group.get("consumers", 0),
            "last_delivered_id": group.get("last-delivered-id"),
            "oldest_pending_id": oldest,
            "oldest_pending_age_s": (now_ms - int(oldest.split("-")[0])) / 1000 if oldest else None,
            "dead_letters": redis_client.xlen(keys.dead_letters(partition)),
        })
    return report


def render(report):
    lines = []
    for item in report:
        lines.append(item["stream"])
        for key, value in item.items():
            if key != "stream":
                lines.append(f"  {key:<22} {value}")
    return "\n".join(lines)


def stream_group_info(redis_client, stream):
    """The XINFO GROUPS entry of the ingest group, or {} when it does not exist."""
    for group in redis_client.xinfo_groups(stream):
        if group["name"] == keys.GROUP:
            return group
    return {}
