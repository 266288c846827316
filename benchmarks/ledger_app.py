"""server/wsgi.py's `application`, the app's data_interface replaced by the cost ledger's step
OG_LEDGER_STEP names: `yield` (one gevent turn per write: the floor of any backend that
answers after I/O) or `noop_script` (one no-op script per write through the store's client:
coalesced, pipelined, its replies classified, on the key initial.lua would use)."""
import os

import gevent

import server.app as _app
from core import keys
from core.config import load
from core.store.gateway import Store
from server.null_interface import NullInterface
from server.wsgi import application  # noqa: F401  (what gunicorn serves)


class YieldingNull(NullInterface):
    def initial(self, uuid, symbol):
        gevent.sleep(0)
        return False

    def followup(self, uuid):
        gevent.sleep(0)


class NoopScriptNull(NullInterface):
    store = None

    def initial(self, uuid, symbol):
        self.run(uuid)
        return False

    def followup(self, uuid):
        self.run(uuid)

    def run(self, uuid):
        if self.store is None:  # after the fork and gevent's patching, as the product does
            settings = load()
            self.store = Store.connect(settings.redis_url, 1, settings.redis_timeout)
            self.sha = self.store.client.add_script("return 'ok'")
        self.store.client.execute("EVALSHA", self.sha, 1, keys.conversation(0, uuid))


_app.data_interface = {"yield": YieldingNull,
                       "noop_script": NoopScriptNull}[os.environ["OG_LEDGER_STEP"]]()
