"""Routes whose upstream has no API key are left out (never contacted); when every route fails, the error says why each
one did. Real app, real local aiohttp upstreams."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from hermes_proxy.app import create_app
from hermes_proxy.config import Config, parse_config
from tests.fake_upstream import ANSWER, Script, make_upstream_app

HELLO = [{"role": "user", "content": "hello"}]


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _config(upstreams: list[dict[str, Any]], routes: list[dict[str, Any]], env: dict[str, str]) -> Config:
    return parse_config({
        "server": {"auth": "none"},
        "ledger": {"url": "memory://"},
        "upstreams": [*upstreams, {"name": "demo", "kind": "demo", "first_token_s": 0, "tokens_per_s": 0}],
        "models": {"hermes-4-405b": {"routes": routes},
                   "hermes-demo": {"routes": [{"upstream": "demo", "model": "Hermes-4-405B"}]}},
    }, env=env)


def _upstream(name: str, kind: str, url: str, key_env: str | None) -> dict[str, Any]:
    upstream: dict[str, Any] = {"name": name, "kind": kind, "base_url": url, "max_retries": 2, "retry_backoff_s": 0.2}
    if key_env is not None:
        upstream["api_key_env"] = key_env
    return upstream


def _route(upstream: str) -> dict[str, Any]:
    return {"upstream": upstream, "model": "Hermes-4-405B", "input_usd_per_mtok": 1, "output_usd_per_mtok": 3}


async def test_a_route_without_its_key_is_skipped_and_never_contacted(aiohttp_server: Any, aiohttp_client: Any,
                                                                      counter: Any) -> None:
    keyless, keyed = Script(dialect="openrouter"), Script(dialect="vllm")
    keyless_url = str((await aiohttp_server(make_upstream_app(keyless))).make_url("/v1"))
    keyed_url = str((await aiohttp_server(make_upstream_app(keyed))).make_url("/v1"))
    config = _config([_upstream("router", "openrouter", keyless_url, "ROUTER_KEY"),
                      _upstream("local", "vllm", keyed_url, "LOCAL_KEY")],
                     [_route("router"), _route("local")], env={"LOCAL_KEY": "sk-local"})
    client = await aiohttp_client(create_app(config, counter=counter, sleep=_no_sleep))
    response = await client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": HELLO})
    assert response.status == 200
    assert (await response.json())["choices"][0]["message"]["content"] == ANSWER
    assert response.headers["x-hermes-route"] == "local:Hermes-4-405B"
    assert keyless.requests == [] and len(keyed.requests) == 1


async def test_a_model_with_every_route_keyless_is_refused_at_once_naming_the_variables(
        aiohttp_server: Any, aiohttp_client: Any, counter: Any) -> None:
    nous, router = Script(dialect="nous"), Script(dialect="openrouter")
    nous_url = str((await aiohttp_server(make_upstream_app(nous))).make_url("/v1"))
    router_url = str((await aiohttp_server(make_upstream_app(router))).make_url("/v1"))
    config = _config([_upstream("nous", "nous", nous_url, None), _upstream("router", "openrouter", router_url, None)],
                     [_route("nous"), _route("router")], env={})
    client = await aiohttp_client(create_app(config, counter=counter))  # real sleeps: retries would show
    started = time.perf_counter()
    response = await client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": HELLO})
    elapsed = time.perf_counter() - started
    assert response.status == 503 and elapsed < 1.0
    error = (await response.json())["error"]
    assert error["code"] == "model_unavailable" and error["param"] == "model"
    assert "$NOUS_API_KEY or $OPENROUTER_API_KEY" in error["message"]
    assert "hermes-demo" in error["message"]  # the model that needs no key
    assert nous.requests == [] and router.requests == []
    demo = await client.post("/v1/chat/completions", json={"model": "hermes-demo", "messages": HELLO})
    assert demo.status == 200


async def test_a_vllm_without_api_key_env_is_used_without_a_key(aiohttp_server: Any, aiohttp_client: Any,
                                                                counter: Any) -> None:
    local = Script(dialect="vllm")
    url = str((await aiohttp_server(make_upstream_app(local))).make_url("/v1"))
    config = _config([_upstream("local", "vllm", url, None)], [_route("local")], env={})
    client = await aiohttp_client(create_app(config, counter=counter))
    response = await client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": HELLO})
    assert response.status == 200
    assert "Authorization" not in local.headers_seen[0]


async def test_when_every_route_fails_the_error_names_each_route_and_why(aiohttp_server: Any, aiohttp_client: Any,
                                                                        counter: Any) -> None:
    refusing = Script(dialect="openrouter", fail_statuses=[401])
    url = str((await aiohttp_server(make_upstream_app(refusing))).make_url("/v1"))
    config = _config([_upstream("openrouter", "openrouter", url, "OR_KEY"),
                      _upstream("nous", "nous", _closed_port_url(), "NOUS_KEY")],
                     [{**_route("openrouter"), "model": "nousresearch/hermes-4-405b"}, _route("nous")],
                     env={"OR_KEY": "sk-or-secret-1", "NOUS_KEY": "sk-nous-secret-2"})
    client = await aiohttp_client(create_app(config, counter=counter, sleep=_no_sleep))
    response = await client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": HELLO})
    assert response.status == 502
    error = (await response.json())["error"]
    assert error["type"] == "upstream_error" and error["code"] == "upstream_error"
    message = error["message"]
    assert message.startswith("all 2 routes failed: openrouter -> nousresearch/hermes-4-405b: HTTP 401: simulated 401")
    assert "; nous -> Hermes-4-405B: cannot connect" in message
    assert error["upstream"] == "openrouter, nous"
    assert "secret" not in await response.text()
    assert len(refusing.requests) == 1  # a 401 is not retried


async def test_a_stream_whose_routes_all_fail_gets_the_same_json_error(aiohttp_client: Any, counter: Any) -> None:
    config = _config([_upstream("a", "vllm", _closed_port_url(), None), _upstream("b", "vllm", _closed_port_url(), None)],
                     [_route("a"), _route("b")], env={})
    client = await aiohttp_client(create_app(config, counter=counter, sleep=_no_sleep))
    response = await client.post("/v1/chat/completions",
                                 json={"model": "hermes-4-405b", "messages": HELLO, "stream": True})
    assert response.status == 502 and response.content_type == "application/json"
    message = (await response.json())["error"]["message"]
    assert message.startswith("all 2 routes failed: a -> Hermes-4-405B: cannot connect")
    assert "; b -> Hermes-4-405B: cannot connect" in message


async def test_readiness_ignores_upstreams_left_out(aiohttp_client: Any, counter: Any) -> None:
    config = _config([_upstream("local", "vllm", _closed_port_url(), "LOCAL_KEY")], [_route("local")], env={})
    client = await aiohttp_client(create_app(config, counter=counter))
    response = await client.get("/readyz")
    body = await response.json()
    assert response.status == 200, body
    assert "upstream:local" not in body["checks"] and body["checks"]["upstream:demo"]["ok"]
