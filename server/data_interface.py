"""The port every backend implements, and the failures the routes map to statuses.

Input is validated once in the app: a backend receives a canonical uuid string, a
symbol in a-z and timezone-naive UTC datetimes.
"""
import abc


class DataError(Exception):
    """Base of the failures a backend reports; str(error) is shown to the caller."""


class Conflict(DataError):
    """409: the uuid already started a conversation, or it already followed up."""


class NotFound(DataError):
    """404: no conversation with that uuid."""


class Unavailable(DataError):
    """503: the store cannot take or answer the request right now."""


class DataInterface(abc.ABC):
    @abc.abstractmethod
    def initial(self, uuid: str, symbol: str) -> bool:
        """Record a new conversation; return the guess (True = vowel)."""

    @abc.abstractmethod
    def followup(self, uuid: str) -> None:
        """Record the followup of a known conversation."""

    @abc.abstractmethod
    def dashboard_symbol(self, symbol: str) -> dict:
        """count, symbol, earliest, latest, followups over all time."""

    @abc.abstractmethod
    def dashboard_range(self, lower, upper) -> list:
        """The same fields per symbol, over conversations started in [lower, upper]."""
