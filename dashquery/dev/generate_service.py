"""The service side of one organization: installation jobs with their time entries, and
warranty claims. Runs after ``generate_sales``: jobs install its orders, claims name its
customers and products."""

from __future__ import annotations

import bisect

from dashquery.dev.generate_calendar import DAY, HOUR, randint, ts
from dashquery.dev.generate_distributions import (
    CLAIM_TYPE,
    CLAIMS_PER_DAY,
    ENTRIES,
    JOBS_PER_DAY,
    pick,
)
from dashquery.dev.generate_org import Organization


def _order_for_job(org: Organization, created: int) -> tuple[str, str, str] | None:
    """About 80% of jobs install a recent order that is neither a draft nor cancelled."""
    if org.rng.random() >= 0.8:
        return None
    lo = bisect.bisect_left(org.order_ts, created - 30 * DAY)
    hi = bisect.bisect_right(org.order_ts, created)
    for _ in range(3 if hi > lo else 0):
        candidate = org.order_info[randint(org.rng, lo, hi - 1)]
        if candidate[2] not in ("cancelled", "draft"):
            return candidate
    return None


def jobs(org: Organization) -> None:
    """Jobs scheduled up to three weeks ahead (some after end), with 0-4 time entries."""
    rng, clock, end, org_id = org.rng, org.clock, org.end, org.id
    for created in clock.per_day(JOBS_PER_DAY * org.scale):
        order = _order_for_job(org, created)
        cid = order[1] if order else org.customer_at(created)
        sched = clock.at(clock.day_of(created) + randint(rng, 0, 21), clamp=False)
        if sched <= created:
            sched = created + randint(rng, 2, 8) * HOUR
        estimated = randint(rng, 8, 64) / 4
        completed: int | None = None
        if rng.random() < 0.05:
            status = "cancelled"
        elif sched > end:
            status = "scheduled"
        else:
            span = int(estimated * HOUR * rng.uniform(0.8, 1.6))
            if rng.random() < 0.15:
                span += randint(rng, 1, 3) * DAY  # a multi-day installation
            completed = sched + span
            if completed > end or (end - sched < 3 * DAY and rng.random() < 0.3):
                status, completed = "in_progress", None
            elif rng.random() < 0.01:
                status, completed = "scheduled", None  # never started: overdue
            else:
                status, completed = "completed", clock.snap(completed, sched)
        jid = org.new_id()
        if status in ("completed", "in_progress"):
            last = completed or end
            for _ in range(int(pick(rng, ENTRIES))):
                worked = clock.snap(randint(rng, sched, last), sched - 1, last)
                org.rows["job_time_entries"].append(
                    (org.new_id(), org_id, jid, f"{randint(rng, 2, 32) / 4:.2f}", ts(worked),
                     ts(clock.later(worked, 0, 2 * DAY)))
                )  # fmt: skip
        updated = min(end, completed or max(created, min(sched, end)))
        updated, deleted = org.soft_delete(created, updated)
        org.rows["jobs"].append(
            (jid, org_id, order[0] if order else None, cid, status, ts(sched), ts(completed),
             f"{estimated:.2f}", ts(created), ts(updated), ts(deleted))
        )  # fmt: skip


def warranty_claims(org: Organization) -> None:
    """Resolved or rejected hours to weeks later; the newest still pending or approved."""
    rng, clock, end = org.rng, org.clock, org.end
    for created in clock.per_day(CLAIMS_PER_DAY * org.scale):
        cid = org.customer_at(created)
        pid = rng.choice(org.catalog)[0] if rng.random() < 0.8 else None
        claim_type = pick(rng, CLAIM_TYPE)
        delay = int(max(2 * HOUR, rng.expovariate(1 / (5 * DAY))))
        resolved: int | None = None
        if created + delay <= end:
            status = "resolved" if rng.random() < 0.75 else "rejected"
            resolved = clock.snap(created + delay, created)
        else:
            status = "pending" if end - created < 2 * DAY or rng.random() < 0.5 else "approved"
        updated = resolved or clock.later(created, 0, DAY)
        updated, deleted = org.soft_delete(created, updated)
        org.rows["warranty_claims"].append(
            (org.new_id(), org.id, cid, pid, status, claim_type, ts(created),
             ts(resolved), ts(updated), ts(deleted))
        )  # fmt: skip
