"""Running the project's dbt commands from Python (tests, bench, demo, queued refreshes).

dbt runs as a subprocess of this interpreter's ``dbt`` executable: its profile reads the
contract's environment variables, so a subprocess with its own environment is the one
clean way to point it at another database or schema, and it keeps dbt's global state out
of the application's process.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from dashquery.config import Settings
from dashquery.errors import DashqueryError

PROJECT_DIR = Path(__file__).resolve().parents[2]  # dashquery/ops/ -> the checkout
# dbt's partial-parse files and a profiles dir, shared by all runs: parsing the project from
# scratch costs ~4 s of every `dbt run` here. dbt re-parses everything when the profile's
# values or the vars change ("Unable to do partial parsing because profile has changed"), so
# one shared file made runs alternating between two schemas or zones (the tests, the bench)
# parse from scratch every time: there is one file per project folder, profile and vars.
_CACHE_DIR = PROJECT_DIR / "target" / "dashquery-cache"
_PARSE_FILE = "partial_parse.msgpack"
_PARSE_FILES_KEPT = 32  # the most recently used; a test's edited project copy is used once
_PROFILE_ENV = ("PG", "DASHQUERY_", "DBT_")
_PROFILE_ARGS = ("--vars", "--target", "--profile")
_LIBPQ_ENV = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
}


class DbtError(DashqueryError, RuntimeError):
    """A dbt command failed; the message carries the end of its output."""


@dataclass(frozen=True)
class DbtResult:
    args: tuple[str, ...]
    returncode: int
    output: str
    seconds: float


def dbt_executable() -> str:
    beside = Path(sys.executable).with_name("dbt")
    found = str(beside) if beside.exists() else shutil.which("dbt")
    if not found:
        raise DbtError("the dbt executable was not found: pip install -e . installs it")
    return found


def dbt_environment(settings: Settings) -> dict[str, str]:
    """The environment a dbt subprocess needs for these settings."""
    env = dict(os.environ)
    for key, value in conninfo_to_dict(settings.conninfo).items():
        if key in _LIBPQ_ENV and value is not None:
            env[_LIBPQ_ENV[key]] = str(value)
    env.update(settings.dbt_env())
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return env


def ensure_profiles_dir(folder: Path) -> Path:
    """A profiles dir holding profiles.yml.example as profiles.yml (it only reads env vars)."""
    folder.mkdir(parents=True, exist_ok=True)
    example = (PROJECT_DIR / "profiles.yml.example").read_bytes()
    profile = folder / "profiles.yml"
    if not profile.exists() or profile.read_bytes() != example:
        # Written whole then renamed: a concurrent dbt never reads half a file.
        partial = folder / f".profiles.{uuid.uuid4().hex}.tmp"
        partial.write_bytes(example)
        os.replace(partial, profile)
    return folder


def _parse_cache(project_dir: Path, args: Sequence[str], env: Mapping[str, str]) -> Path:
    """The cached partial-parse file of this project folder, profile values and vars."""
    profile = sorted((k, v) for k, v in env.items() if k.startswith(_PROFILE_ENV))
    # "--vars X" and "--vars=X" alike: the flag's own word and the word after it
    chosen = [pair for pair in itertools.pairwise([*args, ""]) if pair[0].startswith(_PROFILE_ARGS)]
    key = json.dumps([str(project_dir.resolve()), profile, chosen])
    return _CACHE_DIR / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.{_PARSE_FILE}"


def _restore_parse(cached: Path, target: Path) -> None:
    if cached.exists():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, target / _PARSE_FILE)
        os.utime(cached)  # recently used: kept by _save_parse's pruning


def _save_parse(cached: Path, target: Path) -> None:
    produced = target / _PARSE_FILE
    if not produced.exists():
        return
    _CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = _CACHE_DIR / f".{cached.name}.{uuid.uuid4().hex}.tmp"
    shutil.copyfile(produced, partial)
    os.replace(partial, cached)
    files = sorted(_CACHE_DIR.glob(f"*.{_PARSE_FILE}"), key=_mtime, reverse=True)
    for stale in files[_PARSE_FILES_KEPT:]:
        stale.unlink(missing_ok=True)  # a concurrent run may have pruned it first


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # pruned by a concurrent run meanwhile
        return 0.0


def run_dbt(
    args: Sequence[str],
    settings: Settings,
    *,
    check: bool = True,
    project_dir: Path = PROJECT_DIR,
    stream: bool = False,
) -> DbtResult:
    """Run ``dbt <args>`` against the settings' database and schemas.

    Each call gets its own target and log folders, so concurrent runs (two crons, a test
    refreshing under load) never overwrite each other's artifacts; only the partial-parse
    file is carried from one run to the next.
    """
    if not (project_dir / "dbt_project.yml").exists():
        raise DbtError(f"no dbt project at {project_dir}")
    env = dbt_environment(settings)
    if "DBT_PROFILES_DIR" not in env:
        env["DBT_PROFILES_DIR"] = str(ensure_profiles_dir(_CACHE_DIR / "profiles"))
    with tempfile.TemporaryDirectory(prefix="dashquery-dbt-") as scratch:
        target = Path(scratch) / "target"
        cached = _parse_cache(project_dir, args, env)
        _restore_parse(cached, target)
        command = [
            dbt_executable(),
            *args,
            "--project-dir",
            str(project_dir),
            "--target-path",
            str(target),
            "--log-path",
            str(Path(scratch) / "logs"),
        ]
        started = time.perf_counter()
        completed = subprocess.run(
            command,
            env=env,
            cwd=project_dir,
            stdout=None if stream else subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
        _save_parse(cached, target)
    result = DbtResult(
        tuple(args), completed.returncode, completed.stdout or "", time.perf_counter() - started
    )
    if check and result.returncode != 0:
        tail = "\n".join(result.output.splitlines()[-40:])
        raise DbtError(f"dbt {' '.join(args)} failed with exit {result.returncode}:\n{tail}")
    return result
