"""Config reload on SIGHUP: teams, budgets, prices, models and upstreams change for new requests; running streams
finish on the gateway they started with. A config that does not load is refused with a log line and the old one stays.
``[server]`` and ``[ledger]`` changes need a restart (they own sockets and connections) and are reported as such.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Any

from aiohttp import web

from hermes_proxy.appkeys import ALERTS, CACHE_STORE, LEDGER, METRICS, OUTBOX, RATE_LIMITER, RUNTIME
from hermes_proxy.config import Config, load_config
from hermes_proxy.errors import HermesError
from hermes_proxy.pipeline import Gateway
from hermes_proxy.tokens import TokenCounter

log = logging.getLogger("hermes_proxy.reload")


def reload_on_sighup(app: web.Application, counter: TokenCounter, *,
                     sleep: Callable[[float], Any] | None) -> None:
    runtime = app[RUNTIME]
    if runtime.config.source is None:
        return  # built-in defaults: nothing to re-read
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        task = loop.create_task(reload_config(app, counter, sleep=sleep))
        runtime.tasks.add(task)
        task.add_done_callback(runtime.tasks.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_signal)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no SIGHUP on this platform
        log.info("config reload on SIGHUP is not available here")


def stop_reloading(app: web.Application) -> None:
    if app[RUNTIME].config.source is None:
        return
    try:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
    except (NotImplementedError, RuntimeError, ValueError):
        pass


async def reload_config(app: web.Application, counter: TokenCounter, *,
                                            sleep: Callable[[float], Any] | None = None) -> bool:
    """Load the config file again and swap the gateway. Returns whether the new config took effect."""
    from hermes_proxy.app import build_gateway

    runtime = app[RUNTIME]
    old_config = runtime.config
    try:
        new_config = await asyncio.to_thread(load_config, old_config.source)
        gateway = await asyncio.to_thread(
            build_gateway, new_config, app[LEDGER], counter, sleep=sleep, outbox=app.get(OUTBOX), alerts=app.get(ALERTS),
            cache=app.get(CACHE_STORE),
            rate_limiter=app[RATE_LIMITER], metrics=app[METRICS] if new_config.server.metrics else None)
    except HermesError as error:
        log.error("config reload refused, keeping the running config: %s", error)
        return False
    for section, changed in _restart_only_changes(old_config, new_config):
        if changed:
            log.warning("config reload: [%s] changed; that part takes effect after a restart", section)
    old_gateway = runtime.gateway
    runtime.config, runtime.gateway = new_config, gateway
    runtime.reloads += 1
    log.info("config reloaded from %s (reload #%d)", new_config.source, runtime.reloads)
    if old_gateway is not None:
        await _retire(old_gateway)
    return True


def _restart_only_changes(old: Config, new: Config) -> list[tuple[str, bool]]:
    return [("server", old.server != new.server), ("ledger", old.ledger != new.ledger),
            ("rate_limits", old.rate_limits != new.rate_limits), ("tokens", old.tokens != new.tokens),
            ("cache] url [", old.cache.url != new.cache.url)]


async def _retire(gateway: Gateway) -> None:
    """Close an old gateway's upstream clients once the requests that started on it have finished."""
    await gateway.wait_idle()
    await gateway.aclose()
