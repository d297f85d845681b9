"""get_metrics against the contract's naive query on generated data (issue: hybrid read)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator

import pytest
import redis

import dashquery
from dashquery.catalog import BLOCK_VIEWS, METRIC_KEYS, METRIC_KINDS
from tests.python.helpers import (
    Dashboard,
    assert_matches_naive,
    business_today,
    ranges_to_check,
    watermark_day,
)


@pytest.fixture
def client(dashboard: Dashboard, redis_client: redis.Redis) -> Iterator[dashquery.Client]:
    with dashquery.Client(settings=dashboard.settings) as client:
        yield client


def test_matches_naive_for_every_organization_and_range(dashboard: Dashboard) -> None:
    today = business_today(dashboard.settings)
    with (
        dashquery.Client(settings=dashboard.settings, cache=False) as client,
        dashboard.connect() as conn,
    ):
        for org in (*dashboard.organization_ids, uuid.uuid4()):
            for date_from, date_to in ranges_to_check(today):
                assert_matches_naive(
                    conn, dashboard.settings, client.compute(org, date_from, date_to)
                )


def test_ranges_bounded_by_local_midnight_match(dashboard: Dashboard) -> None:
    """Day boundaries are business days: check a run of single days and adjacent pairs."""
    today = business_today(dashboard.settings)
    org = dashboard.organization_ids[0]
    with (
        dashquery.Client(settings=dashboard.settings, cache=False) as client,
        dashboard.connect() as conn,
    ):
        for back in range(0, 40, 3):
            day = today - dt.timedelta(days=back)
            assert_matches_naive(conn, dashboard.settings, client.compute(org, day, day))
            assert_matches_naive(
                conn, dashboard.settings, client.compute(org, day - dt.timedelta(days=1), day)
            )


def test_result_shape_is_the_contract(client: dashquery.Client, dashboard: Dashboard) -> None:
    org = dashboard.organization_ids[0]
    today = business_today(dashboard.settings)
    data = client.get_metrics(
        str(org), (today - dt.timedelta(days=29)).isoformat(), today
    ).to_dict()
    json.dumps(data)  # JSON-serialisable as it is
    for key in METRIC_KEYS:
        kind = METRIC_KINDS[key]
        if kind == "int":
            assert type(data[key]) is int, key
        elif kind == "breakdown":
            assert all(type(v) is int for v in data[key].values()), key
        else:
            assert data[key] is None or type(data[key]) is float, key
    assert data["organization_id"] == str(org)
    assert data["date_from"] == (today - dt.timedelta(days=29)).isoformat()
    assert data["date_to"] == today.isoformat()
    assert data["timezone"] == dashboard.settings.timezone
    assert data["source"] == "computed"
    assert dt.datetime.fromisoformat(data["generated_at"]).utcoffset() == dt.timedelta(0)
    assert set(data["freshness"]) == set(BLOCK_VIEWS)
    for block in ("orders", "energy", "pipeline", "jobs", "warranty"):
        freshness = data["freshness"][block]
        # the range starts before the build: its first live day is the watermark's day
        watermark_at = freshness["watermark"]
        assert (
            freshness["first_live_day"]
            == watermark_day(watermark_at, dashboard.settings).isoformat()
        )
    assert data["freshness"]["current_state"]["first_live_day"] is None
    assert list(data["opportunities_by_stage"]) == [
        "new",
        "qualified",
        "proposal",
        "negotiation",
        "won",
        "lost",
    ]


def test_second_call_comes_from_the_cache_and_is_equal(
    client: dashquery.Client, dashboard: Dashboard
) -> None:
    org = dashboard.organization_ids[1]
    first = client.get_metrics(org, "2025-01-01", "2025-12-31")
    second = client.get_metrics(org, dt.date(2025, 1, 1), dt.date(2025, 12, 31))
    assert (first.source, second.source) == ("computed", "cache")
    assert {**first.to_dict(), "source": "cache"} == second.to_dict()


def test_invalidate_org_drops_only_that_organization(
    client: dashquery.Client, dashboard: Dashboard
) -> None:
    a, b = dashboard.organization_ids[:2]
    for org in (a, b):
        client.get_metrics(org, "2025-03-01", "2025-03-31")
    client.invalidate_org(a)
    assert client.get_metrics(a, "2025-03-01", "2025-03-31").source == "computed"
    assert client.get_metrics(b, "2025-03-01", "2025-03-31").source == "cache"
    client.invalidate_all()
    assert client.get_metrics(b, "2025-03-01", "2025-03-31").source == "computed"


def test_organizations_never_share_cached_numbers(
    client: dashquery.Client, dashboard: Dashboard
) -> None:
    a, b = dashboard.organization_ids[:2]
    computed = {org: client.get_metrics(org, "2024-06-01", "2025-06-01") for org in (a, b)}
    cached = {org: client.get_metrics(org, "2024-06-01", "2025-06-01") for org in (a, b)}
    assert computed[a].metrics != computed[b].metrics
    for org in (a, b):
        assert cached[org].source == "cache"
        assert cached[org].organization_id == org
        assert cached[org].to_dict()["orders_count"] == computed[org].to_dict()["orders_count"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("not-a-uuid", "2025-01-01", "2025-01-02"), "organization_id"),
        ((12345, "2025-01-01", "2025-01-02"), "organization_id"),
        ((uuid.UUID(int=1), "2025-02-30", "2025-03-01"), "date_from"),
        ((uuid.UUID(int=1), "2025-01-01", "01/02/2025"), "date_to"),
        ((uuid.UUID(int=1), dt.datetime(2025, 1, 1), "2025-01-02"), "date_from"),
        ((uuid.UUID(int=1), "2025-01-02", "2025-01-01"), "date_from"),
        ((uuid.UUID(int=1), "2000-01-01", "2010-12-31"), "date_from"),
        ((uuid.UUID(int=1), None, "2025-01-01"), "date_from"),
    ],
)
def test_bad_input_names_the_argument(
    client: dashquery.Client, args: tuple[object, object, object], named: str
) -> None:
    with pytest.raises(dashquery.InvalidQuery, match=named) as raised:
        client.get_metrics(*args)
    assert isinstance(raised.value, ValueError)


def test_longest_allowed_range_is_answered(client: dashquery.Client, dashboard: Dashboard) -> None:
    today = business_today(dashboard.settings)
    result = client.get_metrics(
        dashboard.organization_ids[0], today - dt.timedelta(days=3659), today
    )
    assert result.metrics["orders_count"] > 0


def test_notify_today_invalidates_without_queueing(
    client: dashquery.Client, dashboard: Dashboard
) -> None:
    org = dashboard.organization_ids[2]
    client.get_metrics(org, "2025-05-01", "2025-05-31")
    queued = client.notify(org, "order.delivered", business_today(dashboard.settings))
    assert queued == ()
    assert client.get_metrics(org, "2025-05-01", "2025-05-31").source == "computed"
    with pytest.raises(dashquery.InvalidQuery, match="event"):
        client.notify(org, "order.teleported")
