"""NullInterface: stores nothing. The speed ceiling every backend is measured against."""
from server.data_interface import DataInterface


class NullInterface(DataInterface):
    def initial(self, uuid, symbol):
        return False

    def followup(self, uuid):
        return None

    def dashboard_symbol(self, symbol):
        return {"count": 0, "symbol": symbol, "earliest": None, "latest": None, "followups": 0}

    def dashboard_range(self, lower, upper):
        return []
