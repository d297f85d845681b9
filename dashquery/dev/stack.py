"""A throwaway PostgreSQL 15 + Redis on 127.0.0.1, for development, tests and the demo.

Everything lives in one folder (default ``.stack``, git-ignored): the cluster in ``pg/``, the
socket directory, the logs, ``state.json`` (the chosen ports) and ``env.sh``. Durability is
switched off on purpose (``fsync``, ``synchronous_commit``, ``full_page_writes``): the data is
disposable and the test suite is faster for it. The servers themselves are in
``stack_postgres`` and ``stack_redis``; this module owns the ports, the state and the env.
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

from psycopg.conninfo import make_conninfo

from dashquery.dev.stack_postgres import DATABASE, PostgresServer
from dashquery.dev.stack_redis import RedisServer
from dashquery.dev.stack_state import StackError, free_ports, port_free


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
        self._postgres = PostgresServer(self.root, timeout=timeout, progress=self._progress)
        self._redis = RedisServer(
            self.root,
            url=lambda: self.env()["DASHQUERY_REDIS_URL"],
            timeout=timeout,
            progress=self._progress,
        )
        self.pgdata = self._postgres.pgdata
        self._state_file = self.root / "state.json"

    def start(self) -> dict[str, str]:
        """Start both servers (reusing whatever already runs from ``root``); return env()."""
        self.root.mkdir(parents=True, exist_ok=True)
        state = self._state()
        pg_up, redis_up = self._postgres.running(), self._redis.running()
        # Keep the recorded ports while they are ours or free; otherwise take new free ones.
        spare = iter(free_ports(2))
        for key, up in (("pg_port", pg_up), ("redis_port", redis_up)):
            if not up and not port_free(state.get(key, 0)):
                state[key] = next(spare)
        self._state_file.write_text(json.dumps(state) + "\n")
        if not pg_up:
            self._start_postgres()
        self._postgres.ensure_database(self.conninfo("postgres"))
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
        if self._postgres.running():
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

    def start_redis(self) -> None:
        """Start Redis on the port recorded in ``state.json`` (no persistence, daemonized)."""
        self._redis.start(self._state()["redis_port"])

    def stop_redis(self) -> None:
        """Stop Redis without saving (SIGTERM = SHUTDOWN, save is off); safe when stopped."""
        self._redis.stop()

    # ---- for subclasses that inject faults (tests/python/fault_stack.py) --------------------

    def _start_postgres(self) -> None:
        self._postgres.start(self._state()["pg_port"])

    def _pg_ctl(self, *args: str) -> None:
        self._postgres.ctl(*args)

    def _signal_redis(self, signum: signal.Signals) -> None:
        self._redis.signal(signum)

    def _state(self) -> dict[str, int]:
        try:
            return dict(json.loads(self._state_file.read_text()))
        except (OSError, ValueError):
            return {}
