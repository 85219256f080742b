"""Typed keys for what the aiohttp application owns (``app[CONFIG]``, ``app[LEDGER]``, ``app[RUNTIME]``, ...) and for
what a request carries (``request[REQUEST_ID]``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from hermes_proxy.config import Config
from hermes_proxy.metrics import Metrics

if TYPE_CHECKING:
    from hermes_proxy.alerts import BudgetAlerts
    from hermes_proxy.cache.store import CacheStore
    from hermes_proxy.ledger.base import Ledger
    from hermes_proxy.ledger.outbox import Outbox
    from hermes_proxy.pipeline import Gateway
    from hermes_proxy.ratelimit import RateLimiter


@dataclass(slots=True)
class Runtime:
    """What a config reload (SIGHUP) swaps as a whole: the config and the gateway built from it.

    Running requests keep the gateway they started with; new requests see the new one.
    """

    config: Config
    gateway: Gateway | None = None
    reloads: int = 0
    tasks: set[Any] = field(default_factory=set)


#: the config the server started with (server and ledger sections need a restart to change)
CONFIG: web.AppKey[Config] = web.AppKey("config", Config)
RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", Runtime)
LEDGER: web.AppKey[Ledger] = web.AppKey("ledger", object)  # type: ignore[arg-type]
#: where settles the ledger could not write wait for it (None for a memory ledger)
OUTBOX: web.AppKey[Outbox | None] = web.AppKey("outbox", object)  # type: ignore[arg-type]
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
#: budget alerts: the outbox the request path inserts into, and the sender's wake-up
ALERTS: web.AppKey[BudgetAlerts | None] = web.AppKey("alerts", object)  # type: ignore[arg-type]
#: the response cache's store (the ledger's database, or Redis with [cache] url)
CACHE_STORE: web.AppKey[CacheStore | None] = web.AppKey("cache_store", object)  # type: ignore[arg-type]
RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter", object)  # type: ignore[arg-type]
#: the proxy's id of one request (the client's ``x-request-id`` when well-formed), set first by the errors middleware
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)


def current_config(app: web.Application) -> Config:
    return app[RUNTIME].config


def current_gateway(app: web.Application) -> Gateway:
    gateway = app[RUNTIME].gateway
    assert gateway is not None, "the gateway is built at startup"
    return gateway
