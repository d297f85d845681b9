"""The partial-parse cache of ``run_dbt``: one file per project folder, profile and vars.

dbt parses the whole project again (~4 s of a 7 s ``dbt parse`` here) when the profile's
values change. With one shared file, runs alternating between two schemas, as the tests and
the benchmark do, parsed from scratch every time. ``dbt parse`` needs no database.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dashquery.config import Settings
from dashquery.ops import dbt_runner

FULL_PARSE = "Unable to do partial parsing"


def test_runs_alternating_between_schemas_each_parse_partially(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dbt_runner, "_CACHE_DIR", tmp_path)
    first = Settings(schema="parse_cache_a")
    second = dataclasses.replace(first, schema="parse_cache_b")
    for settings in (first, second):
        dbt_runner.run_dbt(["parse"], settings)
    assert len(list(tmp_path.glob("*.partial_parse.msgpack"))) == 2
    again = dbt_runner.run_dbt(["parse"], first)
    assert FULL_PARSE not in again.output, again.output[-2000:]


def test_vars_and_project_folder_are_part_of_the_key(tmp_path: Path) -> None:
    """dbt parses again when the vars change: other vars, another file (either spelling)."""
    env = dbt_runner.dbt_environment(Settings(schema="parse_cache_a"))
    key = dbt_runner._parse_cache
    plain = key(dbt_runner.PROJECT_DIR, ["run"], env)
    assert key(dbt_runner.PROJECT_DIR, ["run", "--select", "x"], env) == plain
    spelled = {
        key(dbt_runner.PROJECT_DIR, ["run", "--vars", "{a: 1}"], env),
        key(dbt_runner.PROJECT_DIR, ["run", "--vars={a: 1}"], env),
        key(dbt_runner.PROJECT_DIR, ["run", "--vars", "{a: 2}"], env),
        key(tmp_path, ["run"], env),
        key(dbt_runner.PROJECT_DIR, ["run"], {**env, "DASHQUERY_SCHEMA": "parse_cache_b"}),
    }
    assert plain not in spelled and len(spelled) == 5
