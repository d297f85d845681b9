"""The one configuration surface of contract §1, read from the environment in one place.

dbt reads the same variables through ``profiles.yml.example`` and ``dbt_project.yml``; the
Python side reads them here and nowhere else.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis

from dashquery.errors import Misconfigured

DEFAULT_SOURCE_SCHEMA = "app"
DEFAULT_SCHEMA = "dashboard"
DEFAULT_TIMEZONE = "Australia/Sydney"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"

# Schema names reach SQL only as quoted identifiers (psycopg.sql.Identifier, dbt's quoting),
# so any name PostgreSQL accepts works, "Dash Views" included; refuse only what it cannot
# store: empty, over NAMEDATALEN - 1 bytes, or holding NUL.
_MAX_IDENTIFIER_BYTES = 63

# Zone names PostgreSQL and Python read differently. In ``AT TIME ZONE`` PostgreSQL looks a
# name up in its abbreviation set (``timezone_abbreviations``) before the tz database, so
# these are fixed offsets there while ``zoneinfo`` gives tzdata zones: CET, EET, MET and WET
# have DST in tzdata, and EST is +10 under PostgreSQL's shipped 'Australia' set (-5 in
# tzdata). Matched case-insensitively, as PostgreSQL matches abbreviations.
# tests/python/test_config_zones.py proves the set complete against a real server.
AMBIGUOUS_ZONES = frozenset({"CET", "EET", "EST", "MET", "WET"})
# A db path that is not an integer is silently ignored by redis-py (database 0 is used).
_REDIS_DB_PATH = re.compile(r"/?[0-9]*")


def shown(value: str, limit: int = 80) -> str:
    """``repr`` of at most ``limit`` characters of ``value``: an error message echoes what
    it refuses, never 100 KB of it."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"… ({len(value)} chars)"


def check_redis_url(url: str) -> None:
    """Refuse a URL redis-py cannot use, with redis-py's own parser; nothing connects."""
    try:
        redis.ConnectionPool.from_url(url)
        if url.startswith(("redis://", "rediss://")):
            path = urlsplit(url).path
            if not _REDIS_DB_PATH.fullmatch(path):
                raise ValueError(f"the database {path!r} is not a number")
    except (ValueError, TypeError) as exc:
        # The URL may hold a password: name the variable and redis-py's reason, not the URL.
        raise Misconfigured(
            f"DASHQUERY_REDIS_URL is not a usable Redis URL ({exc});"
            " expected e.g. redis://localhost:6379/0"
        ) from None


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
                    f"{name}={shown(value)} is not a PostgreSQL schema name"
                    f" (1 to {_MAX_IDENTIFIER_BYTES} bytes, no NUL)"
                )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise Misconfigured(
                f"DASHQUERY_TIMEZONE={shown(self.timezone)} is not an IANA time zone"
            ) from None
        if self.timezone.upper() in AMBIGUOUS_ZONES:
            raise Misconfigured(
                f"DASHQUERY_TIMEZONE={self.timezone!r} means a fixed offset to PostgreSQL"
                " (a time zone abbreviation) but a zone with DST to Python: use a region"
                " name such as Europe/Paris"
            )
        check_redis_url(self.redis_url)

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
