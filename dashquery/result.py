"""``DashboardMetrics``: the result of contract §4 and its compact JSON form."""

from __future__ import annotations

import datetime as dt
import functools
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

    def copy(self) -> DashboardMetrics:
        """An equal result sharing nothing a caller could change with this one: new metrics,
        breakdown and freshness dicts (the rest is immutable). What the cache hands out of a
        value it decoded before."""
        metrics = dict(self.metrics)
        for key, _ in _BREAKDOWNS:
            metrics[key] = dict(metrics[key])  # type: ignore[arg-type]
        return DashboardMetrics(
            self.organization_id, self.date_from, self.date_to, self.timezone,
            self.generated_at, self.source, metrics, dict(self.freshness),
        )  # fmt: skip

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

    def to_document(self) -> list[Any]:
        """The cache's compact form: a fixed-order JSON array without key names (a third of
        the size of ``to_dict()``'s, and several times faster to parse and check)::

            [organization_id, date_from, date_to, timezone, generated_at (UTC ISO),
             [every "int" metric in METRIC_KEYS order, then every breakdown's counts in
              BREAKDOWN_VALUES order, flattened: all ints],
             [every "number" metric in METRIC_KEYS order: a Decimal as its exact string (a
              JSON number would come back a binary float: contract §4) or null],
             [[block, watermark, first_live_day, live_reason, changed_days_live], ...]]
        """
        metrics = self.metrics
        counts = [metrics[key] for key in _INT_KEYS]
        for key, names in _BREAKDOWNS:
            breakdown = metrics[key]
            counts.extend(breakdown[name] for name in names)  # type: ignore[index]
        return [
            str(self.organization_id),
            self.date_from.isoformat(),
            self.date_to.isoformat(),
            self.timezone,
            self.generated_at.astimezone(dt.UTC).isoformat(),
            counts,
            [exact_json(metrics[key]) for key in _NUMBER_KEYS],
            [[block, *f.to_dict().values()] for block, f in self.freshness.items()],
        ]

    @classmethod
    def from_document(cls, data: Any, *, source: Source = "cache") -> DashboardMetrics:
        """Rebuild from ``to_document()`` output; raises ``ValueError``/``KeyError``/
        ``TypeError``/``ArithmeticError`` on anything that is not exactly that shape (how the
        cache spots a bad value)."""
        if type(data) is not list or len(data) != 8:
            raise TypeError("expected an 8-item metrics document")
        org, date_from, date_to, timezone = data[:4]
        if type(timezone) is not str:
            raise TypeError(f"timezone: expected a string, got {timezone!r}")
        return cls.from_parts(
            data, uuid.UUID(org), dt.date.fromisoformat(date_from),
            dt.date.fromisoformat(date_to), timezone, source,
        )  # fmt: skip

    @classmethod
    def from_parts(
        cls,
        data: list[Any],
        organization_id: uuid.UUID,
        date_from: dt.date,
        date_to: dt.date,
        timezone: str,
        source: Source,
    ) -> DashboardMetrics:
        """``from_document`` for a caller that has already checked the document's first four
        items (``data[:4]``) against the request and time zone it expects (the cache's
        lookup): the rest is validated here, without parsing the request again."""
        if len(data) != 8:
            raise TypeError("expected an 8-item metrics document")
        rows = data[7]
        if type(rows) is not list:
            raise TypeError(f"freshness: expected a list, got {rows!r}")
        freshness: dict[str, BlockFreshness] = {}
        for block, *row in rows:
            if type(block) is not str:
                raise TypeError(f"freshness: bad block name {block!r}")
            freshness[block] = _freshness(*row)
        return cls(
            organization_id=organization_id,
            date_from=date_from,
            date_to=date_to,
            timezone=timezone,
            generated_at=dt.datetime.fromisoformat(data[4]),
            source=source,
            metrics=_metrics_from(data[5], data[6]),
            freshness=freshness,
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


_INT_KEYS = tuple(key for key in METRIC_KEYS if METRIC_KINDS[key] == "int")
_NUMBER_KEYS = tuple(key for key in METRIC_KEYS if METRIC_KINDS[key] == "number")
_BREAKDOWNS = tuple(
    (key, BREAKDOWN_VALUES[key]) for key in METRIC_KEYS if METRIC_KINDS[key] == "breakdown"
)
_N_COUNTS = len(_INT_KEYS) + sum(len(names) for _, names in _BREAKDOWNS)
_INT_TYPE = {int}
_NUMBER_TYPES = {str, type(None)}


def _metrics_from(counts: Any, numbers: Any) -> dict[str, MetricValue]:
    """A document's §3 values, each checked against its kind (``METRIC_KINDS``) with one
    set of types per list (``bool`` is not ``int`` here; a float is neither a count nor a
    decimal string), every decimal exact and finite. The dict has METRIC_KEYS' order."""
    if type(counts) is not list or len(counts) != _N_COUNTS:
        raise TypeError(f"expected {_N_COUNTS} counts")
    if type(numbers) is not list or len(numbers) != len(_NUMBER_KEYS):
        raise TypeError(f"expected {len(_NUMBER_KEYS)} numbers")
    if set(map(type, counts)) != _INT_TYPE:
        raise TypeError("a count or integral sum is not an int")
    if not set(map(type, numbers)) <= _NUMBER_TYPES:
        raise TypeError("a number is not a decimal string or null")
    decimals = [None if text is None else Decimal(text) for text in numbers]
    if any(d is not None and not d.is_finite() for d in decimals):
        raise ValueError(f"a number is not finite: {numbers!r}")
    metrics: dict[str, Any] = dict.fromkeys(METRIC_KEYS)
    metrics.update(zip(_INT_KEYS, counts, strict=False))  # lengths checked above
    metrics.update(zip(_NUMBER_KEYS, decimals, strict=False))
    at = len(_INT_KEYS)
    for key, names in _BREAKDOWNS:
        metrics[key] = dict(zip(names, counts[at : at + len(names)], strict=False))
        at += len(names)
    return metrics


@functools.lru_cache(maxsize=4096, typed=True)
def _freshness(
    watermark: Any, first_live_day: Any, live_reason: Any, changed_days_live: Any
) -> BlockFreshness:
    """A document's freshness row as a (frozen, so shareable) ``BlockFreshness``; the same
    rows come back with every hit, so each is parsed and checked once. Failures are not
    cached: a bad row raises every time."""
    if live_reason is not None and type(live_reason) is not str:
        raise TypeError(f"live_reason: expected a string, got {live_reason!r}")
    return BlockFreshness.from_dict(
        {"watermark": watermark, "first_live_day": first_live_day,
         "live_reason": live_reason, "changed_days_live": changed_days_live}
    )  # fmt: skip
