"""Row synthesis for ``dashquery.dev.generate``: one organization's tables as lists of tuples.

Every value comes from one ``random.Random`` per organization, drawn in a fixed order, so a
seed and a fixed ``end`` give the same rows byte for byte on every run. While generating,
timestamps are whole seconds since the epoch; they become aware UTC datetimes only when a
row tuple is built. Day numbers are business dates in the configured time zone: day 0 is the
first day of the history and day ``days - 1`` is the business date of ``end`` ("today").
"""

from __future__ import annotations

import bisect
import json
import math
import random
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

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

# "Year 3" volumes per organization and day (the planning documents' projections).
ORDERS_PER_DAY, OPPORTUNITIES_PER_DAY, JOBS_PER_DAY, CLAIMS_PER_DAY = 30, 20, 15, 5
CUSTOMERS, PRODUCTS, ACTIVITIES_PER_730_DAYS = 2_000, 40, 100_000
DELETED_SHARE = 0.02  # soft-deleted share of customers, orders, opportunities, jobs, claims
NEAR_MIDNIGHT_SHARE = 0.05  # within 5 minutes of local midnight: exposes UTC-date bucketing
TARGET_METRICS = ("revenue_cents", "orders_count", "new_opportunities", "jobs_completed")
HOUR, DAY = 3600, 86_400
_PAST, _FUTURE = 400, 160  # calendar days kept before the history and after "today"

_FIRST = (
    "Coastal", "Summit", "Harbour", "Bright", "Outback", "Redgum", "Southern", "Eastside",
    "Banksia", "Wattle", "Granite", "Riverbend", "Golden", "Ironbark", "Bluewater",
)  # fmt: skip
_SECOND = (
    "Solar", "Energy", "Electrical", "Homes", "Farms", "Builders", "Industries", "Properties",
    "Logistics", "Engineering", "Hospitality", "Storage",
)  # fmt: skip
_SUFFIX = ("Pty Ltd", "Group", "& Co", "Services", "Trust", "Holdings")
_CAPACITIES = (5.0, 6.5, 9.6, 10.0, 13.5, 14.3, 15.0, 19.2, 20.5, 28.7, 40.0)
_ACTIONS = ("created", "updated", "status_changed", "note_added", "emailed", "assigned")


def expected_rows(days: int, scale: float) -> int:
    """About how many rows ``organization`` returns, for a progress bar's total."""
    per_day = ORDERS_PER_DAY * 4 + OPPORTUNITIES_PER_DAY + JOBS_PER_DAY * 3 + CLAIMS_PER_DAY
    activities = ACTIVITIES_PER_730_DAYS * days / 730
    return round((per_day * days + activities + CUSTOMERS) * scale) + PRODUCTS + 100


_Rows = dict[str, list[tuple[object, ...]]]
_UUID_KEEP = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID_V4 = (0x4000 << 64) | (0x8000 << 48)


def _randint(rng: random.Random, lo: int, hi: int) -> int:
    """Like ``rng.randint`` (both ends included), several times faster in a hot loop."""
    return lo + int(rng.random() * (hi - lo + 1))


