"""A throwaway PostgreSQL 15 + Redis on 127.0.0.1, for development, tests and the demo.

Everything lives in one folder (default ``.stack``, git-ignored): the cluster in ``pg/``, the
socket directory, the logs, ``state.json`` (the chosen ports) and ``env.sh``. Durability is
switched off on purpose (``fsync``, ``synchronous_commit``, ``full_page_writes``): the data is
disposable and the test suite is faster for it. PostgreSQL refuses to run as root, so as root
the server binaries run as the system user ``dashquery`` (created when missing).
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import redis
from psycopg import sql
from psycopg.conninfo import make_conninfo

from dashquery.errors import DashqueryError

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
_REDIS_CONF = """\
bind 127.0.0.1
port {port}
save ""
appendonly no
daemonize yes
dir "{root}"
pidfile "{root}/redis.pid"
logfile "{root}/redis.log"
"""


class StackError(DashqueryError, RuntimeError):
    """The local development stack could not be started, reached or stopped."""


class LocalStack:
    """One PostgreSQL cluster and one Redis server whose files all live under ``root``.

    ``progress`` receives short human-readable messages (the CLI prints them on stderr);
    ``timeout`` bounds every wait for a server, in seconds.
    """

    def __init__(
        self,
        *,
        root: Path = Path(".stack"),
        progress: Callable[[str], None] | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.root = Path(root).absolute()
        self.timeout = timeout
        self._progress = progress or (lambda _msg: None)
        self._as_root = os.geteuid() == 0
        self.pgdata = self.root / "pg"
        self._pidfile = self.root / "redis.pid"
        self._state_file = self.root / "state.json"

    def start(self) -> dict[str, str]:
        """Start both servers (reusing whatever already runs from ``root``); return env()."""
        self.root.mkdir(parents=True, exist_ok=True)
        state = self._state()
        pg_up, redis_up = self._pg_running(), self._redis_running()
        # Keep the recorded ports while they are ours or free; otherwise take new free ones.
        spare = iter(_free_ports(2))
        for key, up in (("pg_port", pg_up), ("redis_port", redis_up)):
            if not up and not _port_free(state.get(key, 0)):
                state[key] = next(spare)
        self._state_file.write_text(json.dumps(state) + "\n")
        if not pg_up:
            self._start_postgres()
        self._ensure_database()
        if not redis_up:
            self.start_redis()
        env = self.env()
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
        (self.root / "env.sh").write_text(exports)
        self._progress(f"stack ready in {self.root}")
        return env

    def stop(self) -> None:
        """Stop both servers; does nothing for a server that is not running."""
        self.stop_redis()
        if self._pg_running():
            self._progress("stopping postgres")
            self._pg_ctl("-m", "fast", "stop")

    def destroy(self) -> None:
        """Stop both servers and remove ``root`` with all its data."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def env(self) -> dict[str, str]:
        """The PG* and DASHQUERY_REDIS_URL variables that point at this stack."""
        state = self._state()
        if not state:
            raise StackError(f"no stack in {self.root}: run `dashquery stack up` first")
        return {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(state["pg_port"]),
            "PGUSER": "postgres",
            "PGDATABASE": DATABASE,
            "DASHQUERY_REDIS_URL": f"redis://127.0.0.1:{state['redis_port']}/0",
        }

    def conninfo(self, dbname: str = DATABASE) -> str:
        """libpq conninfo of the ``postgres`` superuser on ``dbname``."""
        port = self.env()["PGPORT"]
        return make_conninfo(host="127.0.0.1", port=port, user="postgres", dbname=dbname)

    # ---- fault injection (also used by start/stop) ------------------------------------------

    def start_redis(self) -> None:
        """Start Redis on the port recorded in ``state.json`` (no persistence, daemonized)."""
        port = self._state()["redis_port"]
        conf = self.root / "redis.conf"
        conf.write_text(_REDIS_CONF.format(port=port, root=self.root))
        self._progress(f"starting redis on 127.0.0.1:{port}")
        self._pidfile.unlink(missing_ok=True)
        started = subprocess.run([_redis_server(self._progress), str(conf)], capture_output=True)
        if started.returncode != 0 or not self._wait(self._redis_pings):
            log = _tail(self.root / "redis.log") or started.stderr.decode(errors="replace")
            raise StackError(f"redis did not start on port {port}; log:\n{log}")

    def stop_redis(self) -> None:
        """Stop Redis without saving (SIGTERM = SHUTDOWN, save is off); safe when stopped."""
        pid = self._redis_pid()
        if pid is None:
            return
        self._progress("stopping redis")
        os.kill(pid, signal.SIGCONT)  # a paused server would not act on SIGTERM
        os.kill(pid, signal.SIGTERM)
        if not self._wait(lambda: self._redis_pid() is None):
            os.kill(pid, signal.SIGKILL)
        self._pidfile.unlink(missing_ok=True)

    # ---- postgres ---------------------------------------------------------------------------

    def _start_postgres(self) -> None:
        port = self._state()["pg_port"]
        log = self.root / "postgres.log"
        if not (self.pgdata / "PG_VERSION").exists():
            self._progress(f"initdb into {self.pgdata}")
            self.pgdata.mkdir(mode=0o700, exist_ok=True)
            self._chown(self.pgdata)
            self._pg("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust")
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
            self._pg_ctl("-l", str(log), "start")
        except StackError as exc:
            raise StackError(f"{exc}\npostgres log:\n{_tail(log)}") from None
        isready = ("pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port))
        if not self._wait(lambda: self._pg(*isready, check=False).returncode == 0):
            raise StackError(f"postgres does not answer on {port}; log:\n{_tail(log)}")

    def _ensure_database(self) -> None:
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            query = "select 1 from pg_database where datname = %s"
            if not conn.execute(query, (DATABASE,)).fetchone():
                self._progress(f"creating database {DATABASE}")
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(DATABASE)))

    def _pg_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        return self._pg("pg_ctl", "-D", str(self.pgdata), "status", check=False).returncode == 0

    def _pg_ctl(self, *args: str) -> None:
        self._pg("pg_ctl", "-D", str(self.pgdata), "-w", "-t", str(int(self.timeout)), *args)

    def _pg(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
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

    # ---- redis and helpers ------------------------------------------------------------------

    def _redis_pid(self) -> int | None:
        try:
            pid = int(self._pidfile.read_text())
            os.kill(pid, 0)
            # A recycled pid is not our server.
            return pid if b"redis" in Path(f"/proc/{pid}/cmdline").read_bytes() else None
        except (OSError, ValueError):
            return None

    def _signal_redis(self, signum: signal.Signals) -> None:
        if (pid := self._redis_pid()) is None:
            raise StackError(f"redis is not running from {self.root}")
        os.kill(pid, signum)

    def _redis_pings(self) -> bool:
        url = self.env()["DASHQUERY_REDIS_URL"]
        try:
            with redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1) as r:
                return bool(r.ping())
        except redis.RedisError:
            return False

    def _redis_running(self) -> bool:
        return self._redis_pid() is not None and self._redis_pings()

    def _wait(self, ready: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if ready():
                return True
            time.sleep(0.05)
        return False

    def _state(self) -> dict[str, int]:
        try:
            return dict(json.loads(self._state_file.read_text()))
        except (OSError, ValueError):
            return {}


def _free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (held together so that they differ)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # Servers bind with SO_REUSEADDR, so connections still in TIME_WAIT after a stop do not
        # keep them from their port; probe the same way or a restart would move the port.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return port != 0


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


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


def _redis_server(progress: Callable[[str], None]) -> str:
    """The redis-server binary, installing Debian's package first when it is missing."""
    if found := shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin"):
        return found
    progress("redis-server is missing: installing Debian's redis-server package")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "redis-server"]):
        if subprocess.run([*sudo, *cmd], env=env, stdin=subprocess.DEVNULL).returncode:
            raise StackError(f"could not install redis-server: {' '.join(cmd)} failed")
    return shutil.which("redis-server", path="/usr/bin:/usr/local/bin") or "redis-server"
