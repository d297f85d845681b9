"""Names fixed by the contract (../shared/contract/METRICS.md §2-§4) and by the dbt project,
defined once for the Python side.

The dbt side declares the same catalog in each model's ``config.meta.dashquery`` (the yml
beside it) and the value sets in ``dbt_project.yml`` (var ``dashquery_value_sets``);
``tests/unit/test_catalog.py`` checks this module against ``dbt parse``'s manifest in both
directions, and the dbt test ``matches_catalog`` checks each relation's real columns against
its meta. Every other module imports these names from here instead of writing them again.

Bump ``CONTRACT_VERSION`` whenever the meaning or shape of a result changes: it is part of
every cache key, so results computed under an older contract are never served.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

CONTRACT_VERSION: Final = "4"  # 3: freshness[block].changed_days_live; 4: compact cache values
MAX_RANGE_DAYS: Final = 3660

# The value sets metrics break down or filter by (dbt var dashquery_value_sets), in order.
PENDING_ORDER_STATUSES: Final = ("draft", "confirmed", "picking", "picked", "shipped")
OPPORTUNITY_STAGES: Final = ("new", "qualified", "proposal", "negotiation", "won", "lost")
JOB_STATUSES: Final = ("scheduled", "in_progress", "completed", "cancelled")
CLAIM_STATUSES: Final = ("pending", "approved", "rejected", "resolved")
CLAIM_TYPES: Final = ("defect", "damage", "performance")
VALUE_SETS: Final[dict[str, tuple[str, ...]]] = {
    "pending_order_statuses": PENDING_ORDER_STATUSES,
    "opportunity_stages": OPPORTUNITY_STAGES,
    "job_statuses": JOB_STATUSES,
    "claim_statuses": CLAIM_STATUSES,
    "claim_types": CLAIM_TYPES,
}


@dataclass(frozen=True)
class Breakdown:
    """A §3 breakdown metric: one additive count column ``<prefix>_<value>`` per value."""

    metric: str
    prefix: str
    values_var: str

    @property
    def values(self) -> tuple[str, ...]:
        return VALUE_SETS[self.values_var]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f"{self.prefix}_{value}" for value in self.values)


DAY_KEY: Final = ("organization_id", "business_day")
# A daily block's materialized relation keeps its month and year sums in
# <materialized view><ROLLUPS_SUFFIX> (macros/rollups.sql, dbt config rollups: true), keyed
# (organization_id, ROLLUP_GRAIN, ROLLUP_START) with ROLLUP_GRAIN 'month' or 'year'.
ROLLUPS_SUFFIX: Final = "__rollups"
ROLLUP_GRAIN: Final = "grain"
ROLLUP_START: Final = "period_start"


@dataclass(frozen=True)
class DailyBlock:
    """A daily view (one row per organization and business day, every column additive), the
    materialized view built from it, its additive columns and its breakdowns."""

    kind: ClassVar[str] = "additive_days"
    name: str
    view: str
    materialized_view: str
    additive: tuple[str, ...]
    breakdowns: tuple[Breakdown, ...] = ()
    key: tuple[str, ...] = DAY_KEY

    @property
    def columns(self) -> tuple[str, ...]:
        """Every summed column: the additive ones, then each breakdown's."""
        return (*self.additive, *(c for b in self.breakdowns for c in b.columns))

    @property
    def rollups(self) -> str:
        """The month and year sums dbt keeps beside the materialized view (``rollups``)."""
        return self.materialized_view + ROLLUPS_SUFFIX


# A distinct-days block's materialized relation (one datemultirange of days per organization
# and distinct value) keeps the spans of those sets beside it (macros/spans.sql, dbt config
# spans): <relation><SPANS_ENDS_SUFFIX> (organization_id, ROLLUP_GRAIN 'day' | 'month' |
# 'year', ROLLUP_START, SPANS_FIRST, SPANS_LAST): how many sets start and end in the period;
# <relation><SPANS_GAPS_SUFFIX> (organization_id, <distinct>, SPANS_AFTER, SPANS_BEFORE,
# SPANS_LENGTH): each gap between two consecutive days of a set.
SPANS_ENDS_SUFFIX: Final = "__ends"
SPANS_GAPS_SUFFIX: Final = "__gaps"
SPANS_FIRST: Final = "first_count"
SPANS_LAST: Final = "last_count"
SPANS_AFTER: Final = "after_day"
SPANS_BEFORE: Final = "before_day"
SPANS_LENGTH: Final = "gap_days"