def _ts(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


class _Clock:
    """The business calendar, and timestamps drawn on it from the organization's rng."""

    def __init__(self, rng: random.Random, zone: ZoneInfo, end: int, days: int) -> None:
        self.rng, self.end, self.days = rng, end, days
        first = datetime.fromtimestamp(end, zone).date() - timedelta(days=days - 1)
        self.dates = [first + timedelta(days=i - _PAST) for i in range(_PAST + days + _FUTURE)]
        self.midnights = [
            int(datetime.combine(d, time(), tzinfo=zone).timestamp()) for d in self.dates
        ]

    def midnight(self, day: int) -> int:
        return self.midnights[day + _PAST]

    def date(self, day: int) -> date:
        return self.dates[day + _PAST]

    def day_of(self, ts: int) -> int:
        return bisect.bisect_right(self.midnights, ts) - 1 - _PAST

    def at(self, day: int, *, clamp: bool = True) -> int:
        """A moment on business date ``day``: mostly business hours, some near midnight."""
        rng, lo, hi = self.rng, self.midnight(day), self.midnight(day + 1)
        r = rng.random()
        if r < NEAR_MIDNIGHT_SHARE / 2:
            ts = lo + _randint(rng, 0, 299)
        elif r < NEAR_MIDNIGHT_SHARE:
            ts = hi - 1 - _randint(rng, 0, 299)
        elif r < 0.8:
            ts = lo + _randint(rng, 7 * HOUR, 19 * HOUR)
        else:
            ts = _randint(rng, lo, hi - 1)
        if clamp and ts > self.end:  # "today": somewhere between midnight and end
            ts = _randint(rng, lo, self.end) if lo <= self.end else self.end
        return ts

    def later(self, ts: int, lo: int, hi: int) -> int:
        """``ts`` plus ``lo`` to ``hi`` seconds, drawn within the room left before end.

        Drawing within the room (rather than capping at end) keeps recent rows from piling
        up on the very second of end.
        """
        hi = min(hi, self.end - ts)
        return ts + _randint(self.rng, min(lo, hi), hi) if hi > 0 else ts

    def snap(self, ts: int, after: int, before: int | None = None) -> int:
        """A derived timestamp, moved near the closest local midnight for a share of rows.

        The moved value stays in ``(after, before]`` (``before`` defaults to end).
        """
        if self.rng.random() >= NEAR_MIDNIGHT_SHARE:
            return ts
        day = self.day_of(ts)
        lo, hi = self.midnight(day), self.midnight(day + 1)
        moved = (lo if ts - lo < hi - ts else hi) + _randint(self.rng, -300, 300)
        return moved if after < moved <= (self.end if before is None else before) else ts

    def per_day(self, rate: float) -> list[int]:
        """Sorted creation timestamps: ``rate`` a day on average, busier on weekdays, growing."""
        out: list[int] = []
        for day in range(self.days):
            weekday = 1.15 if self.date(day).weekday() < 5 else 0.6
            trend = 0.85 + 0.3 * day / max(1, self.days - 1)
            count = int(rate * weekday * trend * self.rng.uniform(0.75, 1.25) + self.rng.random())
            out.extend(self.at(day) for _ in range(count))
        out.sort()
        return out


_Weights = tuple[tuple[str, float], ...]


def _pick(rng: random.Random, table: _Weights) -> str:
    r = rng.random()
    for value, cumulative in table:
        if r < cumulative:
            return value
    return table[-1][0]


def _cumulative(**weights: float) -> _Weights:
    total, acc, out = sum(weights.values()), 0.0, []
    for key, weight in weights.items():
        acc += weight / total
        out.append((key, acc))
    return tuple(out)


_ORDER_STATUS = (  # (max age in days, status weights), cancellations are drawn first
    (0.5, _cumulative(draft=35, confirmed=45, picking=15, picked=5)),
    (2, _cumulative(confirmed=25, picking=25, picked=20, shipped=25, delivered=5)),
    (7, _cumulative(picking=5, picked=10, shipped=40, delivered=45)),
    (21, _cumulative(shipped=10, delivered=90)),
    (math.inf, _cumulative(shipped=0.5, delivered=99.5)),
)
_OPEN_STAGE = (
    (7, _cumulative(new=50, qualified=30, proposal=15, negotiation=5)),
    (30, _cumulative(new=15, qualified=30, proposal=35, negotiation=20)),
    (math.inf, _cumulative(new=5, qualified=20, proposal=35, negotiation=40)),
)
_PROBABILITY = {"new": 10, "qualified": 25, "proposal": 50, "negotiation": 75, "won": 100}
_CLAIM_TYPE = _cumulative(defect=50, damage=25, performance=25)
_ITEMS = _cumulative(**{"1": 12, "2": 22, "3": 30, "4": 18, "5": 11, "6": 7})
_ENTRIES = _cumulative(**{"0": 8, "1": 22, "2": 35, "3": 22, "4": 13})
_BATTERY_QUANTITY = _cumulative(**{"1": 70, "2": 22, "3": 8})
_CUSTOMER_STATUS = _cumulative(active=62, inactive=13, prospect=25)
_ENTITY = _cumulative(order=35, opportunity=25, job=20, customer=10, warranty_claim=10)


def _by_age(rng: random.Random, age_days: float, table: tuple[tuple[float, _Weights], ...]) -> str:
    for max_age, weights in table:
        if age_days < max_age:
            return _pick(rng, weights)
    raise AssertionError("the last age bound is infinite")


def organization(
    index: int, *, seed: int, zone: ZoneInfo, end: int, days: int, scale: float
) -> tuple[uuid.UUID, _Rows]:
    """The id and the rows (per table, in ``COLUMNS`` order) of organization ``index``."""
    rng = random.Random(f"dashquery:{seed}:{index}")  # str seeds hash with sha512: stable
    org = _Organization(rng, _Clock(rng, zone, end, days), scale)
    born = org.clock.midnight(-_PAST + 1) + _randint(rng, 0, DAY)
    org.rows["organizations"].append((org.id, f"Org {index + 1:03d}", _ts(born), _ts(born + DAY)))
    org.customers()
    org.products()
    org.orders()
    org.opportunities()
    org.jobs()
    org.warranty_claims()
    org.activities()
    org.targets()
    return uuid.UUID(org.id), org.rows


class _Organization:
    """One organization's rows, built table by table in FK order (each step reads earlier ones).

    Ids are 32 hex digits: what ``uuid.UUID(int=rng.getrandbits(128), version=4)`` gives, as
    text PostgreSQL accepts; making UUID objects and dumping them took a fifth of the load.
    """

    def __init__(self, rng: random.Random, clock: _Clock, scale: float) -> None:
        self.rng, self.clock, self.scale, self.end = rng, clock, scale, clock.end
        self.id = self.new_id()
        self.rows: _Rows = {table: [] for table in COLUMNS}
        self.customer_ts: list[int] = []
        self.customer_ids: list[str] = []
        self.catalog: list[tuple[str, int, bool]] = []  # id, price, has capacity_kwh
        self.order_ts: list[int] = []
        self.order_info: list[tuple[str, str, str]] = []  # id, customer id, status

    def new_id(self) -> str:
        return f"{self.rng.getrandbits(128) & _UUID_KEEP | _UUID_V4:032x}"

    def soft_delete(self, created: int, updated: int) -> tuple[int, int | None]:
        """(updated_at, deleted_at): a few rows are deleted, which also updates them."""
        if self.rng.random() >= DELETED_SHARE:
            return updated, None
        deleted = self.clock.later(max(created, updated), HOUR, 90 * DAY)
        return deleted, deleted

    def customer_at(self, ts: int) -> str:
        """A customer that already existed at ``ts``."""
        existing = max(1, bisect.bisect_right(self.customer_ts, ts))
        return self.customer_ids[_randint(self.rng, 0, existing - 1)]

    def customers(self) -> None:
        """2,000 at scale 1; the first 40% predate the history, so orders always find one."""
        rng, clock, days = self.rng, self.clock, self.clock.days
        count = max(10, round(CUSTOMERS * self.scale))
        self.customer_ts = sorted(
            clock.at(_randint(rng, -365, -1) if i < count * 0.4 else _randint(rng, 0, days - 1))
            for i in range(count)
        )
        self.customer_ids = [self.new_id() for _ in self.customer_ts]
        for cid, created in zip(self.customer_ids, self.customer_ts, strict=True):
            name = f"{rng.choice(_FIRST)} {rng.choice(_SECOND)} {rng.choice(_SUFFIX)}"
            updated, deleted = self.soft_delete(created, clock.later(created, 0, 180 * DAY))
            self.rows["customers"].append(
                (cid, self.id, name, _pick(rng, _CUSTOMER_STATUS), _ts(created), _ts(updated),
                 _ts(deleted))
            )  # fmt: skip

    def products(self) -> None:
        """Half batteries with a capacity_kwh (some fractional), half without that key."""
        rng = self.rng
        for i in range(PRODUCTS):
            if i % 2 == 0:
                kwh = rng.choice(_CAPACITIES)
                name, price = f"PowerStack {kwh:g} kWh", round(kwh * rng.uniform(600, 900)) * 100
                spec = {"capacity_kwh": kwh, "chemistry": "LFP", "voltage": rng.choice((48, 51.2))}
            elif i % 4 == 1:
                kw = rng.choice((3, 5, 6, 8, 10))
                name, price = f"Hybrid Inverter {kw} kW", _randint(rng, 1_500, 4_500) * 100
                spec = {"power_kw": kw, "phases": rng.choice((1, 3))}
            else:
                name, price, spec = f"Install Kit {i:02d}", _randint(rng, 30, 800) * 100, {}
            pid = self.new_id()
            self.catalog.append((pid, price, "capacity_kwh" in spec))
            created = self.clock.at(_randint(rng, -_PAST + 2, -31))
            self.rows["products"].append(
                (pid, self.id, name, json.dumps(spec, sort_keys=True), price, _ts(created))
            )

    def orders(self) -> None:
        """Orders with 1-6 items; total_cents is the sum of the items' line totals."""
        rng, clock, end, org = self.rng, self.clock, self.end, self.id
        batteries = [p for p in self.catalog if p[2]]
        others = [p for p in self.catalog if not p[2]]
        items = self.rows["order_items"]
        self.order_ts = clock.per_day(ORDERS_PER_DAY * self.scale)
        for created in self.order_ts:
            oid, cid = self.new_id(), self.customer_at(created)
            age = (end - created) / DAY
            status = "cancelled" if rng.random() < 0.05 else _by_age(rng, age, _ORDER_STATUS)
            total = 0
            for _ in range(int(_pick(rng, _ITEMS))):
                if rng.random() < 0.55:
                    pid, price, _ = rng.choice(batteries)
                    quantity = int(_pick(rng, _BATTERY_QUANTITY))
                else:
                    pid, price, _ = rng.choice(others)
                    quantity = _randint(rng, 1, 6)
                if rng.random() < 0.1:
                    price = round(price * rng.uniform(0.85, 0.95))  # a discounted line
                total += quantity * price
                items.append(
                    (self.new_id(), org, oid, pid, quantity, price, quantity * price, _ts(created))
                )
            done = status in ("delivered", "cancelled")
            updated = clock.later(created, HOUR if done else 0, (10 if done else 2) * DAY)
            updated, deleted = self.soft_delete(created, updated)
            self.rows["orders"].append(
                (oid, org, cid, status, total, _ts(created), _ts(updated), _ts(deleted))
            )
            self.order_info.append((oid, cid, status))

    def opportunities(self) -> None:
        """Won or lost ones close an hour to months after creation; the rest are open."""
        rng, clock, end = self.rng, self.clock, self.end
        for created in clock.per_day(OPPORTUNITIES_PER_DAY * self.scale):
            cid = self.customer_at(created)
            value = round(rng.lognormvariate(math.log(1_500_000), 0.8), -2)
            delay = rng.expovariate(1 / 25) if rng.random() < 0.85 else rng.uniform(60, 200)
            delay = max(delay, 1 / 24)  # days
            stalled = rng.random() < 0.12
            closed: int | None = None
            if not stalled and created + delay * DAY <= end:
                stage = "won" if rng.random() < 0.4 else "lost"
                closed = clock.snap(created + int(delay * DAY), created)
            else:
                stage = _by_age(rng, (end - created) / DAY, _OPEN_STAGE)
            probability = min(100, max(0, _PROBABILITY.get(stage, 0) + _randint(rng, -10, 10)))
            expected = None
            if rng.random() < 0.85:
                expected = clock.date(clock.day_of(created) + _randint(rng, 14, 120))
            updated = closed or clock.later(created, 0, 30 * DAY)
            updated, deleted = self.soft_delete(created, updated)
            self.rows["opportunities"].append(
                (self.new_id(), self.id, cid, stage, int(value), probability, expected,
                 _ts(closed), _ts(created), _ts(updated), _ts(deleted))
            )  # fmt: skip

    def _order_for_job(self, created: int) -> tuple[str, str, str] | None:
        """About 80% of jobs install a recent order that is neither a draft nor cancelled."""
        if self.rng.random() >= 0.8:
            return None
        lo = bisect.bisect_left(self.order_ts, created - 30 * DAY)
        hi = bisect.bisect_right(self.order_ts, created)
        for _ in range(3 if hi > lo else 0):
            candidate = self.order_info[_randint(self.rng, lo, hi - 1)]
            if candidate[2] not in ("cancelled", "draft"):
                return candidate
        return None

    def jobs(self) -> None:
        """Jobs scheduled up to three weeks ahead (some after end), with 0-4 time entries."""
        rng, clock, end, org = self.rng, self.clock, self.end, self.id
        for created in clock.per_day(JOBS_PER_DAY * self.scale):
            order = self._order_for_job(created)
            cid = order[1] if order else self.customer_at(created)
            sched = clock.at(clock.day_of(created) + _randint(rng, 0, 21), clamp=False)
            if sched <= created:
                sched = created + _randint(rng, 2, 8) * HOUR
            estimated = _randint(rng, 8, 64) / 4
            completed: int | None = None
            if rng.random() < 0.05:
                status = "cancelled"
            elif sched > end:
                status = "scheduled"
            else:
                span = int(estimated * HOUR * rng.uniform(0.8, 1.6))
                if rng.random() < 0.15:
                    span += _randint(rng, 1, 3) * DAY  # a multi-day installation
                completed = sched + span
                if completed > end or (end - sched < 3 * DAY and rng.random() < 0.3):
                    status, completed = "in_progress", None
                elif rng.random() < 0.01:
                    status, completed = "scheduled", None  # never started: overdue
                else:
                    status, completed = "completed", clock.snap(completed, sched)
            jid = self.new_id()
            if status in ("completed", "in_progress"):
                last = completed or end
                for _ in range(int(_pick(rng, _ENTRIES))):
                    worked = clock.snap(_randint(rng, sched, last), sched - 1, last)
                    self.rows["job_time_entries"].append(
                        (self.new_id(), org, jid, f"{_randint(rng, 2, 32) / 4:.2f}", _ts(worked),
                         _ts(clock.later(worked, 0, 2 * DAY)))
                    )  # fmt: skip
            updated = min(end, completed or max(created, min(sched, end)))
            updated, deleted = self.soft_delete(created, updated)
            self.rows["jobs"].append(
                (jid, org, order[0] if order else None, cid, status, _ts(sched), _ts(completed),
                 f"{estimated:.2f}", _ts(created), _ts(updated), _ts(deleted))
            )  # fmt: skip

    def warranty_claims(self) -> None:
        """Resolved or rejected hours to weeks later; the newest still pending or approved."""
        rng, clock, end = self.rng, self.clock, self.end
        for created in clock.per_day(CLAIMS_PER_DAY * self.scale):
            cid = self.customer_at(created)
            pid = rng.choice(self.catalog)[0] if rng.random() < 0.8 else None
            claim_type = _pick(rng, _CLAIM_TYPE)
            delay = int(max(2 * HOUR, rng.expovariate(1 / (5 * DAY))))
            resolved: int | None = None
            if created + delay <= end:
                status = "resolved" if rng.random() < 0.75 else "rejected"
                resolved = clock.snap(created + delay, created)
            else:
                status = "pending" if end - created < 2 * DAY or rng.random() < 0.5 else "approved"
            updated = resolved or clock.later(created, 0, DAY)
            updated, deleted = self.soft_delete(created, updated)
            self.rows["warranty_claims"].append(
                (self.new_id(), self.id, cid, pid, status, claim_type, _ts(created),
                 _ts(resolved), _ts(updated), _ts(deleted))
            )  # fmt: skip

    def activities(self) -> None:
        """The audit trail: about 100,000 entries per 730 days, on existing entities."""
        rng, clock, rows = self.rng, self.clock, self.rows
        pools = {  # entity type: (its rows, index of created_at)
            "order": (rows["orders"], 5),
            "opportunity": (rows["opportunities"], 8),
            "job": (rows["jobs"], 8),
            "customer": (rows["customers"], 4),
            "warranty_claim": (rows["warranty_claims"], 6),
        }
        start = clock.midnight(0)
        for _ in range(round(ACTIVITIES_PER_730_DAYS * self.scale * clock.days / 730)):
            kind = _pick(rng, _ENTITY)
            pool, created_at = pools[kind]
            if not pool:
                continue
            entity = pool[_randint(rng, 0, len(pool) - 1)]
            base = max(start, int(entity[created_at].timestamp()))  # type: ignore[attr-defined]
            action = rng.choice(_ACTIONS)
            rows["activities"].append(
                (self.new_id(), self.id, kind, entity[0], action,
                 f"{kind.replace('_', ' ')} {action.replace('_', ' ')}",
                 _ts(clock.later(base, 0, 30 * DAY)))
            )  # fmt: skip

    def targets(self) -> None:
        """Monthly targets for a few metrics over every month of the history."""
        per_month = {
            "revenue_cents": ORDERS_PER_DAY * 30 * 1_000_000,
            "orders_count": ORDERS_PER_DAY * 30,
            "new_opportunities": OPPORTUNITIES_PER_DAY * 30,
            "jobs_completed": JOBS_PER_DAY * 27,
        }
        month, last = self.clock.date(0).replace(day=1), self.clock.date(self.clock.days - 1)
        while month <= last:
            following = (month + timedelta(days=32)).replace(day=1)
            for metric in TARGET_METRICS:
                value = round(per_month[metric] * self.scale * self.rng.uniform(0.9, 1.2))
                self.rows["targets"].append(
                    (self.new_id(), self.id, metric, month, following - timedelta(days=1),
                     str(value))
                )  # fmt: skip
            month = following
