"""Every error dashquery raises on purpose; catch ``DashqueryError`` to catch them all.

No psycopg or redis exception reaches a caller: the read path translates each into one of
these, keeping the original as ``__cause__``.
"""

from __future__ import annotations


class DashqueryError(Exception):
    """Base class of every error raised by dashquery."""


class Misconfigured(DashqueryError, ValueError):
    """A setting cannot answer (bad value, views missing or built for other settings,
    no privilege); raised at once, never retried; the message names the setting."""


class InvalidQuery(DashqueryError, ValueError):
    """A request argument is malformed; the message names the argument."""


class Unavailable(DashqueryError, RuntimeError):
    """A server could not be reached or stopped answering; the message names the cause."""
