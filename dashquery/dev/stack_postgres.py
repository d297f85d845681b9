"""The local stack's PostgreSQL 15 cluster in ``<root>/pg``, with durability switched off.

PostgreSQL refuses to run as root, so as root the server binaries run as the system user
``dashquery`` (created when missing).
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg import sql

from dashquery.dev.stack_state import StackError, tail, wait

SERVICE_USER = "dashquery"
DATABASE = "dashquery"
_PG15_BINDIR = Path("/usr/lib/postgresql/15/bin")

# Included from postgresql.conf, rewritten at each start (the port may change).
_PG_CONF = """\
port = {port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '{sockets}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
shared_buffers = 256MB
"""


class PostgresServer:
    """initdb, start, stop and status of the cluster under ``root``; ``progress`` as LocalStack."""

    def __init__(self, root: Path, *, timeout: float, progress: Callable[[str], None]) -> None:
        self.root, self.timeout, self._progress = root, timeout, progress
        self.pgdata = root / "pg"
        self._as_root = os.geteuid() == 0

    def start(self, port: int) -> None:
        log = self.root / "postgres.log"
        if not (self.pgdata / "PG_VERSION").exists():
            self._progress(f"initdb into {self.pgdata}")
            self.pgdata.mkdir(mode=0o700, exist_ok=True)
            self._chown(self.pgdata)
            self.run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust")
            with (self.pgdata / "postgresql.conf").open("a") as conf:
                conf.write("\ninclude_if_exists = 'dashquery.conf'\n")
        # A Unix socket path has at most 107 bytes; past that, TCP alone is enough.
        sockets = str(self.root / "run") if len(str(self.root)) < 80 else ""
        (self.pgdata / "dashquery.conf").write_text(_PG_CONF.format(port=port, sockets=sockets))
        (self.root / "run").mkdir(exist_ok=True)
        log.touch()
        for path in (self.root / "run", log, self.pgdata / "dashquery.conf"):
            self._chown(path)
        self._progress(f"starting postgres on 127.0.0.1:{port}")
        try:
            self.ctl("-l", str(log), "start")
        except StackError as exc:
            raise StackError(f"{exc}\npostgres log:\n{tail(log)}") from None
        isready = ("pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port))
        if not wait(lambda: self.run(*isready, check=False).returncode == 0, self.timeout):
            raise StackError(f"postgres does not answer on {port}; log:\n{tail(log)}")

    def ensure_database(self, conninfo: str) -> None:
        """Create ``DATABASE`` when missing, connecting with ``conninfo``."""
        with psycopg.connect(conninfo, autocommit=True) as conn:
            query = "select 1 from pg_database where datname = %s"
            if not conn.execute(query, (DATABASE,)).fetchone():
                self._progress(f"creating database {DATABASE}")
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(DATABASE)))

    def running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        return self.run("pg_ctl", "-D", str(self.pgdata), "status", check=False).returncode == 0

    def ctl(self, *args: str) -> None:
        self.run("pg_ctl", "-D", str(self.pgdata), "-w", "-t", str(int(self.timeout)), *args)

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL binary, as the service user when we are root."""
        cmd = [str(_pg_bindir() / argv[0]), *argv[1:]]
        if argv[0] == "initdb":
            cmd += ["--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"]
        if self._as_root:
            self._ensure_service_user()
            cmd = ["runuser", "-u", SERVICE_USER, "--", *cmd]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, cwd=self.root, stdin=subprocess.DEVNULL
        )
        if check and proc.returncode != 0:
            output = (proc.stderr or proc.stdout).strip()
            raise StackError(f"{' '.join(argv)} failed ({proc.returncode}): {output}")
        return proc

    def _ensure_service_user(self) -> None:
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            self._progress(f"creating system user {SERVICE_USER}")
            useradd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
            subprocess.run([*useradd, SERVICE_USER], check=True, capture_output=True)
        # The service user must reach root: grant search (o+x, never read) on each folder on
        # the way that denies it, e.g. pytest's 0700 /tmp/pytest-of-root.
        for folder in [self.root, *self.root.parents]:
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH:
                folder.chmod(mode | stat.S_IXOTH)

    def _chown(self, path: Path) -> None:
        if self._as_root:
            self._ensure_service_user()
            shutil.chown(path, SERVICE_USER, SERVICE_USER)


def _pg_bindir() -> Path:
    """PostgreSQL 15's binaries: Debian's fixed path first, then ``pg_config --bindir``."""
    if (_PG15_BINDIR / "initdb").exists():
        return _PG15_BINDIR
    found = shutil.which("pg_config")
    bindir = (
        Path(subprocess.check_output([found, "--bindir"], text=True).strip()) if found else Path()
    )
    if not (bindir / "initdb").exists():
        raise StackError("PostgreSQL 15 server binaries not found: run scripts/bootstrap")
    return bindir
