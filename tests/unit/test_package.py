"""The package's shape: what an application imports stays light, and there are no cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import dashquery

PACKAGE = Path(dashquery.__file__).parent
HEAVY = ("dbt", "click", "rich", "matplotlib")
# Modules allowed over ~300 lines, each with the reason (the brief: none without one).
LONG_MODULES: dict[str, str] = {
    # every name dbt and Python share, defined once: split, it would be two places to look
    "dashquery.catalog": "the one catalog of shared names",
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _runtime_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """dashquery modules imported when ``path`` is imported (not under TYPE_CHECKING,
    not inside functions: those run later and cannot form an import-time cycle)."""
    tree = ast.parse(path.read_text())
    targets: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in [node] if not isinstance(node, ast.If) else ast.walk(node):
            if isinstance(child, ast.ImportFrom) and child.module:
                base = child.module
                for alias in child.names:
                    candidate = f"{base}.{alias.name}"
                    targets.add(candidate if candidate in modules else base)
            elif isinstance(child, ast.Import):
                targets.update(alias.name for alias in child.names)
    return {t for t in targets if t in modules}


def test_import_dashquery_loads_none_of_dbt_click_rich_matplotlib() -> None:
    code = (
        "import sys, dashquery; dashquery.Client; dashquery.get_metrics;"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_cron_refresh_does_not_import_the_benchmark_or_the_generator() -> None:
    code = (
        "import sys; from dashquery.cli import cli;"
        "cli(['refresh', '--help'], standalone_mode=False);"
        "print(sorted(m for m in sys.modules"
        " if m.startswith(('dashquery.dev', 'matplotlib'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {name: _runtime_imports(path, modules) - {name} for name, path in modules.items()}
    # A package's __init__ importing its own submodules is not a cycle with them.
    for name, deps in graph.items():
        graph[name] = {d for d in deps if not name.startswith(d + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep) :], dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)


def test_modules_stay_small_or_say_why() -> None:
    long = {
        name: lines
        for name, path in _modules().items()
        if (lines := len(path.read_text().splitlines())) > 300 and name not in LONG_MODULES
    }
    assert not long, f"modules over 300 lines without a stated reason: {long}"


def test_public_api() -> None:
    assert sorted(dashquery.__all__) == dashquery.__all__
    for name in (
        "Client",
        "get_metrics",
        "get_series",
        "invalidate_org",
        "invalidate_all",
        "notify",
        "Settings",
        "DashboardMetrics",
        "DashqueryError",
        "InvalidQuery",
        "Misconfigured",
        "Unavailable",
    ):
        assert name in dashquery.__all__ and hasattr(dashquery, name)
    for error in (dashquery.InvalidQuery, dashquery.Misconfigured, dashquery.Unavailable):
        assert issubclass(error, dashquery.DashqueryError)


def test_an_application_install_brings_no_dbt_cli_or_chart_libraries() -> None:
    """`pip install dashquery` (no extras) installs only what get_metrics needs."""
    import tomllib

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    names = {
        dep.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower()
        for dep in project["dependencies"]
    }
    assert names == {"psycopg", "psycopg-pool", "redis", "prometheus-client"}, names
    extras = project["optional-dependencies"]
    assert {"dbt-core", "dbt-postgres", "click", "rich"} <= {
        dep.split(">")[0].split("<")[0].strip() for dep in extras["ops"]
    }
