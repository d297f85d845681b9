"""Validation of a metrics request: every bad argument becomes ``InvalidQuery`` naming it."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass

from dashquery.catalog import MAX_RANGE_DAYS
from dashquery.config import shown
from dashquery.errors import InvalidQuery

# The contract's forms only: the extra ones uuid.UUID and date.fromisoformat take (digit
# separators, a 0x prefix, non-ASCII digits, ISO week dates) would name another id or day.
_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}(?:-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}")
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Surrounding white space a form or a shell adds: ASCII space, tab and line ends only.
# str.strip() would also drop NBSP, U+2028, U+0085, \x1c-\x1f and other separators, so a
# pasted id carrying them was accepted; with these stripped, the ASCII-only patterns above
# refuse every other character, zero-width ones included.
ASCII_BLANKS = " \t\r\n"


def strip_blanks(text: str) -> str:
    return text.strip(ASCII_BLANKS)


def parse_organization_id(value: object, argument: str = "organization_id") -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise InvalidQuery(
            f"{argument} must be a uuid.UUID or its string, not {type(value).__name__}"
        )
    text = strip_blanks(value)
    if not _UUID_TEXT.fullmatch(text):
        raise InvalidQuery(f"{argument}={shown(value)} is not a UUID")
    return uuid.UUID(text)


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
    text = strip_blanks(value)
    try:
        if not _DATE_TEXT.fullmatch(text):
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidQuery(f"{argument}={shown(value)} is not a YYYY-MM-DD date") from None


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
