"""Settings refuse what cannot work, at construction and naming the variable (issue 11
items 12 and 15): an unusable DASHQUERY_REDIS_URL, a zone PostgreSQL reads otherwise.

Nothing here connects anywhere: an unusable setting must fail before any server is asked.
"""

from __future__ import annotations

import pytest

from dashquery.config import AMBIGUOUS_ZONES, Settings
from dashquery.errors import Misconfigured


@pytest.mark.parametrize(
    "url",
    [
        "notaurl",
        "http://localhost:6379/0",
        "redis://localhost:notaport/0",
        "redis://localhost:99999/0",
        "redis://localhost:6379/zero",  # redis-py would silently use database 0
        "redis://localhost:6379/0?socket_timeout=soon",
    ],
)
def test_an_unusable_redis_url_is_misconfigured_at_construction(url: str) -> None:
    with pytest.raises(Misconfigured, match="DASHQUERY_REDIS_URL") as caught:
        Settings.from_env({"DASHQUERY_REDIS_URL": url})
    assert isinstance(caught.value, ValueError)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_the_redis_url_in_the_message_never_shows_a_password() -> None:
    with pytest.raises(Misconfigured) as caught:
        Settings(redis_url="redis://:s3cret@localhost:6379/x")
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:6379/0",
        "redis://",
        "rediss://:pw@cache.internal:6380/3",
        "unix:///run/redis.sock?db=2",
        "redis://[::1]:6379",
    ],
)
def test_usable_redis_urls_are_accepted(url: str) -> None:
    assert Settings(redis_url=url).redis_url == url


@pytest.mark.parametrize("zone", [*sorted(AMBIGUOUS_ZONES), "cet", "Wet"])
def test_zones_postgresql_reads_as_fixed_offsets_are_refused(zone: str) -> None:
    # "cet" is no zoneinfo key on Linux, but is one on a case-insensitive file system,
    # and PostgreSQL matches abbreviations case-insensitively.
    with pytest.raises(Misconfigured, match="DASHQUERY_TIMEZONE"):
        Settings(timezone=zone)


@pytest.mark.parametrize("zone", ["Europe/Paris", "UTC", "Etc/GMT-1", "EST5EDT", "MST", "GMT"])
def test_zones_both_read_alike_are_accepted(zone: str) -> None:
    assert Settings(timezone=zone).timezone == zone


def test_a_long_bad_setting_is_not_echoed_whole() -> None:
    for kwargs in ({"timezone": "Z" * 100_000}, {"schema": "s" * 100_000}):
        with pytest.raises(Misconfigured) as caught:
            Settings(**kwargs)
        assert len(str(caught.value)) < 300
