"""The sales side of one organization: customers, products, orders with their items, and
opportunities. Later families read the customers, the catalog and the orders kept here."""

from __future__ import annotations

import json
import math

from dashquery.dev.generate_calendar import DAY, HOUR, PAST, randint, ts
from dashquery.dev.generate_distributions import (
    BATTERY_QUANTITY,
    CAPACITIES,
    CUSTOMER_STATUS,
    CUSTOMERS,
    FIRST_NAMES,
    ITEMS,
    OPEN_STAGE,
    OPPORTUNITIES_PER_DAY,
    ORDER_STATUS,
    ORDERS_PER_DAY,
    PROBABILITY,
    PRODUCTS,
    SECOND_NAMES,
    SUFFIXES,
    by_age,
    pick,
)
from dashquery.dev.generate_org import Organization


def customers(org: Organization) -> None:
    """2,000 at scale 1; the first 40% predate the history, so orders always find one."""
    rng, clock, days = org.rng, org.clock, org.clock.days
    count = max(10, round(CUSTOMERS * org.scale))
    org.customer_ts = sorted(
        clock.at(randint(rng, -365, -1) if i < count * 0.4 else randint(rng, 0, days - 1))
        for i in range(count)
    )
    org.customer_ids = [org.new_id() for _ in org.customer_ts]
    for cid, created in zip(org.customer_ids, org.customer_ts, strict=True):
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(SECOND_NAMES)} {rng.choice(SUFFIXES)}"
        updated, deleted = org.soft_delete(created, clock.later(created, 0, 180 * DAY))
        org.rows["customers"].append(
            (cid, org.id, name, pick(rng, CUSTOMER_STATUS), ts(created), ts(updated),
             ts(deleted))
        )  # fmt: skip


def products(org: Organization) -> None:
    """Half batteries with a capacity_kwh (some fractional), half without that key."""
    rng = org.rng
    for i in range(PRODUCTS):
        if i % 2 == 0:
            kwh = rng.choice(CAPACITIES)
            name, price = f"PowerStack {kwh:g} kWh", round(kwh * rng.uniform(600, 900)) * 100
            spec = {"capacity_kwh": kwh, "chemistry": "LFP", "voltage": rng.choice((48, 51.2))}
        elif i % 4 == 1:
            kw = rng.choice((3, 5, 6, 8, 10))
            name, price = f"Hybrid Inverter {kw} kW", randint(rng, 1_500, 4_500) * 100
            spec = {"power_kw": kw, "phases": rng.choice((1, 3))}
        else:
            name, price, spec = f"Install Kit {i:02d}", randint(rng, 30, 800) * 100, {}
        pid = org.new_id()
        org.catalog.append((pid, price, "capacity_kwh" in spec))
        created = org.clock.at(randint(rng, -PAST + 2, -31))
        org.rows["products"].append(
            (pid, org.id, name, json.dumps(spec, sort_keys=True), price, ts(created))
        )


def orders(org: Organization) -> None:
    """Orders with 1-6 items; total_cents is the sum of the items' line totals."""
    rng, clock, end, org_id = org.rng, org.clock, org.end, org.id
    batteries = [p for p in org.catalog if p[2]]
    others = [p for p in org.catalog if not p[2]]
    items = org.rows["order_items"]
    org.order_ts = clock.per_day(ORDERS_PER_DAY * org.scale)
    for created in org.order_ts:
        oid, cid = org.new_id(), org.customer_at(created)
        age = (end - created) / DAY
        status = "cancelled" if rng.random() < 0.05 else by_age(rng, age, ORDER_STATUS)
        total = 0
        for _ in range(int(pick(rng, ITEMS))):
            if rng.random() < 0.55:
                pid, price, _ = rng.choice(batteries)
                quantity = int(pick(rng, BATTERY_QUANTITY))
            else:
                pid, price, _ = rng.choice(others)
                quantity = randint(rng, 1, 6)
            if rng.random() < 0.1:
                price = round(price * rng.uniform(0.85, 0.95))  # a discounted line
            total += quantity * price
            items.append(
                (org.new_id(), org_id, oid, pid, quantity, price, quantity * price, ts(created))
            )
        done = status in ("delivered", "cancelled")
        updated = clock.later(created, HOUR if done else 0, (10 if done else 2) * DAY)
        updated, deleted = org.soft_delete(created, updated)
        org.rows["orders"].append(
            (oid, org_id, cid, status, total, ts(created), ts(updated), ts(deleted))
        )
        org.order_info.append((oid, cid, status))


def opportunities(org: Organization) -> None:
    """Won or lost ones close an hour to months after creation; the rest are open."""
    rng, clock, end = org.rng, org.clock, org.end
    for created in clock.per_day(OPPORTUNITIES_PER_DAY * org.scale):
        cid = org.customer_at(created)
        value = round(rng.lognormvariate(math.log(1_500_000), 0.8), -2)
        delay = rng.expovariate(1 / 25) if rng.random() < 0.85 else rng.uniform(60, 200)
        delay = max(delay, 1 / 24)  # days
        stalled = rng.random() < 0.12
        closed: int | None = None
        if not stalled and created + delay * DAY <= end:
            stage = "won" if rng.random() < 0.4 else "lost"
            closed = clock.snap(created + int(delay * DAY), created)
        else:
            stage = by_age(rng, (end - created) / DAY, OPEN_STAGE)
        probability = min(100, max(0, PROBABILITY.get(stage, 0) + randint(rng, -10, 10)))
        expected = None
        if rng.random() < 0.85:
            expected = clock.date(clock.day_of(created) + randint(rng, 14, 120))
        updated = closed or clock.later(created, 0, 30 * DAY)
        updated, deleted = org.soft_delete(created, updated)
        org.rows["opportunities"].append(
            (org.new_id(), org.id, cid, stage, int(value), probability, expected,
             ts(closed), ts(created), ts(updated), ts(deleted))
        )  # fmt: skip
