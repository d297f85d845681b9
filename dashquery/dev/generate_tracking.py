"""What one organization records about its work: the activity trail over the entities the
other families made, and monthly targets. Runs last: activities pick from every entity table."""

from __future__ import annotations

from datetime import timedelta

from dashquery.dev.generate_calendar import DAY, randint, ts
from dashquery.dev.generate_distributions import (
    ACTIONS,
    ACTIVITIES_PER_730_DAYS,
    ENTITY,
    JOBS_PER_DAY,
    OPPORTUNITIES_PER_DAY,
    ORDERS_PER_DAY,
    TARGET_METRICS,
    pick,
)
from dashquery.dev.generate_org import Organization


def activities(org: Organization) -> None:
    """The audit trail: about 100,000 entries per 730 days, on existing entities."""
    rng, clock, rows = org.rng, org.clock, org.rows
    pools = {  # entity type: (its rows, index of created_at)
        "order": (rows["orders"], 5),
        "opportunity": (rows["opportunities"], 8),
        "job": (rows["jobs"], 8),
        "customer": (rows["customers"], 4),
        "warranty_claim": (rows["warranty_claims"], 6),
    }
    start = clock.midnight(0)
    for _ in range(round(ACTIVITIES_PER_730_DAYS * org.scale * clock.days / 730)):
        kind = pick(rng, ENTITY)
        pool, created_at = pools[kind]
        if not pool:
            continue
        entity = pool[randint(rng, 0, len(pool) - 1)]
        base = max(start, int(entity[created_at].timestamp()))  # type: ignore[attr-defined]
        action = rng.choice(ACTIONS)
        rows["activities"].append(
            (org.new_id(), org.id, kind, entity[0], action,
             f"{kind.replace('_', ' ')} {action.replace('_', ' ')}",
             ts(clock.later(base, 0, 30 * DAY)))
        )  # fmt: skip


def targets(org: Organization, scale: float | None = None) -> None:
    """Monthly targets for a few metrics over every month of the history, at ``scale``
    (default the organization's: a tenant generated in parts passes its whole scale)."""
    scale = org.scale if scale is None else scale
    per_month = {
        "revenue_cents": ORDERS_PER_DAY * 30 * 1_000_000,
        "orders_count": ORDERS_PER_DAY * 30,
        "new_opportunities": OPPORTUNITIES_PER_DAY * 30,
        "jobs_completed": JOBS_PER_DAY * 27,
    }
    month, last = org.clock.date(0).replace(day=1), org.clock.date(org.clock.days - 1)
    while month <= last:
        following = (month + timedelta(days=32)).replace(day=1)
        for metric in TARGET_METRICS:
            value = round(per_month[metric] * scale * org.rng.uniform(0.9, 1.2))
            org.rows["targets"].append(
                (org.new_id(), org.id, metric, month, following - timedelta(days=1),
                 str(value))
            )  # fmt: skip
        month = following
