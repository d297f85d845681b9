"""Every CLI command fails with ONE line naming the problem and a non-zero exit, never a
traceback (issue 11 item 12), on real servers and in a real subprocess.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import click
import psycopg
import pytest
from click.testing import CliRunner, Result

from dashquery.cli import DEBUG_HINT, DashqueryGroup, cli
from dashquery.config import Settings
from tests.python.helpers import Dashboard, settings_environment

DASHQUERY = Path(sys.executable).with_name("dashquery")


def env_of(settings: Settings, **overrides: str) -> dict[str, str]:
    env = settings_environment(settings)
    env.update(overrides)
    return env


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_one_line_failure(result: Result, *expected: str) -> str:
    """Exit 1, no traceback, stderr one line ("Error: ...") holding every expected text."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


def run(*args: str, env: dict[str, str]) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


ORG = str(uuid.UUID(int=7))
COMMANDS = [
    ("status",),
    ("status", "--json"),
    ("metrics", ORG, "2024-01-01", "2024-01-31"),
    ("invalidate",),
    ("invalidate", "--org", ORG),
    ("orgs",),
    ("warm",),
    ("refresh", "--queued"),
    ("bench", "--existing"),
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_an_unusable_redis_url_is_one_line_naming_the_variable(
    dashboard: Dashboard, args: tuple[str, ...]
) -> None:
    """Was: a raw ValueError from redis-py and a traceback in every command."""
    result = run(*args, env=env_of(dashboard.settings, DASHQUERY_REDIS_URL="notaurl"))
    assert_one_line_failure(result, "DASHQUERY_REDIS_URL")


@pytest.mark.parametrize("args", [("status",), ("refresh", "--queued"), ("orgs",), ("warm",)])
def test_postgresql_refusing_connections_is_one_line(
    dashboard: Dashboard, args: tuple[str, ...]
) -> None:
    """Was: psycopg's two-line message (status) or a raw OperationalError (orgs, warm)."""
    env = env_of(dashboard.settings, PGPORT=str(closed_port()), PGHOST="127.0.0.1")
    assert_one_line_failure(run(*args, env=env), "refused")


def test_refresh_queued_on_a_schema_dbt_never_built(dashboard: Dashboard) -> None:
    """Was: a raw UndefinedTable traceback."""
    env = env_of(dashboard.settings, DASHQUERY_SCHEMA="dq_never_built")
    line = assert_one_line_failure(run("refresh", "--queued", env=env), "run dbt build")
    assert "dq_never_built" in line


def test_a_bad_argument_is_one_line(dashboard: Dashboard) -> None:
    env = env_of(dashboard.settings)
    assert_one_line_failure(
        run("metrics", f"\u00a0{ORG}", "2024-01-01", "2024-01-31", env=env), "organization_id"
    )
    assert_one_line_failure(run("invalidate", "--org", "9" * 100_000, env=env), "organization_id")
    assert len(run("invalidate", "--org", "9" * 100_000, env=env).stderr) < 300


def test_unexpected_errors_are_one_line_with_a_hint_unless_debugging(
    dashboard: Dashboard,
) -> None:
    """Whatever a command lets through: a psycopg error from the real server, or a bug."""
    group = DashqueryGroup(name="dashquery", params=cli.params)

    @group.command()
    def divide() -> None:
        with psycopg.connect(dashboard.settings.conninfo) as conn:
            conn.execute("select 1 / 0")

    @group.command()
    def bug() -> None:
        raise KeyError("a\nmulti-line bug")

    @group.command()
    def exits() -> None:
        click.get_current_context().exit(2)

    runner = CliRunner()
    assert_one_line_failure(runner.invoke(group, ["divide"]), "division by zero")
    line = assert_one_line_failure(runner.invoke(group, ["bug"]), "KeyError", DEBUG_HINT)
    assert "multi-line bug" in line
    debugging = runner.invoke(group, ["--debug", "bug"])
    assert isinstance(debugging.exception, KeyError)
    debugging = runner.invoke(group, ["bug"], env={"DASHQUERY_DEBUG": "1"})
    assert isinstance(debugging.exception, KeyError)
    assert runner.invoke(group, ["exits"]).exit_code == 2  # a command's own exit passes


def subprocess_run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {key: value for key, value in os.environ.items() if not key.startswith(("PG", "DASHQ"))}
    full.update(env, COLUMNS="80")
    return subprocess.run(
        [str(DASHQUERY), *args], env=full, capture_output=True, text=True, timeout=60
    )


def assert_process_failed_in_one_line(done: subprocess.CompletedProcess[str], *texts: str) -> None:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    for text in texts:
        assert text in lines[0], (text, lines[0])


def test_a_real_process_status_with_postgresql_down(dashboard: Dashboard) -> None:
    env = env_of(dashboard.settings, PGHOST="127.0.0.1", PGPORT=str(closed_port()))
    assert_process_failed_in_one_line(subprocess_run("status", env=env), "refused")


def test_a_real_process_metrics_with_redis_url_notaurl(dashboard: Dashboard) -> None:
    env = env_of(dashboard.settings, DASHQUERY_REDIS_URL="notaurl")
    done = subprocess_run("metrics", ORG, "2024-01-01", "2024-01-31", env=env)
    assert_process_failed_in_one_line(done, "DASHQUERY_REDIS_URL")


def test_a_real_process_refresh_queued_on_a_missing_schema(dashboard: Dashboard) -> None:
    env = env_of(dashboard.settings, DASHQUERY_SCHEMA="dq_never_built")
    done = subprocess_run("refresh", "--queued", env=env)
    assert_process_failed_in_one_line(done, "dq_never_built", "run dbt build")
