"""What the hot tier keeps in Redis, in one place: the client (client.py), the codec of
each stored value (codec.py), the Lua scripts (lua/, loaded by scripts.py) and the
gateway every part of the system calls (gateway.py). Key names: core/keys.py."""
