"""Issue 8 §6: whatever is passed to ``get_metrics``, the outcome is an exact result or an
``InvalidQuery`` (a ``ValueError``) whose message names a bad argument; nothing else escapes.

The oracle is written from the contract (§4), not from ``request.py``: an organization is a
``uuid.UUID`` or its text (32 hex digits, optionally hyphenated 8-4-4-4-12); a date is a
``datetime.date`` that is not a ``datetime``, or ``YYYY-MM-DD`` in ASCII digits; surrounding
ASCII blanks (space, tab, CR, LF) are tolerated, nothing else: no Unicode white space or
control character (NBSP, U+2028, U+0085, U+001C, zero-width ones), which str.strip() would
drop. Most generated requests are invalid and never reach a server;
the valid ones are answered by a Client on the session dashboard and checked against the
naive query.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from dashquery import Client, InvalidQuery
from dashquery.catalog import MAX_RANGE_DAYS
from tests.python.helpers import Dashboard, assert_matches_naive

_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_BLANKS = " \t\r\n"
# What str.strip() or int() take as white space beyond the ASCII blanks, and zero-width ones.
ODD_BLANKS = [
    "\u00a0",
    "\u2028",
    "\u2029",
    "\x1c",
    "\x1f",
    "\x85",
    "\x0b",
    "\x0c",
    "\u200b",
    "\ufeff",
    "\u3000",
]
_DATA_YEARS = (dt.date.today() - dt.timedelta(days=900), dt.date.today() + dt.timedelta(days=60))


class KnownOrg:
    """Stands for an organization of the dashboard (only known once the fixture has run)."""

    def __init__(self, index: int, as_text: bool) -> None:
        self.index, self.as_text = index, as_text

    def __repr__(self) -> str:
        return f"KnownOrg({self.index}, as_text={self.as_text})"


def mutations(texts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """One character replaced, inserted or deleted: near misses of a valid text, biased to
    characters that Python's own parsers take in some other meaning."""

    def mutate(text: str, at: int, char: str, how: str) -> str:
        at %= len(text) + 1
        after = text[at:] if how == "insert" else text[at + 1 :]
        return text[:at] + ("" if how == "delete" else char) + after

    return st.builds(
        mutate,
        texts,
        st.integers(0, 40),
        st.one_of(st.sampled_from("_xX+ -:{}WTZ\u0661\uff11"), st.characters()),
        st.sampled_from(["replace", "insert", "delete"]),
    )


ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.binary(max_size=16),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=2),
    st.datetimes(),
    st.datetimes().map(dt.datetime.isoformat),
)
UUID_TEXTS = st.uuids().map(str)


def oddly_padded(texts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda t, c, before: c + t if before else t + c,
        texts,
        st.sampled_from(ODD_BLANKS),
        st.booleans(),
    )


ORGS = st.one_of(
    ANYTHING,
    st.uuids(),
    UUID_TEXTS,
    UUID_TEXTS.map(lambda s: f" {s.upper()}\n"),
    st.uuids().map(lambda u: u.hex),
    mutations(UUID_TEXTS),
    oddly_padded(UUID_TEXTS),
    st.dates(),
    st.builds(KnownOrg, st.integers(0, 1), st.booleans()),
)
DATE_TEXTS = st.dates().map(dt.date.isoformat)
DATES = st.one_of(
    ANYTHING,
    st.dates(),
    st.dates(*_DATA_YEARS),
    st.dates(*_DATA_YEARS).map(dt.date.isoformat),
    DATE_TEXTS,
    DATE_TEXTS.map(lambda s: f"\t{s} "),
    mutations(DATE_TEXTS),
    oddly_padded(DATE_TEXTS),
    st.uuids(),
)


def org_ok(value: object) -> bool:
    return isinstance(value, uuid.UUID) or (
        isinstance(value, str) and _UUID.fullmatch(value.strip(_BLANKS)) is not None
    )


def date_of(value: object) -> dt.date | None:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str) and _DATE.fullmatch(value.strip(_BLANKS)):
        try:
            return dt.date.fromisoformat(value.strip(_BLANKS))
        except ValueError:
            return None
    return None


@pytest.fixture(scope="module")
def client(dashboard: Dashboard) -> Iterator[Client]:
    with Client(settings=dashboard.settings, cache=False) as client:
        yield client


@pytest.fixture(scope="module")
def conn(dashboard: Dashboard) -> Iterator[psycopg.Connection[Any]]:
    with dashboard.connect() as conn:
        yield conn


def check_outcome(
    client: Client,
    conn: psycopg.Connection[Any],
    dashboard: Dashboard,
    organization_id: object,
    date_from: object,
    date_to: object,
) -> None:
    """The property: an exact result for a valid request, else InvalidQuery naming a bad
    argument (either date for a bad range); no other exception."""
    if isinstance(organization_id, KnownOrg):
        known = dashboard.organization_ids[organization_id.index]
        organization_id = str(known) if organization_id.as_text else known
    start, end = date_of(date_from), date_of(date_to)
    bad = {
        name
        for name, ok in (
            ("organization_id", org_ok(organization_id)),
            ("date_from", start is not None),
            ("date_to", end is not None),
        )
        if not ok
    }
    if not bad:
        assert start is not None and end is not None
        if start > end or (end - start).days + 1 > MAX_RANGE_DAYS:
            bad = {"date_from", "date_to"}
    try:
        result = client.get_metrics(organization_id, date_from, date_to)
    except InvalidQuery as exc:
        event("InvalidQuery")
        assert isinstance(exc, ValueError)
        assert bad, f"a valid request was refused: {exc}"
        assert any(name in str(exc) for name in bad), f"{exc} names none of {sorted(bad)}"
        return
    event("answered")
    assert not bad, f"accepted although {sorted(bad)} is not valid: {result.to_dict()}"
    assert (result.date_from, result.date_to) == (start, end)
    assert result.organization_id == uuid.UUID(str(organization_id).strip(_BLANKS))
    assert_matches_naive(conn, dashboard.settings, result)


