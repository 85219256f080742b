"""``create_app(config)``: the aiohttp application, its owned resources as cleanup contexts, and its routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from hermes_proxy.admin import add_admin_routes
from hermes_proxy.alerts import AlertSender, BudgetAlerts, open_alert_store
from hermes_proxy.appkeys import (
    ALERTS,
    CACHE_STORE,
    CONFIG,
    LEDGER,
    METRICS,
    OUTBOX,
    RATE_LIMITER,
    REQUEST_ID,
    RUNTIME,
    Runtime,
)
from hermes_proxy.cache.store import CacheStore, open_cache_store
from hermes_proxy.config import Config, default_data_dir
from hermes_proxy.cors import install_cors
from hermes_proxy.dashboard import add_dashboard_routes
from hermes_proxy.errors import (
    HermesError,
    MethodNotAllowed,
    NotFound,
    RequestTooLarge,
    internal_error,
    to_openai_error,
)
from hermes_proxy.ledger import open_ledger
from hermes_proxy.ledger.base import Ledger
from hermes_proxy.ledger.outbox import Outbox, keep_replaying
from hermes_proxy.metrics import Metrics
from hermes_proxy.pipeline import Gateway
from hermes_proxy.pricing import Prices, resolve_prices
from hermes_proxy.ratelimit import RateLimiter, open_rate_limiter
from hermes_proxy.reload import reload_on_sighup, stop_reloading
from hermes_proxy.responses import add_responses_routes
from hermes_proxy.routes import (
    READY_PROBES,
    chat_completions,
    expect_handler,
    get_model,
    healthz,
    list_models,
    metrics_endpoint,
    readyz,
)
from hermes_proxy.tokens import TokenCounter, load_token_counter
from hermes_proxy.upstreams import build_upstream

log = logging.getLogger("hermes_proxy")
_REQUEST_ID_OK = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error_response(error: HermesError, request_id: str) -> web.Response:
    return web.json_response(to_openai_error(error), status=error.status, headers=error.headers)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error becomes OpenAI error JSON, here and nowhere else."""
    client_id = request.headers.get("x-request-id", "")
    request[REQUEST_ID] = client_id if _REQUEST_ID_OK.fullmatch(client_id) else f"req_{os.urandom(12).hex()}"
    try:
        return await handler(request)
    except HermesError as error:
        if error.status >= 500:
            log.warning("request %s failed: %s", request[REQUEST_ID], error.message)
        return _error_response(error, request[REQUEST_ID])
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[CONFIG].server.max_request_bytes
        return _error_response(RequestTooLarge(f"request body too large (limit {limit} bytes)"), request[REQUEST_ID])
    except web.HTTPNotFound:
        return _error_response(NotFound(f"no such endpoint: {request.method} {request.path}"), request[REQUEST_ID])
    except web.HTTPMethodNotAllowed as exc:
        return _error_response(MethodNotAllowed(f"{request.method} is not allowed on {request.path} "
                                                f"(allowed: {', '.join(sorted(exc.allowed_methods))})"),
                               request[REQUEST_ID])
    except web.HTTPException:
        raise
    except Exception:
        log.exception("request %s: unexpected error", request[REQUEST_ID])
        return _error_response(internal_error(request[REQUEST_ID]), request[REQUEST_ID])


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    request_id = request.get(REQUEST_ID)
    if request_id:
        response.headers["x-request-id"] = request_id


def build_gateway(config: Config, ledger: Ledger, counter: TokenCounter, *,
                  prices: Prices | None = None,
                  rate_limiter: RateLimiter | None = None, metrics: Metrics | None = None,
                  sleep: Callable[[float], Any] | None = None, outbox: Outbox | None = None,
                  alerts: BudgetAlerts | None = None, cache: CacheStore | None = None) -> Gateway:
    # an upstream left out for want of its API key gets no client: no route uses it, /readyz does not probe it
    upstreams = {u.name: build_upstream(u, counter=counter) for u in config.upstreams if not u.missing_key}
    kwargs: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
    return Gateway(config, upstreams=upstreams, ledger=ledger, counter=counter,
                   prices=prices if prices is not None else resolve_prices(config), rate_limiter=rate_limiter,
                   metrics=metrics, outbox=outbox, alerts=alerts, cache=cache, **kwargs)


