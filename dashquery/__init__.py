"""dashquery: fast and exact multi-tenant dashboard metrics on PostgreSQL.

``get_metrics(org, date_from, date_to)`` reads Redis first; on a miss it reads days before
each view's watermark from dbt-built materialized views and later days live, in one
statement. See the contract (METRICS.md) for every definition.
"""

from dashquery.client import (
    Client,
    get_metrics,
    get_series,
    invalidate_all,
    invalidate_org,
    notify,
)
from dashquery.config import Settings
from dashquery.errors import DashqueryError, InvalidQuery, Misconfigured, Unavailable
from dashquery.read.series import Series
from dashquery.result import BlockFreshness, DashboardMetrics

__all__ = [
    "BlockFreshness",
    "Client",
    "DashboardMetrics",
    "DashqueryError",
    "InvalidQuery",
    "Misconfigured",
    "Series",
    "Settings",
    "Unavailable",
    "get_metrics",
    "get_series",
    "invalidate_all",
    "invalidate_org",
    "notify",
]
