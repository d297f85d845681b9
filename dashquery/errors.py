"""Every error dashquery raises on purpose; catch ``DashqueryError`` to catch them all."""

from __future__ import annotations


class DashqueryError(Exception):
    """Base class of every error raised by dashquery."""


class ConfigError(DashqueryError, ValueError):
    """A setting (argument or environment variable) has an unusable value."""


class InvalidQuery(DashqueryError, ValueError):
    """A request argument is malformed; the message names the argument."""


class Unavailable(DashqueryError, RuntimeError):
    """PostgreSQL could not answer after bounded retries (timeout or lost connection)."""