def create_app(
    config: Config,
    *,
    ledger: Ledger | None = None,
    counter: TokenCounter | None = None,
    prices: Prices | None = None,
    sleep: Callable[[float], Any] | None = None,
) -> web.Application:
    """The proxy. Tests may inject a ledger, a token counter, prices, or the sleep used between retries."""
    app = web.Application(middlewares=[errors_middleware], client_max_size=config.server.max_request_bytes)
    app[CONFIG] = config
    app[RUNTIME] = Runtime(config=config)
    app[METRICS] = Metrics()
    app[READY_PROBES] = {}
    app.on_response_prepare.append(_add_request_id)
    install_cors(app, config.server.cors_origins)

    async def ledger_ctx(app: web.Application) -> AsyncIterator[None]:
        owned = ledger is None
        app[LEDGER] = ledger if ledger is not None else open_ledger(config.ledger)
        if owned:
            await app[LEDGER].start()
        yield
        if owned:
            await app[LEDGER].close()

    async def outbox_ctx(app: web.Application) -> AsyncIterator[None]:
        # settles the ledger could not write: replayed at start, then every outbox_replay_s while any wait
        path = config.ledger.outbox_path
        outbox = None if path is None else Outbox(
            path, on_waiting=app[METRICS].set_settles_waiting if config.server.metrics else None)
        app[OUTBOX] = outbox
        replayer = None if outbox is None else asyncio.create_task(
            keep_replaying(app[LEDGER], outbox, every_s=config.ledger.outbox_replay_s))
        yield
        if replayer is not None:
            replayer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await replayer

    async def gateway_ctx(app: web.Application) -> AsyncIterator[None]:
        tokens = counter if counter is not None else await asyncio.to_thread(
            load_token_counter, config.tokens, data_dir=default_data_dir())
        runtime = app[RUNTIME]
        runtime.gateway = build_gateway(config, app[LEDGER], tokens, prices=prices,
                                        rate_limiter=app[RATE_LIMITER],
                                        metrics=app[METRICS] if config.server.metrics else None, sleep=sleep,
                                        outbox=app[OUTBOX], alerts=app[ALERTS], cache=app[CACHE_STORE])
        reload_on_sighup(app, tokens, sleep=sleep)
        yield
        stop_reloading(app)
        for task in list(runtime.tasks):
            await task
        await runtime.gateway.aclose()

    async def alerts_ctx(app: web.Application) -> AsyncIterator[None]:
        # budget alerts: requests insert into the outbox in the ledger's database; this task posts them
        alerts = app[ALERTS] = BudgetAlerts(open_alert_store(app[LEDGER]))
        sender = asyncio.create_task(AlertSender(
            alerts.store, alerts.wake, lambda: app[RUNTIME].config,
            metrics=app[METRICS] if config.server.metrics else None).run())
        yield
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender

    async def rate_limiter_ctx(app: web.Application) -> AsyncIterator[None]:
        limiter = open_rate_limiter(config.rate_limits)
        app[RATE_LIMITER] = limiter
        if config.rate_limits.url:
            app[READY_PROBES]["rate_limiter"] = limiter.ping
        yield
        await limiter.close()

    app.cleanup_ctx.append(ledger_ctx)
    app.cleanup_ctx.append(outbox_ctx)
    app.cleanup_ctx.append(alerts_ctx)
    async def cache_ctx(app: web.Application) -> AsyncIterator[None]:
        # the response cache: in the ledger's database, or in Redis ([cache] url); teams opt in ([teams.x] cache)
        store = app[CACHE_STORE] = open_cache_store(app[LEDGER], config.cache.url)
        yield
        await store.close()

    app.cleanup_ctx.append(rate_limiter_ctx)
    app.cleanup_ctx.append(cache_ctx)
    app.cleanup_ctx.append(gateway_ctx)
    # an Expect header is answered before the middlewares run: every route gets the JSON-answering handler
    if config.server.metrics:
        app.router.add_get("/metrics", metrics_endpoint, expect_handler=expect_handler)
    app.router.add_post("/v1/chat/completions", chat_completions, expect_handler=expect_handler)
    app.router.add_post("/chat/completions", chat_completions, expect_handler=expect_handler)
    app.router.add_get("/v1/models", list_models, expect_handler=expect_handler)
    app.router.add_get("/v1/models/{model}", get_model, expect_handler=expect_handler)
    app.router.add_get("/healthz", healthz, expect_handler=expect_handler)
    app.router.add_get("/readyz", readyz, expect_handler=expect_handler)
    add_responses_routes(app)
    add_admin_routes(app)
    add_dashboard_routes(app)
    return app
