"""Synthetic application data at "Year 3" volumes, loaded fast with COPY.

``generate`` creates the contract §2 tables (from ``dashquery/dev/sql/app_schema.sql``) in
``source_schema`` and fills them for one or more organizations. The rows themselves come from
``dashquery.dev.generate_rows``; this module owns the schema, the loading and the report.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

import psycopg
from psycopg import sql
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from dashquery.config import Settings
from dashquery.dev import generate_rows
from dashquery.errors import Misconfigured

#: Organizations per named volume; each organization gets the "Year 3" volume of one tenant.
VOLUMES: Mapping[str, int] = {"year3": 1, "10x": 10, "100x": 100}

_PROGRESS_EVERY = 10_000  # rows between progress-bar updates
#: A tenant above this scale is generated in parts of at most this scale: one part's rows
#: are held in memory (~250 MB at 2x Year 3), a 100x tenant whole would need ~12 GB.
PART_SCALE = 2.0


def large_tenant_scales(orgs: int, large: float, small: float) -> tuple[float, ...]:
    """Per-organization scales: the first at ``large``, the ``orgs - 1`` others at ``small``."""
    return (large,) + (small,) * (orgs - 1)


@dataclass(frozen=True, kw_only=True)
class GenerateReport:
    """What one ``generate`` call loaded: rows per table (FK order) and how fast."""

    source_schema: str
    rows: Mapping[str, int]
    organization_ids: tuple[uuid.UUID, ...]
    seconds: float
    rows_per_second: float
    days: int = 730
    scales: tuple[float, ...] = ()  # per organization, in organization_ids order

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def summary(self) -> str:
        return (
            f"seeded {self.total_rows:,} rows for {len(self.organization_ids)} organization(s)"
            f" over {self.days:,} days into schema {self.source_schema} in {self.seconds:.1f} s"
            f" ({self.rows_per_second:,.0f} rows/s)"
        )


def app_schema_sql() -> str:
    """The contract §2 DDL, unqualified: run it with ``search_path`` set to the schema."""
    return resources.files("dashquery.dev").joinpath("sql/app_schema.sql").read_text("utf-8")


def generate(
    conninfo: str,
    *,
    source_schema: str,
    timezone: str,
    volume: str = "year3",
    orgs: int | None = None,
    seed: int = 0,
    days: int = 730,
    end: datetime | None = None,
    scale: float = 1.0,
    scales: Sequence[float] | None = None,
    replace: bool = False,
    progress: bool = True,
) -> GenerateReport:
    """Create the application tables in ``source_schema`` and fill them.

    ``conninfo`` is a libpq connection string ("" reads the ``PG*`` variables). ``volume``
    names the organization count (``year3`` 1, ``10x`` 10, ``100x`` 100); ``orgs`` overrides
    it. Each organization gets about ``days`` days of history ending at ``end`` (default: now),
    with business dates in ``timezone``, at ``scale`` times the Year 3 volume; ``scales``
    gives each organization its own (its length is the organization count: e.g.
    ``large_tenant_scales(100, 100.0, 0.1)``). A tenant above ``PART_SCALE`` is generated
    and loaded in parts under one organization id (``generate_rows.organization``). The same
    ``seed`` and ``end`` give identical rows. Without ``replace`` an existing set of tables is
    an error; with it the schema is dropped (CASCADE: dependent views go too) and rebuilt.
    ``progress`` shows a progress bar and a summary line on stderr.
    """
    settings = Settings(source_schema=source_schema, timezone=timezone)  # validates both
    if volume not in VOLUMES:
        raise Misconfigured(f"volume={volume!r} is not one of {', '.join(VOLUMES)}")
    n_orgs = VOLUMES[volume] if orgs is None else orgs
    if scales is not None:
        n_orgs = len(scales)
    per_org = tuple(scales) if scales is not None else (scale,) * max(n_orgs, 0)
    if n_orgs < 1 or days < 1 or not all(s > 0 for s in (scale, *per_org)):
        raise Misconfigured(
            f"orgs={n_orgs}, days={days}, scale(s)={scale if scales is None else list(scales)}:"
            " all must be positive"
        )
    end = datetime.now(UTC) if end is None else end
    if end.tzinfo is None:
        raise Misconfigured("end must be an aware datetime (e.g. with tzinfo=UTC)")
    end_ts = int(end.timestamp())

    started = time.monotonic()
    counts = dict.fromkeys(generate_rows.COLUMNS, 0)
    org_ids: list[uuid.UUID] = []
    estimate = sum(generate_rows.expected_rows(days, s) for s in per_org)
    console = Console(stderr=True)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        _create_tables(conn, settings.source_schema, replace=replace)
        # Skipping the FK triggers during COPY needs superuser rights. It is safe here: the
        # generator derives every foreign key from rows it has just made (a test checks
        # them all), and the primary keys and CHECK constraints are still enforced.
        skip_fk_checks = conn.info.parameter_status("is_superuser") == "on"
        with _meter(progress, console, estimate) as advance:
            for index, org_scale in enumerate(per_org):
                parts = max(1, math.ceil(org_scale / PART_SCALE))
                org_id: uuid.UUID | None = None
                for part in range(parts):
                    org_id, rows = generate_rows.organization(
                        index, seed=seed, zone=settings.zone, end=end_ts, days=days,
                        scale=org_scale / parts, part=part, parts=parts, org_id=org_id,
                    )  # fmt: skip
                    # One transaction per part (an organization, or a part of a large one).
                    with conn.transaction(), conn.cursor() as cur:
                        if skip_fk_checks:
                            cur.execute("set local session_replication_role = replica")
                        for table, columns in generate_rows.COLUMNS.items():
                            rows_of = rows[table]
                            _copy(cur, settings.source_schema, table, columns, rows_of, advance)
                            counts[table] += len(rows_of)
                    del rows  # before the next part is made: one part in memory at a time
                assert org_id is not None
                org_ids.append(org_id)
        for table in generate_rows.COLUMNS:
            conn.execute(sql.SQL("analyze {}").format(sql.Identifier(source_schema, table)))

    seconds = time.monotonic() - started
    report = GenerateReport(
        source_schema=source_schema,
        rows=counts,
        organization_ids=tuple(org_ids),
        seconds=seconds,
        rows_per_second=sum(counts.values()) / seconds if seconds > 0 else 0.0,
        days=days,
        scales=per_org,
    )
    if progress:
        console.print(report.summary(), highlight=False)
    return report


def _create_tables(conn: psycopg.Connection, schema: str, *, replace: bool) -> None:
    """Create ``schema`` and the contract tables in it, in one transaction."""
    with conn.transaction():
        if replace:
            conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))
        else:
            existing = conn.execute(
                "select tablename from pg_tables where schemaname = %s and tablename = any(%s)"
                " order by tablename",
                (schema, list(generate_rows.COLUMNS)),
            ).fetchall()
            if existing:
                names = ", ".join(name for (name,) in existing)
                raise Misconfigured(
                    f"schema {schema!r} already has application tables ({names}); pass"
                    " --replace (replace=True) to drop the schema and generate it afresh"
                )
        conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("set local search_path to {}").format(sql.Identifier(schema)))
        conn.execute(app_schema_sql().encode())  # no parameters: several statements at once


def _copy(
    cur: psycopg.Cursor,
    schema: str,
    table: str,
    columns: tuple[str, ...],
    rows: list[tuple[object, ...]],
    advance: Callable[[int], None],
) -> None:
    statement = sql.SQL("copy {} ({}) from stdin").format(
        sql.Identifier(schema, table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with cur.copy(statement) as copy:
        for start in range(0, len(rows), _PROGRESS_EVERY):
            for row in rows[start : start + _PROGRESS_EVERY]:
                copy.write_row(row)
            advance(len(rows[start : start + _PROGRESS_EVERY]))


@contextmanager
def _meter(enabled: bool, console: Console, estimate: int) -> Iterator[Callable[[int], None]]:
    """A rows progress bar on stderr; the total is an estimate until the load finishes."""
    if not enabled:
        yield lambda done: None
        return
    columns = (
        TextColumn("[bold]seeding"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("rows", total=estimate)
        yield lambda done: bar.advance(task, done)
        bar.update(task, total=bar.tasks[0].completed)
