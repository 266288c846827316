"""Conversations driven through an in-process app (conftest's InProcessApi driver),
recording what the API accepted."""
from string import ascii_lowercase

from tests.workers import new_uuid


def converse(api, conversations, followup_rate, rng, symbols=ascii_lowercase):
    """Start conversations and follow some up, every answer a 200; returns the accepted
    events {(uuid, kind)} and each conversation's symbol."""
    accepted, symbol_of = set(), {}
    for _ in range(conversations):
        conversation, symbol = new_uuid(), rng.choice(symbols)
        status, body = api.post("/initial", {"uuid": conversation, "symbol": symbol})
        assert status == 200, body
        accepted.add((conversation, "initial"))
        symbol_of[conversation] = symbol
        if rng.random() < followup_rate:
            status, body = api.post("/followup", {"uuid": conversation})
            assert status == 200, body
            accepted.add((conversation, "followup"))
    return accepted, symbol_of
