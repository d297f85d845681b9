"""The local stack's Redis server: no persistence, daemonized, its files under ``root``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import redis

from dashquery.dev.stack_state import StackError, tail, wait

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


class RedisServer:
    """Start, stop and signal the server of ``root``; ``url`` says where it answers."""

    def __init__(
        self,
        root: Path,
        *,
        url: Callable[[], str],
        timeout: float,
        progress: Callable[[str], None],
    ) -> None:
        self.root, self._url, self.timeout, self._progress = root, url, timeout, progress
        self._pidfile = root / "redis.pid"

    def start(self, port: int) -> None:
        """Start Redis on ``port`` and wait until it answers PING."""
        conf = self.root / "redis.conf"
        conf.write_text(_REDIS_CONF.format(port=port, root=self.root))
        self._progress(f"starting redis on 127.0.0.1:{port}")
        self._pidfile.unlink(missing_ok=True)
        started = subprocess.run([_redis_server(self._progress), str(conf)], capture_output=True)
        if started.returncode != 0 or not wait(self.pings, self.timeout):
            log = tail(self.root / "redis.log") or started.stderr.decode(errors="replace")
            raise StackError(f"redis did not start on port {port}; log:\n{log}")

    def stop(self) -> None:
        """Stop Redis without saving (SIGTERM = SHUTDOWN, save is off); safe when stopped."""
        pid = self.pid()
        if pid is None:
            return
        self._progress("stopping redis")
        os.kill(pid, signal.SIGCONT)  # a paused server would not act on SIGTERM
        os.kill(pid, signal.SIGTERM)
        if not wait(lambda: self.pid() is None, self.timeout):
            os.kill(pid, signal.SIGKILL)
        self._pidfile.unlink(missing_ok=True)

    def pid(self) -> int | None:
        try:
            pid = int(self._pidfile.read_text())
            os.kill(pid, 0)
            # A recycled pid is not our server.
            return pid if b"redis" in Path(f"/proc/{pid}/cmdline").read_bytes() else None
        except (OSError, ValueError):
            return None

    def signal(self, signum: signal.Signals) -> None:
        if (pid := self.pid()) is None:
            raise StackError(f"redis is not running from {self.root}")
        os.kill(pid, signum)

    def pings(self) -> bool:
        url = self._url()
        try:
            with redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1) as r:
                return bool(r.ping())
        except redis.RedisError:
            return False

    def running(self) -> bool:
        return self.pid() is not None and self.pings()


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
