"""Row synthesis for ``dashquery.dev.generate``: one organization's tables as lists of tuples.

Every value comes from one ``random.Random`` per organization, drawn in a fixed order, so a
seed and a fixed ``end`` give the same rows byte for byte on every run. The pieces:
``generate_calendar`` (business dates and timestamps), ``generate_distributions`` (volumes
and weighted values), ``generate_org`` (the state the tables share) and one module per family
of tables, called here in foreign-key order: ``generate_sales`` (customers, products, orders,
opportunities), ``generate_service`` (jobs, warranty claims), ``generate_tracking``
(activities, targets).
"""

from __future__ import annotations

import random
import uuid
from zoneinfo import ZoneInfo

from dashquery.dev import generate_sales, generate_service, generate_tracking
from dashquery.dev.generate_calendar import DAY, PAST, Clock, randint, ts
from dashquery.dev.generate_distributions import (
    ACTIVITIES_PER_730_DAYS,
    CLAIMS_PER_DAY,
    CUSTOMERS,
    JOBS_PER_DAY,
    OPPORTUNITIES_PER_DAY,
    ORDERS_PER_DAY,
    PRODUCTS,
)
from dashquery.dev.generate_org import Organization, Rows

# Table -> columns, in foreign-key order: loading in this order never meets a missing parent.
COLUMNS: dict[str, tuple[str, ...]] = {
    "organizations": ("id", "name", "created_at", "updated_at"),
    "customers": (
        "id", "organization_id", "name", "status", "created_at", "updated_at", "deleted_at",
    ),
    "products": (
        "id", "organization_id", "name", "specifications", "unit_price_cents", "created_at",
    ),
    "orders": (
        "id", "organization_id", "customer_id", "status", "total_cents", "created_at",
        "updated_at", "deleted_at",
    ),
    "order_items": (
        "id", "organization_id", "order_id", "product_id", "quantity", "unit_price_cents",
        "line_total_cents", "created_at",
    ),
    "opportunities": (
        "id", "organization_id", "customer_id", "stage", "value_cents", "probability",
        "expected_close_date", "closed_at", "created_at", "updated_at", "deleted_at",
    ),
    "jobs": (
        "id", "organization_id", "order_id", "customer_id", "status", "scheduled_at",
        "completed_at", "estimated_hours", "created_at", "updated_at", "deleted_at",
    ),
    "job_time_entries": ("id", "organization_id", "job_id", "hours", "worked_at", "created_at"),
    "warranty_claims": (
        "id", "organization_id", "customer_id", "product_id", "status", "claim_type",
        "created_at", "resolved_at", "updated_at", "deleted_at",
    ),
    "activities": (
        "id", "organization_id", "entity_type", "entity_id", "action", "description",
        "created_at",
    ),
    "targets": (
        "id", "organization_id", "metric", "period_start", "period_end", "target_value",
    ),
}  # fmt: skip


def expected_rows(days: int, scale: float) -> int:
    """About how many rows ``organization`` returns (all parts), for a progress bar's total."""
    per_day = ORDERS_PER_DAY * 4 + OPPORTUNITIES_PER_DAY + JOBS_PER_DAY * 3 + CLAIMS_PER_DAY
    activities = ACTIVITIES_PER_730_DAYS * days / 730
    return round((per_day * days + activities + CUSTOMERS) * scale) + PRODUCTS + 100


def organization(
    index: int,
    *,
    seed: int,
    zone: ZoneInfo,
    end: int,
    days: int,
    scale: float,
    part: int = 0,
    parts: int = 1,
    org_id: uuid.UUID | None = None,
) -> tuple[uuid.UUID, Rows]:
    """The id and the rows (per table, in ``COLUMNS`` order) of organization ``index``.

    A large tenant is made in ``parts`` (each at ``scale``, so one part's rows fit in
    memory): part 0 makes the organization and its targets (for the whole tenant), every
    later part adds its own customers, products, orders, ... under ``org_id`` (part 0's), from
    an rng of its own. Part 0 of 1 is exactly the rows an organization always had.
    """
    # str seeds hash with sha512: stable across runs and Python versions.
    rng = random.Random(f"dashquery:{seed}:{index}" + (f":{part}" if part else ""))
    org = Organization(
        rng,
        Clock(rng, zone, end, days),
        scale,
        tables=COLUMNS,
        org_id=None if org_id is None else f"{org_id.int:032x}",
    )
    if part == 0:
        born = org.clock.midnight(-PAST + 1) + randint(rng, 0, DAY)
        name = f"Org {index + 1:03d}"
        org.rows["organizations"].append((org.id, name, ts(born), ts(born + DAY)))
    generate_sales.customers(org)
    generate_sales.products(org)
    generate_sales.orders(org)
    generate_sales.opportunities(org)
    generate_service.jobs(org)
    generate_service.warranty_claims(org)
    generate_tracking.activities(org)
    if part == 0:
        generate_tracking.targets(org, scale * parts)
    return uuid.UUID(org.id), org.rows
