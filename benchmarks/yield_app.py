"""NullInterface plus one gevent yield per /initial and /followup: the floor of any
backend that must wait for I/O before it answers. Used only by benchmarks/yield_floor.py."""
import gevent

from server.null_interface import NullInterface


class YieldingNullInterface(NullInterface):
    def initial(self, uuid, symbol):
        gevent.sleep(0)  # give the hub a turn, as waiting on a socket would
        return False

    def followup(self, uuid):
        gevent.sleep(0)


import server.app as _app  # noqa: E402  (built from OG_BACKEND=null, then swapped)

_app.data_interface = YieldingNullInterface()
app = _app.app
