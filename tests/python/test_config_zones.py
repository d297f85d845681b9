"""The refused zone set (``config.AMBIGUOUS_ZONES``) is complete, proven on the real server.

In ``AT TIME ZONE`` PostgreSQL looks a name up in its abbreviation set before the tz
database (``timezone_abbreviations``; PostgreSQL ships Default, Australia and India), so a
name that is both an abbreviation and a zoneinfo key can be a fixed offset to PostgreSQL
and a zone with DST to Python. Every such name on which the two disagree for any hour of a
year, under any shipped set, must be refused; and every refused name must disagree somewhere.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from dashquery.config import AMBIGUOUS_ZONES

ABBREVIATION_SETS = ("Default", "Australia", "India")
YEAR = (dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 1, 1, tzinfo=dt.UTC))


@pytest.fixture(scope="module")
def conn(pg_conninfo: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_conninfo, autocommit=True) as connection:
        yield connection


def disagreeing_names(conn: psycopg.Connection[Any], abbreviations: str) -> set[str]:
    conn.execute("select set_config('timezone_abbreviations', %s, false)", (abbreviations,))
    abbrevs = {row[0].upper() for row in conn.execute("select abbrev from pg_timezone_abbrevs")}
    keys = [key for key in zoneinfo.available_timezones() if key.upper() in abbrevs]
    assert "CET" in keys and "UTC" in keys  # the server and tzdata answered at all
    bad = set()
    for key in keys:
        rows = conn.execute(
            "select t, t at time zone %s from generate_series(%s::timestamptz, %s, '1 hour') t",
            (key, *YEAR),
        ).fetchall()
        zone = zoneinfo.ZoneInfo(key)
        if any(instant.astimezone(zone).replace(tzinfo=None) != local for instant, local in rows):
            bad.add(key.upper())
    return bad


def test_every_name_postgresql_and_python_read_differently_is_refused(
    conn: psycopg.Connection[Any],
) -> None:
    [server_set] = conn.execute("show timezone_abbreviations").fetchone()  # type: ignore[misc]
    found = {name: disagreeing_names(conn, name) for name in {*ABBREVIATION_SETS, server_set}}
    assert found["Default"] >= {"CET", "EET", "MET", "WET"}
    everywhere = set().union(*found.values())
    assert everywhere <= AMBIGUOUS_ZONES, f"also refuse {sorted(everywhere - AMBIGUOUS_ZONES)}"
    # and nothing is refused that both read alike (UTC, GMT, MST, ... stay usable)
    assert everywhere == AMBIGUOUS_ZONES
