"""get_series and get_metrics(compare=...) against the contract's naive query (issue 7)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import redis

import dashquery
from dashquery.catalog import METRIC_KEYS, METRIC_KINDS
from dashquery.dev.naive import naive_metrics
from dashquery.read.compare import ComparedMetrics, comparison_request
from dashquery.read.request import MetricsRequest
from dashquery.read.series import SERIES_METRICS
from tests.python.helpers import Dashboard, assert_matches_naive, business_today, watermark_day

DAY = dt.timedelta(days=1)


@pytest.fixture
def client(dashboard: Dashboard, redis_client: redis.Redis) -> Iterator[dashquery.Client]:
    with dashquery.Client(settings=dashboard.settings) as client:
        yield client


@pytest.fixture(scope="module")
def exact(dashboard: Dashboard) -> Iterator[dashquery.Client]:
    """No cache: every value is computed, so Decimals stay exact."""
    with dashquery.Client(settings=dashboard.settings, cache=False) as client:
        yield client


def period_end(start: dt.date, grain: str) -> dt.date:
    """Last day of the period starting at ``start``, written independently of series.py."""
    if grain == "day":
        return start
    if grain == "week":
        return start + 6 * DAY
    following = dt.date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return following - DAY


def series_ranges(today: dt.date) -> list[tuple[str, dt.date, dt.date]]:
    """Each grain over ranges that start and end mid-period, in the past and up to the future."""
    not_monday = today - 61 * DAY if (today - 61 * DAY).weekday() else today - 62 * DAY
    return [
        ("day", today - 9 * DAY, today),
        ("day", today - 3 * DAY, today + 3 * DAY),
        ("week", not_monday, today + 5 * DAY),
        ("week", today, today),
        ("month", today - 400 * DAY, today - 20 * DAY),
        ("month", today.replace(day=1) - 45 * DAY, today + 40 * DAY),
    ]


def check_periods(
    points: list[tuple[dt.date, Any]], grain: str, start: dt.date, end: dt.date
) -> None:
    """Consecutive whole periods, from the one holding ``start`` to the one holding ``end``."""
    starts = [day for day, _ in points]
    assert starts[0] <= start <= period_end(starts[0], grain)
    assert starts[-1] <= end <= period_end(starts[-1], grain)
    for earlier, later in itertools.pairwise(starts):
        assert later == period_end(earlier, grain) + DAY
    if grain == "week":
        assert all(day.weekday() == 0 for day in starts)
    if grain == "month":
        assert all(day.day == 1 for day in starts)


def test_every_point_matches_naive_for_its_clipped_period(
    dashboard: Dashboard, exact: dashquery.Client
) -> None:
    today = business_today(dashboard.settings)
    orgs = (*dashboard.organization_ids[:2], dashboard.empty_organization_id)
    with dashboard.connect() as conn:
        for org in orgs:
            for grain, date_from, date_to in series_ranges(today):
                check_range(conn, dashboard, exact, org, grain, date_from, date_to)


def check_range(
    conn: psycopg.Connection[Any],
    dashboard: Dashboard,
    exact: dashquery.Client,
    org: uuid.UUID,
    grain: str,
    date_from: dt.date,
    date_to: dt.date,
) -> None:
    series = {m: exact.get_series(org, m, date_from, date_to, grain) for m in SERIES_METRICS}
    starts = [day for day, _ in series["orders_count"].points]
    check_periods(series["orders_count"].points, grain, date_from, date_to)
    # One naive query per clipped period answers all metrics of that period.
    naive = [
        naive_metrics(
            conn,
            dashboard.settings,
            org,
            max(start, date_from),
            min(period_end(start, grain), date_to),
        )
        for start in starts
    ]
    totals = exact.compute(org, date_from, date_to)
    for metric, result in series.items():
        assert (result.metric, result.grain, result.source) == (metric, grain, "computed")
        assert [day for day, _ in result.points] == starts
        values = [value for _, value in result.points]
        expected = [period[metric] for period in naive]
        assert values == expected, f"{org} {metric} {grain} {date_from}..{date_to}"
        assert sum(values) == totals[metric], f"{org} {metric} {grain} total"
        kind = int if METRIC_KINDS[metric] == "int" else Decimal
        assert all(type(value) is kind for value in values), metric


def test_series_has_data_and_freshness(dashboard: Dashboard, exact: dashquery.Client) -> None:
    """Guards the naive comparison against passing on all-zero series."""
    today = business_today(dashboard.settings)
    org = dashboard.organization_ids[0]
    series = exact.get_series(org, "revenue_cents", today - 200 * DAY, today, "month")
    assert sum(1 for _, value in series.points if value > 0) >= 5
    data = series.to_dict()
    json.dumps(data)
    assert set(data) == {
        "organization_id", "metric", "grain", "date_from", "date_to", "timezone", "points",
        "generated_at", "source", "freshness",
    }  # fmt: skip
    assert data["points"][0]["period_start"] == (today - 200 * DAY).replace(day=1).isoformat()
    assert data["date_from"] == (today - 200 * DAY).isoformat()
    assert all(type(point["value"]) is int for point in data["points"])
    orders = data["freshness"]["orders"]
    assert (
        orders["first_live_day"]
        == watermark_day(orders["watermark"], dashboard.settings).isoformat()
    )
    weighted = exact.get_series(org, "weighted_pipeline_cents", today - 30 * DAY, today, "week")
    assert all(type(p["value"]) is float for p in weighted.to_dict()["points"])
    assert set(weighted.freshness) == {"pipeline"}


def test_empty_range_has_a_zero_point_per_period(exact: dashquery.Client) -> None:
    series = exact.get_series(uuid.uuid4(), "labor_hours", "2001-01-31", "2001-03-01", "month")
    assert series.points == [
        (dt.date(2001, 1, 1), 0),
        (dt.date(2001, 2, 1), 0),
        (dt.date(2001, 3, 1), 0),
    ]


def test_second_series_call_comes_from_the_cache(
    client: dashquery.Client, dashboard: Dashboard, redis_client: redis.Redis
) -> None:
    org, other = dashboard.organization_ids[:2]
    args = ("kwh_deployed", "2025-06-03", "2026-02-14", "week")
    first = client.get_series(org, *args)
    second = client.get_series(str(org), *args)
    assert (first.source, second.source) == ("computed", "cache")
    assert {**first.to_dict(), "source": "cache"} == second.to_dict()
    [key] = redis_client.keys("*:s:*")
    assert key.decode().endswith(f":s:{org}:kwh_deployed:week:2025-06-03:2026-02-14")
    # Other grains, metrics and organizations are other keys.
    assert client.get_series(org, "kwh_deployed", "2025-06-03", "2026-02-14").source == "computed"
    assert client.get_series(other, *args).source == "computed"
    client.invalidate_org(org)
    assert client.get_series(org, *args).source == "computed"
    assert client.get_series(other, *args).source == "cache"
    client.invalidate_all()
    assert client.get_series(other, *args).source == "computed"


def test_corrupt_cached_series_is_recomputed(
    client: dashquery.Client, dashboard: Dashboard, redis_client: redis.Redis
) -> None:
    org = dashboard.organization_ids[0]
    first = client.get_series(org, "orders_count", "2026-01-01", "2026-03-31", "month")
    [key] = redis_client.keys("*:s:*")
    redis_client.set(key, redis_client.get(key).replace(b'"value":', b'"value":1'))
    again = client.get_series(org, "orders_count", "2026-01-01", "2026-03-31", "month")
    assert again.source == "computed"
    assert again.points == first.points
    assert 0 < redis_client.pttl(key) <= 15 * 60 * 1000 * 1.1


def test_series_without_redis_is_computed(dashboard: Dashboard) -> None:
    dead = dataclasses.replace(dashboard.settings, redis_url="redis://127.0.0.1:1/0")
    with dashquery.Client(settings=dead) as client:
        for _ in range(2):
            series = client.get_series(
                dashboard.organization_ids[0], "orders_count", "2026-01-01", "2026-01-31"
            )
            assert series.source == "computed" and len(series.points) == 31


@pytest.mark.parametrize("compare", ["previous_period", "previous_year"])
def test_comparison_matches_naive_and_deltas_are_differences(
    dashboard: Dashboard, exact: dashquery.Client, compare: str
) -> None:
    today = business_today(dashboard.settings)
    with dashboard.connect() as conn:
        for org in dashboard.organization_ids[:2]:
            for date_from, date_to in [
                (today - 29 * DAY, today),
                (today - 100 * DAY, today - 60 * DAY),
            ]:
                result = exact.get_metrics(org, date_from, date_to, compare=compare)
                assert isinstance(result, ComparedMetrics) and result.comparison is not None
                previous = result.comparison
                if compare == "previous_period":
                    assert previous.date_to == date_from - DAY
                    assert previous.date_to - previous.date_from == date_to - date_from
                else:
                    assert previous.date_from == date_from.replace(year=date_from.year - 1)
                    assert previous.date_to == date_to.replace(year=date_to.year - 1)
                assert_matches_naive(conn, dashboard.settings, result)
                assert_matches_naive(conn, dashboard.settings, previous)
                for key in METRIC_KEYS:
                    now, then = result[key], previous[key]
                    if METRIC_KINDS[key] == "breakdown":
                        assert isinstance(now, dict) and isinstance(then, dict)
                        expected: Any = {value: now[value] - then[value] for value in now}
                    elif now is None or then is None:
                        expected = None
                    elif METRIC_KINDS[key] == "int":
                        expected = now - then  # type: ignore[operator]
                    else:  # exact Decimals, cached or not (contract §4)
                        expected = now - then  # type: ignore[operator]
                        assert type(result.deltas[key]) is Decimal, key
                    assert result.deltas[key] == expected, key


def test_compared_to_dict_adds_only_comparison(
    client: dashquery.Client, dashboard: Dashboard
) -> None:
    org = dashboard.organization_ids[1]
    plain = client.get_metrics(org, "2026-03-01", "2026-03-31")
    assert not isinstance(plain, ComparedMetrics) and "comparison" not in plain.to_dict()
    compared = client.get_metrics(org, "2026-03-01", "2026-03-31", compare="previous_period")
    data = compared.to_dict()
    json.dumps(data)
    assert set(data) == set(plain.to_dict()) | {"comparison"}
    assert compared.source == "cache"  # the current range is the plain request's cache entry
    comparison = data["comparison"]
    assert comparison["compare"] == "previous_period"
    assert (comparison["date_from"], comparison["date_to"]) == ("2026-01-29", "2026-02-28")
    standalone = client.get_metrics(org, "2026-01-29", "2026-02-28")
    assert standalone.source == "cache"  # cached under its own key by the compared call
    expected = {k: v for k, v in standalone.to_dict().items() if k not in ("source",)}
    assert {k: v for k, v in comparison.items() if k in expected} == expected
    for key in METRIC_KEYS:
        now, then, delta = data[key], comparison[key], comparison["deltas"][key]
        if METRIC_KINDS[key] == "breakdown":
            assert delta == {value: now[value] - then[value] for value in now}
        elif now is None or then is None:
            assert delta is None
        else:
            assert delta == now - then, key
            assert type(delta) is (int if METRIC_KINDS[key] == "int" else float), key


def test_second_compared_call_comes_from_the_cache(
    client: dashquery.Client, dashboard: Dashboard
) -> None:
    org = dashboard.organization_ids[0]
    first = client.get_metrics(org, "2026-02-01", "2026-02-28", compare="previous_year")
    second = client.get_metrics(org, "2026-02-01", "2026-02-28", compare="previous_year")
    assert isinstance(first, ComparedMetrics) and isinstance(second, ComparedMetrics)
    assert first.comparison is not None and second.comparison is not None
    assert (first.source, first.comparison.source) == ("computed", "computed")
    assert (second.source, second.comparison.source) == ("cache", "cache")
    assert first.to_dict()["comparison"]["deltas"] == second.to_dict()["comparison"]["deltas"]


def test_comparison_ranges() -> None:
    org = uuid.UUID(int=7)

    def shifted(start: str, end: str, compare: str) -> tuple[str, str]:
        request = MetricsRequest.parse(org, start, end)
        previous = comparison_request(request, compare)
        return previous.date_from.isoformat(), previous.date_to.isoformat()

    assert shifted("2024-03-01", "2024-03-31", "previous_period") == ("2024-01-30", "2024-02-29")
    assert shifted("2024-03-01", "2024-03-01", "previous_period") == ("2024-02-29", "2024-02-29")
    assert shifted("2024-02-29", "2024-03-10", "previous_year") == ("2023-02-28", "2023-03-10")
    assert shifted("2024-02-01", "2024-02-29", "previous_year") == ("2023-02-01", "2023-02-28")
    assert shifted("2025-12-25", "2026-01-05", "previous_year") == ("2024-12-25", "2025-01-05")
    with pytest.raises(dashquery.InvalidQuery, match="compare"):
        shifted("0001-06-01", "0001-06-30", "previous_year")
    with pytest.raises(dashquery.InvalidQuery, match="compare"):
        shifted("0001-01-01", "0001-01-02", "previous_period")


ORG = uuid.UUID(int=1)
JAN = ("2025-01-01", "2025-01-02")


@pytest.mark.parametrize(
    ("method", "args", "kwargs", "named"),
    [
        ("get_series", (ORG, "unique_customers", *JAN), {}, "metric"),
        ("get_series", (ORG, "quote_win_rate", *JAN), {}, "metric"),
        ("get_series", (ORG, "bogus", *JAN), {}, "metric"),
        ("get_series", (ORG, ["orders_count"], *JAN), {}, "metric"),
        ("get_series", (ORG, "orders_count", *JAN, "year"), {}, "grain"),
        ("get_series", (ORG, "orders_count", *JAN, "'; drop table x; --"), {}, "grain"),
        ("get_series", (ORG, "orders_count", *JAN), {"grain": None}, "grain"),
        ("get_series", ("nope", "orders_count", *JAN), {}, "organization_id"),
        ("get_series", (ORG, "orders_count", "2025-13-01", "2025-01-02"), {}, "date_from"),
        ("get_series", (ORG, "orders_count", "2025-01-03", "2025-01-02"), {}, "date_from"),
        ("get_metrics", (ORG, *JAN), {"compare": "yoy"}, "compare"),
        ("get_metrics", (ORG, *JAN), {"compare": True}, "compare"),
        ("get_metrics", (ORG, *JAN), {"compare": []}, "compare"),
    ],
)
def test_bad_input_names_the_argument(
    client: dashquery.Client, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], named: str
) -> None:
    with pytest.raises(dashquery.InvalidQuery, match=named):
        getattr(client, method)(*args, **kwargs)


def test_module_level_functions_are_exported() -> None:
    assert dashquery.get_series is dashquery.client.get_series
    assert dashquery.Series.__name__ == "Series"
