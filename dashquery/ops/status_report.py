"""What ``dashquery status`` found (``StatusReport``) and how it is printed.

Collection lives in ``dashquery.ops.status``; this module only holds the report and renders it:
a rich table on a terminal, plain full-width columns otherwise (a log, a pipe, cron mail),
where nothing is ever cut to "…", and JSON with every field.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from rich.console import Console
from rich.table import Table

OVERDUE_FACTOR = 2
# The worst first; a view's state is the first of these its problems start with.
PROBLEM_STATES = ("missing", "failed", "outdated", "overdue")
_STATE_STYLE = {
    "ok": "green",
    "running": "cyan",
    "overdue": "yellow",
    "outdated": "bold red",
    "failed": "bold red",
    "missing": "bold red",
}
_COLUMNS = (
    "view", "state", "watermark (UTC)", "age", "cadence", "rows", "refresh", "last run",
    "problem / last error",
)  # fmt: skip


@dataclass(frozen=True)
class LastRun:
    """The latest run of a view that did something (skipped runs say nothing about it)."""

    status: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    duration_seconds: float | None
    error: str | None


@dataclass(frozen=True)
class ViewStatus:
    """One materialized view: its watermark, last run and what, if anything, is wrong."""

    view: str
    expected: bool
    exists: bool
    watermark: dt.datetime | None = None
    age_seconds: float | None = None
    cadence_minutes: int | None = None
    row_count: int | None = None
    last_refresh_seconds: float | None = None
    last_error: str | None = None
    last_run: LastRun | None = None
    is_running: bool = False
    queued_at: dt.datetime | None = None
    problems: tuple[str, ...] = ()

    @property
    def overdue_after_seconds(self) -> float | None:
        return None if self.cadence_minutes is None else OVERDUE_FACTOR * self.cadence_minutes * 60

    @property
    def state(self) -> str:
        """missing, failed, outdated, overdue, running or ok: the worst first."""
        for state in PROBLEM_STATES:
            if any(problem.startswith(state) for problem in self.problems):
                return state
        return "running" if self.is_running else "ok"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(state=self.state, overdue_after_seconds=self.overdue_after_seconds)
        return _jsonable(data)


@dataclass(frozen=True)
class ListenerStatus:
    """``dashquery listen``: backends connected (pg_stat_activity) and its last heartbeat.
    A missing listener is a ``warning``, not a problem: reads stay exact without it, and
    cached results are then dropped by their TTL instead of within a second."""

    capture: bool
    connected: int
    connected_since: dt.datetime | None = None
    connected_at: dt.datetime | None = None
    last_notification_at: dt.datetime | None = None
    last_poll_at: dt.datetime | None = None
    notifications: int = 0
    warning: str | None = None

    def line(self, now: dt.datetime) -> str:
        if not self.capture:
            return "listener: not needed (no change capture in this schema)"
        if not self.connected:
            return "listener: not connected"
        seen = self.last_notification_at
        last = f"{human_duration((now - seen).total_seconds())} ago" if seen else "never"
        since = self.connected_at or self.connected_since
        at = f" since {since.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC" if since else ""
        return f"listener: connected ({self.connected}){at}, last notification {last}"


@dataclass(frozen=True)
class StatusReport:
    """Every view, plus ``problems`` of the deployment as a whole: views built for other
    settings than these, a Redis that is unreachable or would serve stale values."""

    checked_at: dt.datetime
    schema: str
    views: tuple[ViewStatus, ...] = field(default_factory=tuple)
    problems: tuple[str, ...] = ()
    settings: dict[str, str] = field(default_factory=dict)
    listener: ListenerStatus | None = None

    @property
    def warnings(self) -> tuple[str, ...]:
        """Worth a look but not unhealthy (the exit status ignores them)."""
        return (self.listener.warning,) if self.listener and self.listener.warning else ()

    @property
    def healthy(self) -> bool:
        return not self.problems and not any(view.problems for view in self.views)

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at.astimezone(dt.UTC).isoformat(),
            "schema": self.schema,
            "healthy": self.healthy,
            "overdue_factor": OVERDUE_FACTOR,
            "settings": dict(self.settings),
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "listener": _jsonable(asdict(self.listener)) if self.listener else None,
            "views": [view.to_dict() for view in self.views],
        }


def print_status(report: StatusReport, file: IO[str] | None = None) -> None:
    """The report for people: a table on a terminal, full-width plain columns elsewhere."""
    console = Console(file=file, highlight=False)
    rows = [_row(view) for view in report.views]
    title = f"dashquery views in {report.schema} at {report.checked_at:%Y-%m-%d %H:%M:%S %Z}"
    verdict = "healthy" if report.healthy else "ATTENTION NEEDED"
    footer = [f"problem: {problem}" for problem in report.problems]
    if report.listener is not None:
        footer.append(report.listener.line(report.checked_at))
    footer += [f"warning: {warning}" for warning in report.warnings]
    footer.append(f"{verdict} (overdue = watermark older than {OVERDUE_FACTOR} x cadence)")
    if not console.is_terminal:
        # rich fits a table to 80 columns off a terminal and cuts cells to "…"; a log or a
        # pipe gets every character instead.
        out = console.file
        out.write(title + "\n")
        widths = [max(len(cell) for cell in column) for column in zip(_COLUMNS, *rows, strict=True)]
        for cells in (_COLUMNS, *rows):
            line = "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
            out.write(line.rstrip() + "\n")
        out.write("\n".join(footer) + "\n")
        return
    table = Table(title=title, title_justify="left")
    for column in _COLUMNS[:-1]:
        table.add_column(column, no_wrap=True)
    table.add_column(_COLUMNS[-1], overflow="fold")
    for view, cells in zip(report.views, rows, strict=True):
        style = _STATE_STYLE[view.state]
        table.add_row(cells[0], f"[{style}]{cells[1]}[/]", *cells[2:])
    console.print(table)
    for line in footer:
        console.print(line, markup=False)


def _row(view: ViewStatus) -> tuple[str, ...]:
    run = view.last_run
    detail = "; ".join(view.problems) or (view.last_error or "")
    if view.is_running and run and not detail:
        detail = f"refreshing since {run.started_at.astimezone(dt.UTC):%H:%M:%S}"
    if view.queued_at and not detail:
        detail = f"queued since {view.queued_at.astimezone(dt.UTC):%H:%M:%S}"
    return (
        view.view,
        view.state,
        f"{view.watermark.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}" if view.watermark else "-",
        human_duration(view.age_seconds),
        f"{view.cadence_minutes} min" if view.cadence_minutes else "-",
        f"{view.row_count:,}" if view.row_count is not None else "-",
        human_duration(view.last_refresh_seconds),
        f"{run.status} {run.started_at.astimezone(dt.UTC):%H:%M:%S}" if run else "-",
        # one line per view: an error's first line; --json has the whole text
        detail.splitlines()[0] if detail else "",
    )


def _human(seconds: float) -> str:
    """Compact durations for people: 0.08s, 42s, 17m, 3.5h, 2.1d."""
    if seconds < 10:
        return f"{seconds:.2g}s"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def human_duration(seconds: float | None) -> str:
    return "-" if seconds is None else _human(seconds)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return value
