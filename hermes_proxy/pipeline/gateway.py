"""The facade the HTTP routes and the terminal chat use: what a team may see, and ``chat()`` to start a call."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from typing import Any

from hermes_proxy.alerts.events import BudgetAlerts
from hermes_proxy.cache.store import CacheStore
from hermes_proxy.config import Config, ModelConfig
from hermes_proxy.ledger.base import Ledger
from hermes_proxy.ledger.outbox import Outbox
from hermes_proxy.metrics import Metrics
from hermes_proxy.pipeline.call import ChatCall
from hermes_proxy.pipeline.types import CallTracker, Principal, Services
from hermes_proxy.pricing import Prices
from hermes_proxy.ratelimit import RateLimiter
from hermes_proxy.tokens import TokenCounter
from hermes_proxy.upstreams.base import Upstream
from policies.types import TeamPolicy


class Gateway:
    def __init__(
        self,
        config: Config,
        *,
        upstreams: Mapping[str, Upstream],
        ledger: Ledger,
        counter: TokenCounter,
        prices: Prices,
        rate_limiter: RateLimiter | None = None,
        metrics: Metrics | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
        outbox: Outbox | None = None,
        alerts: BudgetAlerts | None = None,
        cache: CacheStore | None = None,
    ) -> None:
        self._services = Services(config=config, upstreams=upstreams, ledger=ledger, counter=counter, prices=prices,
                                  rate_limiter=rate_limiter, metrics=metrics, sleep=sleep, tracker=CallTracker(),
                                  outbox=outbox, alerts=alerts, cache=cache)

    @property
    def config(self) -> Config:
        return self._services.config

    @property
    def upstreams(self) -> Mapping[str, Upstream]:
        return self._services.upstreams

    @property
    def prices(self) -> Prices:
        return self._services.prices

    def models_for(self, team: TeamPolicy) -> list[ModelConfig]:
        return [m for m in self.config.models if team.models is None or m.alias in team.models]

    def is_simulated(self, model: ModelConfig) -> bool:
        return all(getattr(self.upstreams.get(r.upstream), "simulated", False) for r in model.routes)

    @property
    def cache(self) -> CacheStore | None:
        return self._services.cache

    def chat(self, body: Any, principal: Principal, *, reasoning_header: str | None = None,
             request_id: str | None = None, client_request_id: str | None = None,
             cache_header: str | None = None) -> ChatCall:
        """A new call. Its ledger id is the proxy's own (``request_id``, one the proxy generated, or a new one): a
        client's ``x-request-id`` is only a correlation id for logs (a client that reuses one must not share a bill).
        """
        return ChatCall(self._services, body, principal, reasoning_header,
                        request_id or f"req_{os.urandom(12).hex()}", client_request_id=client_request_id,
                        cache_header=cache_header)

    async def settled(self) -> None:
        """Until every call that has started is finished and recorded in the ledger."""
        await self.wait_idle()
        await self._services.tracker.drain()

    async def wait_idle(self) -> None:
        """Until no call is running on this gateway (a retired gateway after a config reload)."""
        await self._services.tracker.wait_idle()

    async def aclose(self) -> None:
        """Wait for the settles still running, then close the upstream clients."""
        await self._services.tracker.drain()
        for upstream in self.upstreams.values():
            await upstream.aclose()