@settings(max_examples=200, deadline=None)
@given(organization_id=ORGS, date_from=DATES, date_to=DATES)
def test_any_input_gives_an_exact_result_or_names_the_bad_argument(
    client: Client,
    conn: psycopg.Connection[Any],
    dashboard: Dashboard,
    organization_id: object,
    date_from: object,
    date_to: object,
) -> None:
    check_outcome(client, conn, dashboard, organization_id, date_from, date_to)


@settings(max_examples=300, deadline=None)
@given(which=st.sampled_from(["organization_id", "date_from", "date_to"]), data=st.data())
def test_one_fuzzed_argument_among_valid_ones(
    client: Client,
    conn: psycopg.Connection[Any],
    dashboard: Dashboard,
    which: str,
    data: st.DataObject,
) -> None:
    """The same property with the other two arguments valid, so that every near miss of one
    argument is judged on its own rather than hidden behind another bad argument."""
    arguments: dict[str, object] = {
        "organization_id": KnownOrg(0, as_text=True),
        "date_from": "2024-01-01",
        "date_to": "2024-12-31",
    }
    near_misses = mutations(UUID_TEXTS if which == "organization_id" else DATE_TEXTS)
    values = ORGS if which == "organization_id" else DATES
    arguments[which] = data.draw(st.one_of(near_misses, values), label=which)
    check_outcome(client, conn, dashboard, **arguments)


@settings(max_examples=25, deadline=None)
@given(
    index=st.integers(0, 1),
    as_text=st.booleans(),
    start=st.dates(*_DATA_YEARS),
    days=st.integers(0, 800),
)
def test_valid_requests_over_the_data_are_exact(
    client: Client,
    conn: psycopg.Connection[Any],
    dashboard: Dashboard,
    index: int,
    as_text: bool,
    start: dt.date,
    days: int,
) -> None:
    """The same property where the data is, so that "exact" is about real numbers."""
    org = dashboard.organization_ids[index]
    end = start + dt.timedelta(days=days)
    result = client.get_metrics(
        str(org) if as_text else org, start.isoformat() if as_text else start, end
    )
    assert (result.organization_id, result.date_from, result.date_to) == (org, start, end)
    assert_matches_naive(conn, dashboard.settings, result)


# Near misses that uuid.UUID and date.fromisoformat would read as another id or day, which
# request.py accepted before it checked the text's form itself.
NEAR_MISSES = [
    ("organization_id", "1_" + "1" * 30, "2025-01-01"),  # int() digit separators
    ("organization_id", "0x" + "1" * 30, "2025-01-01"),  # a hex prefix: 30 digits, not 32
    ("organization_id", "\u0661" * 32, "2025-01-01"),  # Arabic-Indic digits
    ("organization_id", f"{{{uuid.UUID(int=1)}}}", "2025-01-01"),  # not "its string"
    ("date_from", str(uuid.UUID(int=1)), "2025-W01-1"),  # ISO week date, not YYYY-MM-DD
    ("date_from", str(uuid.UUID(int=1)), "20250101T0"),
    ("date_from", str(uuid.UUID(int=1)), "\u0662\u0660\u0662\u0665-01-01"),
]


@pytest.mark.parametrize(("named", "organization_id", "date_from"), NEAR_MISSES)
def test_near_miss_text_is_refused(
    client: Client, named: str, organization_id: str, date_from: str
) -> None:
    with pytest.raises(InvalidQuery, match=named):
        client.get_metrics(organization_id, date_from, "2025-12-31")


@pytest.mark.parametrize("blank", ODD_BLANKS)
@pytest.mark.parametrize("where", ["before", "after", "inside"])
@pytest.mark.parametrize("named", ["organization_id", "date_from"])
def test_unicode_blanks_and_control_characters_are_refused(
    client: Client, dashboard: Dashboard, blank: str, where: str, named: str
) -> None:
    """str.strip() dropped these around an id or a date, so they were accepted (issue 11
    item 15); only ASCII space, tab, CR and LF around the text are tolerated."""
    text = str(dashboard.organization_ids[0]) if named == "organization_id" else "2024-01-01"
    odd = {"before": blank + text, "after": text + blank, "inside": text[:4] + blank + text[4:]}
    arguments = {"organization_id": str(dashboard.organization_ids[0]), "date_from": "2024-01-01"}
    arguments[named] = odd[where]
    with pytest.raises(InvalidQuery, match=named):
        client.get_metrics(arguments["organization_id"], arguments["date_from"], "2024-12-31")


def test_ascii_blanks_around_arguments_are_still_tolerated(
    client: Client, dashboard: Dashboard
) -> None:
    org = dashboard.organization_ids[0]
    result = client.get_metrics(f" \t{org}\r\n", "\n2024-01-01 ", "2024-01-31\t")
    assert (result.organization_id, result.date_from) == (org, dt.date(2024, 1, 1))


@pytest.mark.parametrize("named", ["organization_id", "date_from", "date_to"])
def test_a_huge_argument_is_not_echoed_whole(client: Client, named: str) -> None:
    arguments = {
        "organization_id": str(uuid.UUID(int=1)), "date_from": "2024-01-01", "date_to": "2024-12-31"
    }  # fmt: skip
    arguments[named] = "9" * 100_000
    with pytest.raises(InvalidQuery, match=named) as caught:
        client.get_metrics(**arguments)
    message = str(caught.value)
    assert len(message) < 250 and "…" in message and "100000 chars" in message
