"""Validation of a metrics request: every bad argument becomes ``InvalidQuery`` naming it."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from dashquery.contract import MAX_RANGE_DAYS
from dashquery.errors import InvalidQuery


def parse_organization_id(value: object, argument: str = "organization_id") -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise InvalidQuery(
            f"{argument} must be a uuid.UUID or its string, not {type(value).__name__}"
        )
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise InvalidQuery(f"{argument}={value!r} is not a UUID") from None


def parse_date(value: object, argument: str) -> dt.date:
    # datetime is a date subclass; a datetime here is almost always a time-zone mistake.
    if isinstance(value, dt.datetime):
        raise InvalidQuery(f"{argument} must be a date, not a datetime ({value!r})")
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        raise InvalidQuery(
            f"{argument} must be a datetime.date or a YYYY-MM-DD string, not {type(value).__name__}"
        )
    text = value.strip()
    try:
        if len(text) != 10:
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidQuery(f"{argument}={value!r} is not a YYYY-MM-DD date") from None


@dataclass(frozen=True, slots=True)
class MetricsRequest:
    """A validated request: one organization, an inclusive range of business days."""

    organization_id: uuid.UUID
    date_from: dt.date
    date_to: dt.date

    @classmethod
    def parse(cls, organization_id: object, date_from: object, date_to: object) -> MetricsRequest:
        org = parse_organization_id(organization_id)
        start = parse_date(date_from, "date_from")
        end = parse_date(date_to, "date_to")
        if start > end:
            raise InvalidQuery(f"date_from={start} is after date_to={end}")
        days = (end - start).days + 1
        if days > MAX_RANGE_DAYS:
            raise InvalidQuery(
                f"date_from={start} to date_to={end} spans {days} days; at most {MAX_RANGE_DAYS}"
            )
        return cls(org, start, end)

    @property
    def days(self) -> int:
        return (self.date_to - self.date_from).days + 1
