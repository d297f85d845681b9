"""One organization being generated: its rng, calendar, rows so far and the shared helpers.

The table families (``generate_sales``, ``generate_service``, ``generate_tracking``) each
append their tables' rows to ``Organization.rows`` and read what earlier families left.

Ids are 32 hex digits: what ``uuid.UUID(int=rng.getrandbits(128), version=4)`` gives, as
text PostgreSQL accepts; making UUID objects and dumping them took a fifth of the load.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable

from dashquery.dev.generate_calendar import DAY, HOUR, Clock, randint
from dashquery.dev.generate_distributions import DELETED_SHARE

Rows = dict[str, list[tuple[object, ...]]]
_UUID_KEEP = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_UUID_V4 = (0x4000 << 64) | (0x8000 << 48)


class Organization:
    """The state the table families share, built table by table in FK order."""

    def __init__(
        self,
        rng: random.Random,
        clock: Clock,
        scale: float,
        *,
        tables: Iterable[str],
        org_id: str | None = None,
    ) -> None:
        self.rng, self.clock, self.scale, self.end = rng, clock, scale, clock.end
        # A later part of a large tenant (generate_rows.organization) reuses the first's id.
        self.id = org_id or self.new_id()
        self.rows: Rows = {table: [] for table in tables}
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
        return self.customer_ids[randint(self.rng, 0, existing - 1)]
