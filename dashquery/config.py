"""The one configuration surface of contract §1, read from the environment in one place.

dbt reads the same variables through ``profiles.yml.example`` and ``dbt_project.yml``; the
Python side reads them here and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dashquery.errors import Misconfigured

DEFAULT_SOURCE_SCHEMA = "app"
DEFAULT_SCHEMA = "dashboard"
DEFAULT_TIMEZONE = "Australia/Sydney"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"

# Schema names reach SQL only as quoted identifiers (psycopg.sql.Identifier, dbt's quoting),
# so any name PostgreSQL accepts works, "Dash Views" included; refuse only what it cannot
# store: empty, over NAMEDATALEN - 1 bytes, or holding NUL.
_MAX_IDENTIFIER_BYTES = 63


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Where the data lives and which calendar decides a business day.

    ``conninfo`` is a libpq connection string; empty means "libpq defaults", i.e. the
    ``PG*`` environment variables, exactly as psycopg and dbt's profile read them.
    """

    conninfo: str = ""
    source_schema: str = DEFAULT_SOURCE_SCHEMA
    schema: str = DEFAULT_SCHEMA
    timezone: str = DEFAULT_TIMEZONE
    redis_url: str = DEFAULT_REDIS_URL

    def __post_init__(self) -> None:
        for name in ("source_schema", "schema"):
            value = getattr(self, name)
            if not value or "\x00" in value or len(value.encode()) > _MAX_IDENTIFIER_BYTES:
                raise Misconfigured(
                    f"{name}={value[:80]!r} is not a PostgreSQL schema name"
                    f" (1 to {_MAX_IDENTIFIER_BYTES} bytes, no NUL)"
                )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise Misconfigured(f"timezone={self.timezone!r} is not an IANA time zone") from exc

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: str) -> Settings:
        """Settings from ``DASHQUERY_*`` variables; keyword overrides win when not None."""
        env = os.environ if environ is None else environ
        values = {
            "source_schema": env.get("DASHQUERY_SOURCE_SCHEMA") or DEFAULT_SOURCE_SCHEMA,
            "schema": env.get("DASHQUERY_SCHEMA") or DEFAULT_SCHEMA,
            "timezone": env.get("DASHQUERY_TIMEZONE") or DEFAULT_TIMEZONE,
            "redis_url": env.get("DASHQUERY_REDIS_URL") or DEFAULT_REDIS_URL,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def dbt_env(self) -> dict[str, str]:
        """The variables a ``dbt`` subprocess needs to build into these schemas."""
        return {
            "DASHQUERY_SOURCE_SCHEMA": self.source_schema,
            "DASHQUERY_SCHEMA": self.schema,
            "DASHQUERY_TIMEZONE": self.timezone,
        }