@dataclass(frozen=True)
class DistinctDays:
    """One row per organization, business day and ``distinct`` value: counted distinct over
    a range, never summed (``unique_customers``)."""

    kind: ClassVar[str] = "distinct_days"
    name: str
    view: str
    materialized_view: str
    key: tuple[str, ...]
    distinct: str
    # The materialized relation's datemultirange of each value's days: dbt config ``spans``
    # names it (dbt_project.yml), and the relation's yml declares it.
    days: str

    @property
    def ends(self) -> str:
        """Per period, the sets whose first and last day fall in it (dbt config ``spans``)."""
        return self.materialized_view + SPANS_ENDS_SUFFIX

    @property
    def gaps(self) -> str:
        """The gaps between consecutive days of each set (dbt config ``spans``)."""
        return self.materialized_view + SPANS_GAPS_SUFFIX


@dataclass(frozen=True)
class Snapshot:
    """One row per organization: the state now, not of a range."""

    kind: ClassVar[str] = "snapshot"
    name: str
    view: str
    materialized_view: str
    key: tuple[str, ...]
    columns: tuple[str, ...]


DAILY_BLOCKS: Final[tuple[DailyBlock, ...]] = (
    DailyBlock(
        "orders",
        "daily_orders",
        "mv_daily_orders",
        (
            "orders_count",
            "delivered_orders",
            "pending_orders",
            "cancelled_orders",
            "non_cancelled_orders",
            "total_order_value_cents",
            "revenue_cents",
        ),
    ),
    DailyBlock("energy", "daily_energy", "mv_daily_energy", ("kwh_deployed",)),
    DailyBlock(
        "pipeline",
        "daily_pipeline",
        "mv_daily_pipeline",
        (
            "new_opportunities",
            "pipeline_value_cents",
            "weighted_pipeline_cents",
            "won_opportunities",
            "lost_opportunities",
            "won_value_cents",
        ),
        (Breakdown("opportunities_by_stage", "opportunities_stage", "opportunity_stages"),),
    ),
    DailyBlock(
        "jobs",
        "daily_jobs",
        "mv_daily_jobs",
        ("jobs_scheduled", "estimated_hours", "jobs_completed"),
        (Breakdown("jobs_by_status", "jobs_status", "job_statuses"),),
    ),
    # The jobs block's hours, in a view of their own: no job edit changes them, so a refresh
    # after job edits recomputes no time entries (models/daily/daily_labor.sql).
    DailyBlock("jobs", "daily_labor", "mv_daily_labor", ("labor_hours",)),
    DailyBlock(
        "warranty",
        "daily_warranty",
        "mv_daily_warranty",
        ("warranty_claims", "resolved_claims", "resolution_seconds"),
        (
            Breakdown("claims_by_status", "claims_status", "claim_statuses"),
            Breakdown("claims_by_type", "claims_type", "claim_types"),
        ),
    ),
)
CUSTOMER_DAYS: Final = DistinctDays(
    "orders",
    "daily_order_customers",
    "mv_order_customer_days",
    (*DAY_KEY, "customer_id"),
    "customer_id",
    "order_days",
)
CURRENT_STATE: Final = Snapshot(
    "current_state",
    "current_state",
    "mv_current_state",
    ("organization_id",),
    ("active_installations", "open_warranty_claims", "current_pipeline_cents", "active_customers"),
)
# Every relation the read path reads, each a dbt model with its meta.dashquery.
RELATIONS: Final[tuple[DailyBlock | DistinctDays | Snapshot, ...]] = (
    *DAILY_BLOCKS,
    CUSTOMER_DAYS,
    CURRENT_STATE,
)
CUSTOMER_DAYS_VIEW: Final = CUSTOMER_DAYS.view
CUSTOMER_DAYS_MV: Final = CUSTOMER_DAYS.materialized_view
CURRENT_STATE_VIEW: Final = CURRENT_STATE.view
CURRENT_STATE_MV: Final = CURRENT_STATE.materialized_view
CURRENT_STATE_COLUMNS: Final = CURRENT_STATE.columns
DAILY_VIEWS: Final = tuple(relation.view for relation in RELATIONS)
MATERIALIZED_VIEWS: Final = tuple(relation.materialized_view for relation in RELATIONS)
ROLLUP_RELATIONS: Final = tuple(block.rollups for block in DAILY_BLOCKS)
SPANS_RELATIONS: Final = (CUSTOMER_DAYS.ends, CUSTOMER_DAYS.gaps)

