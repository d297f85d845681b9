"""A LocalStack with the fault hooks only tests use (freeze Redis, restart PostgreSQL).

They live here, not in ``dashquery.dev.stack``, because nothing but the test suite may
freeze or restart a server: the library ships only what starts and stops the stack.
"""

from __future__ import annotations

import signal

from dashquery.dev.stack import LocalStack


class FaultStack(LocalStack):
    """``LocalStack`` plus SIGSTOP/SIGCONT of Redis and a PostgreSQL restart."""

    def pause_redis(self) -> None:
        """Freeze Redis (SIGSTOP): connections stay open but every command times out."""
        self._signal_redis(signal.SIGSTOP)

    def resume_redis(self) -> None:
        """Undo pause_redis() (SIGCONT)."""
        self._signal_redis(signal.SIGCONT)

    def restart_postgres(self) -> None:
        """Fast shutdown, then start again on the same port: open connections are dropped."""
        self._pg_ctl("-m", "fast", "stop")
        self._start_postgres()
