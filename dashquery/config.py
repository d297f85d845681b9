"""The one configuration surface of contract §1, read from the environment in one place.

dbt reads the same variables through ``profiles.yml.example`` and ``dbt_project.yml``; the
Python side reads them here and nowhere else.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dashquery.errors import ConfigError

DEFAULT_SOURCE_SCHEMA = "app"
DEFAULT_SCHEMA = "dashboard"
DEFAULT_TIMEZONE = "Australia/Sydney"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"

# Schema names reach SQL as identifiers; refusing odd ones early gives a clear message
# instead of a confusing dbt or PostgreSQL error later.
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


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
            if not _SCHEMA_NAME.match(value):
                raise ConfigError(f"{name}={value!r} is not a plain PostgreSQL schema name")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"timezone={self.timezone!r} is not an IANA time zone") from exc

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
