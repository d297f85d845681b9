"""``dashquery listen``: the long-running cache invalidator of change capture
(``dashquery.ops.listen``; docs/OPERATIONS.md "The listener", docs/dashquery-listen.service)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click

from dashquery.client import Client
from dashquery.config import Settings
from dashquery.ops.listen import POLL_SECONDS, Listener


@click.command()
@click.option(
    "--poll-seconds",
    type=click.FloatRange(min=0.1),
    default=POLL_SECONDS,
    show_default=True,
    help="How often the change table is read (the fallback when notifications are lost).",
)
def listen(poll_seconds: float) -> None:
    """Drop cached results within about a second of a committed change (runs until stopped).

    LISTENs on the change-capture channel and bumps the cache generation of every
    organization notified; at every (re)connect it invalidates the whole cache, because
    notifications sent while it was away are lost; it also reads the change table every
    --poll-seconds, so a lost notification costs at most that. Reconnects with backoff when
    PostgreSQL goes away; stops cleanly on SIGTERM or SIGINT. Logs one line per
    (re)connect, none per notification. Exit status: 0 after a signal, 1 on bad settings.
    """
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    settings = Settings.from_env()
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).warning("%s: stopping", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    with Client(settings=settings, pool_size=1) as client:
        Listener(client, stop=stop, poll_seconds=poll_seconds).run()
