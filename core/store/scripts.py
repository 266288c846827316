"""The Lua scripts of the store (core/store/lua/), each loaded once from its file.

Every script is run by EVALSHA through the one client (core/store/client.py), which
loads it on the node again when that node answers NOSCRIPT (a restart, a failover).
Each script's KEYS and ARGV are documented at its top.
"""
import hashlib
from pathlib import Path

LUA = Path(__file__).with_name("lua")


class Script:
    def __init__(self, name):
        self.name = name
        self.text = (LUA / f"{name}.lua").read_text()
        self.sha = hashlib.sha1(self.text.encode()).hexdigest()

    def command(self, keys, args=()):
        """The EVALSHA command that runs this script on `keys` with `args`."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


ALL = {path.stem: Script(path.stem) for path in sorted(LUA.glob("*.lua"))}
"""Every script, by name ('initial', 'followup', 'ack', 'trim', ...)."""
