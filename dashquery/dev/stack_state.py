"""What the local stack's servers share: the error, free ports, waiting and log tails."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

from dashquery.errors import DashqueryError


class StackError(DashqueryError, RuntimeError):
    """The local development stack could not be started, reached or stopped."""


def wait(ready: Callable[[], bool], timeout: float) -> bool:
    """Poll ``ready`` every 50 ms until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return True
        time.sleep(0.05)
    return False


def free_ports(count: int) -> list[int]:
    """Distinct free TCP ports on 127.0.0.1 (held together so that they differ)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_free(port: int) -> bool:
    with socket.socket() as s:
        # Servers bind with SO_REUSEADDR, so connections still in TIME_WAIT after a stop do not
        # keep them from their port; probe the same way or a restart would move the port.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return port != 0


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
