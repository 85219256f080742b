"""Finding out a route's real price before many requests are spent at the configured one.

A route whose upstream reports its own cost (OpenRouter's ``usage.cost``) can turn out dearer than its configured
price, and the reservation learns that only when a request reports it. Until a route's price is known in the ledger
(learned, or confirmed as configured), one request at a time on this process goes to it; the others wait for its
answer, then reserve at the price it revealed. So only a request that reveals a higher price can pass its reservation,
by its own difference (one per replica at most), instead of a whole first wave of concurrent requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from hermes_proxy.ledger.base import Ledger

log = logging.getLogger("hermes_proxy.gateway")

#: how long a request waits for another to find out a route's price before it goes ahead anyway (logged)
PROBE_WAIT_S = 120.0
#: how often the ledger is asked again for prices other replicas found out
REFRESH_S = 1.0
#: after a probe that could not find the price out (an error, no cost reported: BYOK without the provider's charge),
#: requests go ahead unprobed for this long instead of queueing one by one behind probe after probe
UNPRICED_PAUSE_S = 600.0


class PriceProbes:
    def __init__(self, *, wait_s: float = PROBE_WAIT_S) -> None:
        self._known: set[str] = set()
        self._probing: dict[str, asyncio.Event] = {}
        self._refreshed = 0.0
        self._wait_s = wait_s
        self._failures: dict[str, int] = {}
        self._paused_until: dict[str, float] = {}

    def is_known(self, key: str) -> bool:
        """The price is known, or finding it out is paused after probes that could not."""
        return key in self._known or self._paused_until.get(key, 0.0) > time.monotonic()

    async def enter(self, key: str, ledger: Ledger) -> bool:
        """Wait until ``key``'s price is known, or this request may find it out: True when it is the probe (it
        must call :meth:`done`)."""
        deadline = time.monotonic() + self._wait_s
        while not self.is_known(key):
            await self._refresh(ledger)
            if key in self._known:
                break
            probing = self._probing.get(key)
            if probing is None:
                self._probing[key] = asyncio.Event()
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("price of %s still unknown after %.0f s; going ahead at the configured price", key,
                            self._wait_s)
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(probing.wait(), left)
        return False

    def done(self, key: str, *, known: bool) -> None:
        """The probe of ``key`` ended: its price is known (it reported a cost and the ledger has it), or not (an
        error, no cost reported): then the next waiting request finds out."""
        if known:
            self._known.add(key)
            self._failures.pop(key, None)
        else:
            self._failures[key] = failures = self._failures.get(key, 0) + 1
            if failures >= 3:  # the upstream does not tell this route's price: stop queueing behind probes
                log.warning("price of %s could not be found out in %d tries; not probing it for %.0f s", key,
                            failures, UNPRICED_PAUSE_S)
                self._paused_until[key] = time.monotonic() + UNPRICED_PAUSE_S
                self._failures.pop(key)
        event = self._probing.pop(key, None)
        if event is not None:
            event.set()

    async def _refresh(self, ledger: Ledger) -> None:
        now = time.monotonic()
        if now - self._refreshed < REFRESH_S:
            return
        self._refreshed = now
        try:
            self._known.update(await ledger.price_factors())
        except Exception as exc:  # the ledger's own errors surface at the reservation right after
            log.warning("could not read learned prices: %s", exc)
