"""psycopg and redis errors of the operations paths (status, notify, refresh, warm) as the
contract's errors (§4): ``Misconfigured`` for what a setting or a deploy must fix,
``Unavailable`` for a server that cannot be reached; the message is one line.
"""

from __future__ import annotations

import psycopg
import redis

from dashquery.errors import DashqueryError, Misconfigured, Unavailable

_MISSING = (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName)


def one_line(text: object) -> str:
    """The text on one line: psycopg's messages carry DETAIL/HINT lines and tabs."""
    return " ".join(str(text).split())


def pg_error(exc: Exception, what: str, schema: str | None = None) -> DashqueryError:
    """``exc`` as the error a caller of ``what`` ("read the refresh queue") gets.

    ``schema`` is the view schema when the statement read dbt's bookkeeping tables: a
    missing table there means dbt never built that schema.
    """
    if isinstance(exc, DashqueryError):
        return exc
    if isinstance(exc, _MISSING) and schema is not None:
        return Misconfigured(f"schema {schema!r} has no dashquery bookkeeping: run dbt build")
    if isinstance(exc, (*_MISSING, psycopg.errors.InsufficientPrivilege)):
        return Misconfigured(f"cannot {what}: {one_line(exc)}")
    if isinstance(exc, psycopg.ProgrammingError) and "connection" in str(exc):
        # a malformed libpq string (PG* variables or conninfo): nothing was reached
        return Misconfigured(f"cannot {what}: the PostgreSQL settings are invalid: {one_line(exc)}")
    if isinstance(exc, redis.RedisError):
        return Unavailable(f"cannot {what}: Redis: {one_line(exc)}")
    return Unavailable(f"cannot {what}: PostgreSQL: {one_line(exc)}")
