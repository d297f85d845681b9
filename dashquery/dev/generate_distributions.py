"""How many rows the generator makes and which values they take: volumes and weighted choices.

The weights are cumulative tables drawn with one ``rng.random()`` each (``pick``), so the
number of draws per row never depends on the value chosen.
"""

from __future__ import annotations

import math
import random

# "Year 3" volumes per organization and day (the planning documents' projections).
ORDERS_PER_DAY, OPPORTUNITIES_PER_DAY, JOBS_PER_DAY, CLAIMS_PER_DAY = 30, 20, 15, 5
CUSTOMERS, PRODUCTS, ACTIVITIES_PER_730_DAYS = 2_000, 40, 100_000
DELETED_SHARE = 0.02  # soft-deleted share of customers, orders, opportunities, jobs, claims
TARGET_METRICS = ("revenue_cents", "orders_count", "new_opportunities", "jobs_completed")

FIRST_NAMES = (
    "Coastal", "Summit", "Harbour", "Bright", "Outback", "Redgum", "Southern", "Eastside",
    "Banksia", "Wattle", "Granite", "Riverbend", "Golden", "Ironbark", "Bluewater",
)  # fmt: skip
SECOND_NAMES = (
    "Solar", "Energy", "Electrical", "Homes", "Farms", "Builders", "Industries", "Properties",
    "Logistics", "Engineering", "Hospitality", "Storage",
)  # fmt: skip
SUFFIXES = ("Pty Ltd", "Group", "& Co", "Services", "Trust", "Holdings")
CAPACITIES = (5.0, 6.5, 9.6, 10.0, 13.5, 14.3, 15.0, 19.2, 20.5, 28.7, 40.0)
ACTIONS = ("created", "updated", "status_changed", "note_added", "emailed", "assigned")

Weights = tuple[tuple[str, float], ...]


def pick(rng: random.Random, table: Weights) -> str:
    r = rng.random()
    for value, cumulative in table:
        if r < cumulative:
            return value
    return table[-1][0]


def cumulative(**weights: float) -> Weights:
    total, acc, out = sum(weights.values()), 0.0, []
    for key, weight in weights.items():
        acc += weight / total
        out.append((key, acc))
    return tuple(out)


def by_age(rng: random.Random, age_days: float, table: tuple[tuple[float, Weights], ...]) -> str:
    for max_age, weights in table:
        if age_days < max_age:
            return pick(rng, weights)
    raise AssertionError("the last age bound is infinite")


ORDER_STATUS = (  # (max age in days, status weights), cancellations are drawn first
    (0.5, cumulative(draft=35, confirmed=45, picking=15, picked=5)),
    (2, cumulative(confirmed=25, picking=25, picked=20, shipped=25, delivered=5)),
    (7, cumulative(picking=5, picked=10, shipped=40, delivered=45)),
    (21, cumulative(shipped=10, delivered=90)),
    (math.inf, cumulative(shipped=0.5, delivered=99.5)),
)
OPEN_STAGE = (
    (7, cumulative(new=50, qualified=30, proposal=15, negotiation=5)),
    (30, cumulative(new=15, qualified=30, proposal=35, negotiation=20)),
    (math.inf, cumulative(new=5, qualified=20, proposal=35, negotiation=40)),
)
PROBABILITY = {"new": 10, "qualified": 25, "proposal": 50, "negotiation": 75, "won": 100}
CLAIM_TYPE = cumulative(defect=50, damage=25, performance=25)
ITEMS = cumulative(**{"1": 12, "2": 22, "3": 30, "4": 18, "5": 11, "6": 7})
ENTRIES = cumulative(**{"0": 8, "1": 22, "2": 35, "3": 22, "4": 13})
BATTERY_QUANTITY = cumulative(**{"1": 70, "2": 22, "3": 8})
CUSTOMER_STATUS = cumulative(active=62, inactive=13, prospect=25)
ENTITY = cumulative(order=35, opportunity=25, job=20, customer=10, warranty_claim=10)
