"""The proxy under test: the real app on a test server, in front of fake upstreams (tests/fake_upstream.py), with
the real openai SDK as its client. The ``proxy`` fixture is shared through conftest.py."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestClient

from hermes_proxy.app import create_app
from hermes_proxy.appkeys import LEDGER, current_gateway
from hermes_proxy.config import Config
from tests.fake_upstream import Script, make_upstream_app

SECRET = "sk-upstream-secret-123"


@dataclass
class Proxy:
    client: TestClient
    config: Config
    scripts: list[Script]

    @property
    def base_url(self) -> str:
        return str(self.client.make_url("/v1"))

    def sdk(self, key: str = "anything") -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=key, max_retries=0, timeout=20)

    async def rows(self) -> list[Any]:
        await current_gateway(self.client.app).settled()  # type: ignore[arg-type]
        ledger = self.client.app[LEDGER]  # type: ignore[index]
        return await ledger.requests(limit=100)


ProxyFactory = Callable[..., Awaitable[Proxy]]


@pytest.fixture
async def proxy(aiohttp_server: Any, aiohttp_client: Any, counter: Any) -> ProxyFactory:
    from tests.conftest import build_config

    async def start(*scripts: Script, config: Config | None = None, extra_urls: list[str] | None = None,
                    **sections: Any) -> Proxy:
        urls = []
        for script in scripts:
            server = await aiohttp_server(make_upstream_app(script))
            urls.append(str(server.make_url("/v1")))
        urls += extra_urls or []
        if config is None:
            if not urls:
                config = build_config(None, **sections)
            else:
                dialect = scripts[0].dialect if scripts else "vllm"
                config = build_config(urls[0], dialect, **sections)
                if len(urls) > 1:
                    config = _with_failovers(urls, [s.dialect for s in scripts], sections)
        app = create_app(config, counter=counter, sleep=_no_sleep)
        client = await aiohttp_client(app)
        return Proxy(client=client, config=config, scripts=list(scripts))

    return start


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


def _with_failovers(urls: list[str], dialects: list[str], sections: dict[str, Any]) -> Config:
    from hermes_proxy.config import parse_config

    upstreams, routes = [], []
    for index, url in enumerate(urls):
        dialect = dialects[index] if index < len(dialects) else "vllm"
        name = f"up{index}"
        upstreams.append({"name": name, "kind": dialect, "base_url": url, "api_key_env": "UPSTREAM_KEY",
                          "max_retries": 1, "retry_backoff_s": 0, "read_timeout_s": 5, "connect_timeout_s": 2})
        routes.append({"upstream": name, "model": "Hermes-4-405B", "input_usd_per_mtok": 1.0,
                       "output_usd_per_mtok": 3.0})
    data = {"server": {"auth": "none"}, "upstreams": upstreams, "models": {"hermes-4-405b": {"routes": routes}},
            "ledger": {"url": "memory://"}, **sections}
    return parse_config(data, env={"UPSTREAM_KEY": SECRET})


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


HELLO = [{"role": "user", "content": "hello"}]


async def _proxy_with_routes(proxy: ProxyFactory, scripts: list[Script | None]) -> Proxy:
    """Routes in order; ``None`` is an upstream that refuses connections."""
    real = [s for s in scripts if s is not None]
    started = await proxy(*real)
    urls, dialects = [], []
    real_urls = iter(_script_urls(started))
    for script in scripts:
        urls.append(_closed_port_url() if script is None else next(real_urls))
        dialects.append("vllm" if script is None else script.dialect)
    return await proxy(config=_with_failovers(urls, dialects, {}))


def _script_urls(p: Proxy) -> list[str]:
    return [u.base_url for u in p.config.upstreams]


