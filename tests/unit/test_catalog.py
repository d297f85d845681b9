"""The Python catalog (``dashquery.catalog``) against the dbt project, in both directions.

The chain of checks is closed: the dbt test ``matches_catalog`` (macros/generic_tests/
matches_catalog.sql, run by ``dbt build``) checks that each relation's real columns in
PostgreSQL are exactly those its yml ``config.meta.dashquery`` declares; this module checks
that the meta (read from ``dbt parse``'s target/manifest.json) and the value sets (var
``dashquery_value_sets`` in dbt_project.yml: vars are not in the manifest) equal the
catalog. So SQL column -> yml meta -> Python catalog: a column added to, renamed in or
dropped from a daily model fails one of the two tests instead of being ignored by the read
path, and so does a catalog entry that dbt does not declare.

Also here: the bookkeeping table names of macros/bookkeeping.sql, the advisory-lock key of
the materialization and of ``dashquery status``, and that no module of the package writes
one of these names a second time instead of importing it from the catalog.

``dbt parse`` needs no database: it runs here with PGHOST pointing at a folder without a
server and PGPORT=1, so a connection attempt would fail the parse.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from psycopg import sql

import dashquery
from dashquery import catalog
from dashquery.catalog import CURRENT_STATE, RELATIONS, DailyBlock, DistinctDays, Snapshot
from dashquery.ops import status
from dashquery.ops.dbt_runner import PROJECT_DIR, dbt_executable

PACKAGE = Path(dashquery.__file__).parent
# Literals of catalog names still written outside the catalog, each with the reason.
SECOND_LITERALS: dict[str, str] = {}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    scratch = tmp_path_factory.mktemp("dbt-parse")
    profiles = scratch / "profiles"
    profiles.mkdir()
    (profiles / "profiles.yml").write_bytes((PROJECT_DIR / "profiles.yml.example").read_bytes())
    no_server = scratch / "no-server"
    no_server.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PG", "DBT_"))},
        "PGHOST": str(no_server),  # a socket folder with no server in it
        "PGPORT": "1",
        "DBT_PROFILES_DIR": str(profiles),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    target = scratch / "target"
    completed = subprocess.run(
        [
            dbt_executable(),
            "parse",
            "--project-dir",
            str(PROJECT_DIR),
            "--target-path",
            str(target),
            "--log-path",
            str(scratch / "logs"),
            "--no-partial-parse",
        ],
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    return json.loads((target / "manifest.json").read_text())


def _models(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        node["alias"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["package_name"] == "dashquery"
    }


def _catalog_meta(relation: DailyBlock | DistinctDays | Snapshot) -> dict[str, Any]:
    """A catalog relation in the shape of its dbt ``meta.dashquery``."""
    meta: dict[str, Any] = {
        "block": relation.name,
        "kind": relation.kind,
        "materialized": relation.materialized_view,
        "key": list(relation.key),
    }
    if isinstance(relation, DailyBlock):
        meta["additive"] = list(relation.additive)
        if relation.breakdowns:
            meta["breakdowns"] = {
                b.metric: {"prefix": b.prefix, "values_var": b.values_var}
                for b in relation.breakdowns
            }
    elif isinstance(relation, DistinctDays):
        meta["distinct"] = relation.distinct
    else:
        meta["columns"] = list(relation.columns)
    return meta


def _differences(view: str, dbt: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    problems = []
    for field in sorted({*dbt, *ours}):
        if field not in ours:
            problems.append(f"{view}: meta.dashquery.{field} in dbt, not in the catalog")
        elif field not in dbt:
            problems.append(f"{view}: {field} in the catalog, not in dbt's meta.dashquery")
        elif isinstance(dbt[field], list) and isinstance(ours[field], list):
            only_dbt = [c for c in dbt[field] if c not in ours[field]]
            only_ours = [c for c in ours[field] if c not in dbt[field]]
            if only_dbt:
                problems.append(f"{view}: {field} {only_dbt} declared in dbt, not in the catalog")
            if only_ours:
                problems.append(f"{view}: {field} {only_ours} in the catalog, not declared in dbt")
            if not only_dbt and not only_ours and dbt[field] != ours[field]:
                problems.append(f"{view}: {field} order {dbt[field]} in dbt, {ours[field]} here")
        elif dbt[field] != ours[field]:
            problems.append(f"{view}: {field} is {dbt[field]!r} in dbt, {ours[field]!r} here")
    return problems


def test_every_relation_equals_its_dbt_meta(manifest: dict[str, Any]) -> None:
    declared = {
        name: node["config"]["meta"]["dashquery"]
        for name, node in _models(manifest).items()
        if "dashquery" in node["config"].get("meta", {})
    }
    ours = {relation.view: _catalog_meta(relation) for relation in RELATIONS}
    problems = [
        *(f"{v}: has meta.dashquery in dbt, not in the catalog" for v in declared.keys() - ours),
        *(f"{v}: in the catalog, no dbt model declares it" for v in ours.keys() - declared),
    ]
    for view in sorted(declared.keys() & ours.keys()):
        problems += _differences(view, declared[view], ours[view])
    assert not problems, "\n".join(problems)


def test_materialized_views_are_the_dbt_dashboard_mv_models(manifest: dict[str, Any]) -> None:
    models = _models(manifest)
    built = {n for n, node in models.items() if node["config"]["materialized"] == "dashboard_mv"}
    assert built == set(catalog.MATERIALIZED_VIEWS)
    for relation in RELATIONS:
        parents = models[relation.materialized_view]["depends_on"]["nodes"]
        assert models[relation.view]["unique_id"] in parents, (
            f"{relation.materialized_view} does not select from {relation.view}"
        )


def test_spans_column_is_the_catalog_days_column(manifest: dict[str, Any]) -> None:
    """The multirange column the read path counts from (``DistinctDays.days``) is the one dbt
    keeps the spans of (config ``spans``, dbt_project.yml) and the one the relation's yml
    declares; a rename on either side fails here instead of in a read."""
    models = _models(manifest)
    for relation in RELATIONS:
        if not isinstance(relation, DistinctDays):
            continue
        node = models[relation.materialized_view]
        assert node["config"].get("spans") == relation.days, relation.materialized_view
        assert relation.days in node["columns"], relation.materialized_view


def test_value_sets_equal_the_dbt_var() -> None:
    project = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())
    value_sets = project["vars"]["dashquery_value_sets"]
    assert {k: tuple(v) for k, v in value_sets.items()} == catalog.VALUE_SETS
    for breakdown in catalog.BREAKDOWNS.values():
        assert breakdown.values_var in value_sets


def test_breakdowns_are_the_breakdown_metrics() -> None:
    kinds = {key for key, kind in catalog.METRIC_KINDS.items() if kind == "breakdown"}
    assert set(catalog.BREAKDOWNS) == kinds == set(catalog.BREAKDOWN_VALUES)


def test_no_column_name_is_in_two_blocks() -> None:
    """The metrics statement selects its CTEs' columns unqualified (``select *``, one CTE per
    daily view, the customer count and the snapshot): a column name in two of them would
    make one silently win in the result row."""
    names = [
        *(column for block in catalog.DAILY_BLOCKS for column in block.columns),
        "unique_customers",
        *CURRENT_STATE.columns,
    ]
    assert len(names) == len(set(names)), sorted(n for n in set(names) if names.count(n) > 1)


def test_bookkeeping_tables_equal_the_dbt_macros() -> None:
    text = (PROJECT_DIR / "macros" / "bookkeeping.sql").read_text()
    created = re.findall(
        r"create table if not exists \{\{ bookkeeping_relation\('(\w+)'\) \}\}", text
    )
    assert sorted(created) == sorted(catalog.BOOKKEEPING_TABLES)
    granted = re.search(r"dashquery_grant_read_access\(\[([^\]]*)\]\)", text)
    assert granted is not None
    assert sorted(re.findall(r"'(\w+)'", granted.group(1))) == sorted(catalog.BOOKKEEPING_TABLES)
    used = {
        name
        for folder in ("macros", "data-tests")
        for path in (PROJECT_DIR / folder).rglob("*.sql")
        for name in re.findall(r"bookkeeping_relation\('(\w+)'\)", path.read_text())
    }
    assert used <= set(catalog.BOOKKEEPING_TABLES), used - set(catalog.BOOKKEEPING_TABLES)


def test_advisory_lock_key_is_the_same_in_dbt_and_status() -> None:
    steps = (PROJECT_DIR / "macros" / "materializations" / "dashboard_mv_steps.sql").read_text()
    keys = re.findall(
        r"hashtextextended\(\{\{ dashquery_literal\('([^']*)' ~ relation\.schema ~ '([^']*)'"
        r" ~ relation\.identifier\) \}\}, 0\)",
        steps,
    )
    assert keys == [(catalog.LOCK_KEY_PREFIX, ".")], keys
    lock_prefix = sql.Literal(catalog.LOCK_KEY_PREFIX)
    rendered = status._LATEST_RUNS.format(runs=sql.Identifier("runs"), lock_prefix=lock_prefix)
    key = f"'{catalog.LOCK_KEY_PREFIX}' || %(schema)s || '.' || v.view_name"
    assert f"hashtextextended({key}, 0)" in rendered.as_string(None)


def test_no_second_literal_of_a_catalog_name() -> None:
    """Relation and table names, and the lock key, appear in string literals (docstrings
    aside) only in the catalog. The current-state view is also a block and a CTE name, so
    only a literal equal to it counts."""
    names = {*catalog.MATERIALIZED_VIEWS, *catalog.DAILY_VIEWS, *catalog.BOOKKEEPING_TABLES}
    names.discard(CURRENT_STATE.view)
    words = re.compile(
        r"(?<![A-Za-z0-9_])(" + "|".join(map(re.escape, sorted(names))) + r")(?![A-Za-z0-9_])"
    )
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = str(path.relative_to(PACKAGE.parent))
        if path == PACKAGE / "catalog.py" or where in SECOND_LITERALS:
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                continue
            text = node.value
            if id(node) in docstrings:
                continue
            if (
                words.search(text)
                or text == CURRENT_STATE.view
                or f"'{catalog.LOCK_KEY_PREFIX}" in text
            ):
                found.append(f"{where}:{node.lineno}: {text[:60]!r}")
    assert not found, "import these from dashquery.catalog:\n" + "\n".join(found)
