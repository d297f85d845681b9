"""The generator's business calendar: day numbers, local midnights and timestamps drawn on them.

While generating, timestamps are whole seconds since the epoch; ``ts`` turns them into aware
UTC datetimes only when a row tuple is built. Day numbers are business dates in the configured
time zone: day 0 is the first day of the history and day ``days - 1`` is the business date of
``end`` ("today").
"""

from __future__ import annotations

import bisect
import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

HOUR, DAY = 3600, 86_400
NEAR_MIDNIGHT_SHARE = 0.05  # within 5 minutes of local midnight: exposes UTC-date bucketing
PAST, FUTURE = 400, 160  # calendar days kept before the history and after "today"


def randint(rng: random.Random, lo: int, hi: int) -> int:
    """Like ``rng.randint`` (both ends included), several times faster in a hot loop."""
    return lo + int(rng.random() * (hi - lo + 1))


def ts(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


class Clock:
    """The business calendar, and timestamps drawn on it from the organization's rng."""

    def __init__(self, rng: random.Random, zone: ZoneInfo, end: int, days: int) -> None:
        self.rng, self.end, self.days = rng, end, days
        first = datetime.fromtimestamp(end, zone).date() - timedelta(days=days - 1)
        self.dates = [first + timedelta(days=i - PAST) for i in range(PAST + days + FUTURE)]
        self.midnights = [
            int(datetime.combine(d, time(), tzinfo=zone).timestamp()) for d in self.dates
        ]

    def midnight(self, day: int) -> int:
        return self.midnights[day + PAST]

    def date(self, day: int) -> date:
        return self.dates[day + PAST]

    def day_of(self, ts: int) -> int:
        return bisect.bisect_right(self.midnights, ts) - 1 - PAST

    def at(self, day: int, *, clamp: bool = True) -> int:
        """A moment on business date ``day``: mostly business hours, some near midnight."""
        rng, lo, hi = self.rng, self.midnight(day), self.midnight(day + 1)
        r = rng.random()
        if r < NEAR_MIDNIGHT_SHARE / 2:
            ts = lo + randint(rng, 0, 299)
        elif r < NEAR_MIDNIGHT_SHARE:
            ts = hi - 1 - randint(rng, 0, 299)
        elif r < 0.8:
            ts = lo + randint(rng, 7 * HOUR, 19 * HOUR)
        else:
            ts = randint(rng, lo, hi - 1)
        if clamp and ts > self.end:  # "today": somewhere between midnight and end
            ts = randint(rng, lo, self.end) if lo <= self.end else self.end
        return ts

    def later(self, ts: int, lo: int, hi: int) -> int:
        """``ts`` plus ``lo`` to ``hi`` seconds, drawn within the room left before end.

        Drawing within the room (rather than capping at end) keeps recent rows from piling
        up on the very second of end.
        """
        hi = min(hi, self.end - ts)
        return ts + randint(self.rng, min(lo, hi), hi) if hi > 0 else ts

    def snap(self, ts: int, after: int, before: int | None = None) -> int:
        """A derived timestamp, moved near the closest local midnight for a share of rows.

        The moved value stays in ``(after, before]`` (``before`` defaults to end).
        """
        if self.rng.random() >= NEAR_MIDNIGHT_SHARE:
            return ts
        day = self.day_of(ts)
        lo, hi = self.midnight(day), self.midnight(day + 1)
        moved = (lo if ts - lo < hi - ts else hi) + randint(self.rng, -300, 300)
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
