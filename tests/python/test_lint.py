"""SQL lint in the suite: sqlfluff's dbt templater compiles the project, which needs a live
database, so it runs here against the suite's own PostgreSQL rather than in scripts/test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dashquery.config import Settings
from dashquery.dev.stack import LocalStack
from dashquery.ops.dbt_runner import PROJECT_DIR, dbt_environment, ensure_profiles_dir


def test_sqlfluff_lint_passes(stack: LocalStack, tmp_path: Path) -> None:
    env = dbt_environment(Settings(conninfo=stack.conninfo()))
    env["DBT_PROFILES_DIR"] = str(ensure_profiles_dir(tmp_path / "profiles"))
    sqlfluff = Path(sys.executable).with_name("sqlfluff")
    completed = subprocess.run(
        [str(sqlfluff), "lint", "models", "macros", "data-tests", "--disable-progress-bar"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    assert "All Finished" in completed.stdout + completed.stderr