# The §4 freshness blocks and the materialized views each one reads.
BLOCK_VIEWS: Final[dict[str, tuple[str, ...]]] = {
    block: tuple(r.materialized_view for r in RELATIONS if r.name == block)
    for block in dict.fromkeys(relation.name for relation in RELATIONS)
}
RANGE_BLOCKS: Final = tuple(block for block in BLOCK_VIEWS if block != CURRENT_STATE.name)

# The bookkeeping tables dbt keeps beside the views (macros/bookkeeping.sql).
WATERMARKS_TABLE: Final = "dashquery_watermarks"
RELATIONS_TABLE: Final = "dashquery_relations"
DEPLOYMENT_TABLE: Final = "dashquery_deployment"
RUNS_TABLE: Final = "dashquery_refresh_runs"
QUEUE_TABLE: Final = "dashquery_refresh_queue"
# Change capture (issue 13; models/capture, macros/capture/capture.sql): the triggers write
# (organization_id, daily_view, business_day) groups here in the changing transaction and
# pg_notify CHANGES_CHANNEL with the distinct organization ids, comma-separated (at most
# CHANGES_NOTIFY_BATCH ids per notification). business_day is CHANGES_SNAPSHOT_DAY
# ('-infinity') for current_state. DEPLOYMENT_TABLE's CAPTURE_COLUMN says whether the
# triggers are installed (dbt var dashquery_capture), CAPTURE_SINCE_COLUMN since when.
CHANGES_TABLE: Final = "dashquery_changes"
CHANGES_CHANNEL: Final = "dashquery_changes"
CHANGES_NOTIFY_BATCH: Final = 200
CHANGES_SNAPSHOT_DAY: Final = "-infinity"
CAPTURE_COLUMN: Final = "capture"
CAPTURE_SINCE_COLUMN: Final = "capture_since"
# The application tables the blocks read, each with its capture function
# "<DASHQUERY_SCHEMA>".dq_capture_<table>() and triggers dq_capture_<table>_<ins|upd|del>.
CAPTURED_TABLES: Final = (
    "customers",
    "job_time_entries",
    "jobs",
    "opportunities",
    "order_items",
    "orders",
    "organizations",
    "products",
    "warranty_claims",
)
CAPTURE_PREFIX: Final = "dq_capture_"
CAPTURE_EVENTS: Final[dict[str, str]] = {"ins": "INSERT", "upd": "UPDATE", "del": "DELETE"}
BOOKKEEPING_TABLES: Final = (
    WATERMARKS_TABLE,
    RELATIONS_TABLE,
    DEPLOYMENT_TABLE,
    RUNS_TABLE,
    QUEUE_TABLE,
    CHANGES_TABLE,
)
# ``dashquery listen`` LISTENs on CHANGES_CHANNEL under LISTENER_APPLICATION_NAME (what
# ``dashquery status`` looks for in pg_stat_activity) and bumps those cache generations.
LISTENER_APPLICATION_NAME: Final = "dashquery listen"
# A refresh holds pg_try_advisory_lock(hashtextextended(LOCK_KEY_PREFIX || '<schema>.<view>',
# 0)) (macros/materializations/dashboard_mv_steps.sql); ``dashquery status`` looks it up.
LOCK_KEY_PREFIX: Final = "dashquery:"

# The events ``notify`` takes and the blocks whose history each can rewrite; the
# current-state snapshot is queued with every back-dated event (one small scan).
EVENT_BLOCKS: Final[dict[str, tuple[str, ...]]] = {
    "order.delivered": ("orders", "energy", CURRENT_STATE.name),
    "order.changed": ("orders", "energy", CURRENT_STATE.name),
    "opportunity.stage_changed": ("pipeline", CURRENT_STATE.name),
    "job.status_changed": ("jobs", "energy", CURRENT_STATE.name),
    "warranty_claim.changed": ("warranty", CURRENT_STATE.name),
}
EVENT_VIEWS: Final[dict[str, tuple[str, ...]]] = {
    event: tuple(view for block in blocks for view in BLOCK_VIEWS[block])
    for event, blocks in EVENT_BLOCKS.items()
}

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
BREAKDOWNS: Final[dict[str, Breakdown]] = {
    breakdown.metric: breakdown for block in DAILY_BLOCKS for breakdown in block.breakdowns
}
BREAKDOWN_VALUES: Final[dict[str, tuple[str, ...]]] = {
    metric: breakdown.values for metric, breakdown in BREAKDOWNS.items()
}
METRIC_KEYS: Final = tuple(METRIC_KINDS)
