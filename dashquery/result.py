"""``DashboardMetrics``: the result of contract §4 and its compact JSON form."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal

from dashquery.catalog import BREAKDOWN_VALUES, METRIC_KEYS, METRIC_KINDS

Source = Literal["cache", "computed"]
MetricValue = int | Decimal | None | dict[str, int]


@dataclass(frozen=True)
class BlockFreshness:
    """Where a block's numbers came from (contract §4 ``freshness``)."""

    watermark: dt.datetime | None
    first_live_day: dt.date | None
    live_reason: str | None = None
    # Days of the range before the split read live because they changed since the refresh
    # (change capture); for current_state 1 when the snapshot was read live for that reason.
    changed_days_live: int = 0

    def to_dict(self) -> dict[str, str | int | None]:
        return {
            "watermark": self.watermark.astimezone(dt.UTC).isoformat() if self.watermark else None,
            "first_live_day": self.first_live_day.isoformat() if self.first_live_day else None,
            "live_reason": self.live_reason,
            "changed_days_live": self.changed_days_live,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BlockFreshness:
        watermark = data["watermark"]
        first_live_day = data["first_live_day"]
        changed = data["changed_days_live"]
        if type(changed) is not int or changed < 0:
            raise TypeError(f"changed_days_live: expected a count, got {changed!r}")
        return cls(
            watermark=dt.datetime.fromisoformat(watermark) if watermark else None,
            first_live_day=dt.date.fromisoformat(first_live_day) if first_live_day else None,
            live_reason=data.get("live_reason"),
            changed_days_live=changed,
        )


@dataclass(frozen=True)
class DashboardMetrics:
    """Every §3 metric for one organization and range, with provenance.

    ``metrics`` holds exact values: ints, ``Decimal`` for numeric sums and ratios, dicts for
    breakdowns. ``to_dict()`` turns them into JSON-ready ints and floats; ``to_document()``
    is the cache's form, which ``from_document()`` reads back to the same types and values.
    """

    organization_id: uuid.UUID
    date_from: dt.date
    date_to: dt.date
    timezone: str
    generated_at: dt.datetime
    source: Source
    metrics: Mapping[str, MetricValue]
    freshness: Mapping[str, BlockFreshness] = field(default_factory=dict)

    def __getitem__(self, key: str) -> MetricValue:
        return self.metrics[key]

    def with_source(self, source: Source) -> DashboardMetrics:
        return replace(self, source=source)

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {key: _json_value(self.metrics[key]) for key in METRIC_KEYS}
        result.update(
            organization_id=str(self.organization_id),
            date_from=self.date_from.isoformat(),
            date_to=self.date_to.isoformat(),
            timezone=self.timezone,
            generated_at=self.generated_at.astimezone(dt.UTC).isoformat(),
            source=self.source,
            freshness={block: f.to_dict() for block, f in self.freshness.items()},
        )
        return result

    def to_document(self) -> dict[str, Any]:
        """``to_dict()`` of the plain result with every Decimal as its exact string: a JSON
        number would come back a binary float (contract §4: same type and value cached)."""
        document = DashboardMetrics.to_dict(self)
        document.update({key: exact_json(self.metrics[key]) for key in METRIC_KEYS})
        return document

    @classmethod
    def from_document(cls, data: Mapping[str, Any]) -> DashboardMetrics:
        """Rebuild from ``to_document()`` output; raises ``ValueError``/``KeyError``/
        ``TypeError``/``ArithmeticError`` on anything that is not exactly that shape (how the
        cache spots a bad value)."""
        metrics: dict[str, MetricValue] = {}
        for key in METRIC_KEYS:
            metrics[key] = _checked(key, data[key])
        return cls(
            organization_id=uuid.UUID(data["organization_id"]),
            date_from=dt.date.fromisoformat(data["date_from"]),
            date_to=dt.date.fromisoformat(data["date_to"]),
            timezone=str(data["timezone"]),
            generated_at=dt.datetime.fromisoformat(data["generated_at"]),
            source=data["source"],
            metrics=metrics,
            freshness={b: BlockFreshness.from_dict(f) for b, f in data["freshness"].items()},
        )


def _json_value(value: MetricValue) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def exact_json(value: Any) -> Any:
    """A value for the cache's JSON: a Decimal as its exact string (``str`` keeps its digits
    and exponent, so ``Decimal(str(d))`` is ``d``), anything else as it is."""
    return str(value) if isinstance(value, Decimal) else value


def exact_decimal(key: str, value: Any) -> Decimal:
    """The inverse of ``exact_json`` for a number; only a finite decimal string qualifies."""
    if type(value) is not str:
        raise TypeError(f"{key}: expected a decimal string, got {value!r}")
    number = Decimal(value)  # raises decimal.InvalidOperation (an ArithmeticError)
    if not number.is_finite():
        raise ValueError(f"{key}: {value!r} is not a finite number")
    return number


def _checked(key: str, value: Any) -> MetricValue:
    kind = METRIC_KINDS[key]
    if kind == "int":
        if type(value) is not int:
            raise TypeError(f"{key}: expected an int, got {value!r}")
        return value
    if kind == "breakdown":
        expected = BREAKDOWN_VALUES[key]
        if not isinstance(value, dict) or tuple(value) != expected:
            raise TypeError(f"{key}: expected counts for {expected}, got {value!r}")
        if any(type(count) is not int for count in value.values()):
            raise TypeError(f"{key}: counts must be ints, got {value!r}")
        return value
    return None if value is None else exact_decimal(key, value)
