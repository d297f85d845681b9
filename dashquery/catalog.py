"""Names fixed by the contract (../shared/contract/METRICS.md §2-§4), in one place.

Bump ``CONTRACT_VERSION`` whenever the meaning or shape of a result changes: it is part of
every cache key, so results computed under an older contract are never served.
"""

from __future__ import annotations

from typing import Final

CONTRACT_VERSION: Final = "2"
MAX_RANGE_DAYS: Final = 3660

OPPORTUNITY_STAGES: Final = ("new", "qualified", "proposal", "negotiation", "won", "lost")
JOB_STATUSES: Final = ("scheduled", "in_progress", "completed", "cancelled")
CLAIM_STATUSES: Final = ("pending", "approved", "rejected", "resolved")
CLAIM_TYPES: Final = ("defect", "damage", "performance")

# The §4 freshness blocks and the materialized views each one reads.
BLOCK_VIEWS: Final[dict[str, tuple[str, ...]]] = {
    "orders": ("mv_daily_orders", "mv_order_customer_days"),
    "energy": ("mv_daily_energy",),
    "pipeline": ("mv_daily_pipeline",),
    "jobs": ("mv_daily_jobs",),
    "warranty": ("mv_daily_warranty",),
    "current_state": ("mv_current_state",),
}
RANGE_BLOCKS: Final = ("orders", "energy", "pipeline", "jobs", "warranty")

# Every §3 key, in contract order, with its JSON kind: "int" (counts and integral cent
# sums), "number" (exact decimals and ratios; null when a denominator is 0) or "breakdown"
# ({value: count} over the listed values).
METRIC_KINDS: Final[dict[str, str]] = {
    "orders_count": "int",
    "delivered_orders": "int",
    "pending_orders": "int",
    "cancelled_orders": "int",
    "total_order_value_cents": "int",
    "revenue_cents": "int",
    "average_order_value_cents": "number",
    "unique_customers": "int",
    "kwh_deployed": "number",
    "new_opportunities": "int",
    "opportunities_by_stage": "breakdown",
    "pipeline_value_cents": "int",
    "weighted_pipeline_cents": "number",
    "won_opportunities": "int",
    "lost_opportunities": "int",
    "quote_win_rate": "number",
    "average_won_deal_cents": "number",
    "jobs_scheduled": "int",
    "jobs_by_status": "breakdown",
    "estimated_hours": "number",
    "jobs_completed": "int",
    "labor_hours": "number",
    "warranty_claims": "int",
    "claims_by_status": "breakdown",
    "claims_by_type": "breakdown",
    "average_resolution_hours": "number",
    "active_installations": "int",
    "open_warranty_claims": "int",
    "current_pipeline_cents": "number",
    "active_customers": "int",
}

BREAKDOWN_VALUES: Final[dict[str, tuple[str, ...]]] = {
    "opportunities_by_stage": OPPORTUNITY_STAGES,
    "jobs_by_status": JOB_STATUSES,
    "claims_by_status": CLAIM_STATUSES,
    "claims_by_type": CLAIM_TYPES,
}
METRIC_KEYS: Final = tuple(METRIC_KINDS)
