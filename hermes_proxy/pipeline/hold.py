"""Keeping a running request's hold: every few seconds the hold is extended and the usage so far is written on it.

A stream that outlives ``ledger.reservation_ttl_s`` keeps its reservation, and a process killed mid-stream leaves a
hold that carries what was delivered: when it expires, the ledger bills it as an estimated request instead of
dropping it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hermes_proxy.ledger.base import Hold, Ledger, Progress

log = logging.getLogger("hermes_proxy.gateway")

#: the longest interval between checkpoints (shorter when the reservation TTL is short)
CHECKPOINT_S = 5.0


def checkpoint_interval(reservation_ttl_s: float) -> float:
    return min(CHECKPOINT_S, reservation_ttl_s / 3)


class HoldKeeper:
    """Checkpoints on a timer, not in a task of its own: most requests finish long before the first checkpoint is
    due, and a timer handle costs a fraction of a task (a task per request was ~5% of the proxy's CPU)."""

    def __init__(self, ledger: Ledger, hold: Hold, progress: Callable[[], Progress], interval_s: float) -> None:
        self.hold = hold
        self._ledger = ledger
        self._progress = progress
        self._interval_s = interval_s
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self._interval_s, self._due)

    def _due(self) -> None:
        self._timer = None
        if not self._stopped:
            self._task = asyncio.ensure_future(self._checkpoint())

    async def _checkpoint(self) -> None:
        try:
            self.hold = await self._ledger.checkpoint(self.hold, self._progress())
        except Exception as exc:  # the next checkpoint tries again; the settle does not depend on it
            log.warning("hold %s: checkpoint failed (%s)", self.hold.id, exc)
        self._task = None
        if not self._stopped:
            self.start()

    def stop(self) -> None:
        """Stop checkpointing (before the settle). A checkpoint still landing after the settle changes nothing: the
        ledger ignores checkpoints of a hold that is gone."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
            self._task = None
