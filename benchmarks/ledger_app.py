"""The steps between NullInterface and the product, for the cost ledger
(benchmarks/scenarios/ledger.py). gunicorn serves `benchmarks.ledger_app:application`:
server/wsgi.py's entry, with the app's data_interface replaced by the step
OG_LEDGER_STEP names:
- `yield`: NullInterface that gives the gevent hub one turn per write, as waiting on a
  socket would: the floor of any backend that answers only after I/O;
- `noop_script`: NullInterface that runs one no-op script per write through the
  store's client (core/store/client.py: coalesced, pipelined, its replies classified),
  on the key initial.lua would use: the client without the script's work.
"""
import os

import gevent

import server.app as _app
from core import keys
from core.config import load
from core.store.gateway import Store
from server.null_interface import NullInterface
from server.wsgi import application  # noqa: F401  (what gunicorn serves)

NOOP = "return 'ok'"


class YieldingNull(NullInterface):
    def initial(self, uuid, symbol):
        gevent.sleep(0)
        return False

    def followup(self, uuid):
        gevent.sleep(0)


class NoopScriptNull(NullInterface):
    def __init__(self, settings):
        self.settings = settings
        self._store = None

    def _run(self, uuid):
        if self._store is None:  # after the fork and gevent's patching, as the product does
            self._store = Store.connect(self.settings.redis_url, 1, self.settings.redis_timeout)
            self._sha = self._store.client.add_script(NOOP)
        self._store.client.execute("EVALSHA", self._sha, 1, keys.conversation(0, uuid))

    def initial(self, uuid, symbol):
        self._run(uuid)
        return False

    def followup(self, uuid):
        self._run(uuid)


STEPS = {"yield": lambda: YieldingNull(), "noop_script": lambda: NoopScriptNull(load())}
_app.data_interface = STEPS[os.environ["OG_LEDGER_STEP"]]()
