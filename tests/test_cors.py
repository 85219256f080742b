"""Opt-in CORS: preflights answered, every response to an allowed origin marked (JSON, SSE, errors), others untouched."""

from __future__ import annotations

from typing import Any

import pytest

from hermes_proxy.app import create_app
from hermes_proxy.config import parse_config
from hermes_proxy.errors import ConfigError
from tests.conftest import build_config

APP = "https://app.example.com"
HELLO = [{"role": "user", "content": "hello"}]


async def _client(aiohttp_client: Any, counter: Any, origins: list[str] | None, **server: Any) -> Any:
    server_section: dict[str, Any] = {"auth": "none", **server}
    if origins is not None:
        server_section["cors_origins"] = origins
    return await aiohttp_client(create_app(build_config(None, server=server_section), counter=counter))


def _preflight(origin: str, path: str = "/v1/chat/completions", headers: str = "authorization, content-type"
               ) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": headers}


async def test_preflight_from_an_allowed_origin_is_answered(aiohttp_client: Any, counter: Any) -> None:
    client = await _client(aiohttp_client, counter, [APP])
    response = await client.options("/v1/chat/completions",
                                    headers=_preflight(APP, headers="authorization, content-type, x-stainless-os"))
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    allowed = {h.strip() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "x-request-id", "x-hermes-reasoning", "x-stainless-os"} <= allowed
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in response.headers["Vary"]


async def test_json_answer_to_an_allowed_origin_exposes_the_proxy_headers(aiohttp_client: Any, counter: Any) -> None:
    client = await _client(aiohttp_client, counter, [APP])
    response = await client.post("/v1/chat/completions", headers={"Origin": APP},
                                 json={"model": "hermes-4-405b", "messages": HELLO})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == APP
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"x-request-id", "x-hermes-cost-usd", "x-hermes-route", "x-hermes-prompt-tokens"} <= exposed
    assert all(name in response.headers for name in exposed)


async def test_streamed_answer_carries_cors_headers(aiohttp_client: Any, counter: Any) -> None:
    client = await _client(aiohttp_client, counter, [APP])
    response = await client.post("/v1/chat/completions", headers={"Origin": APP},
                                 json={"model": "hermes-4-405b", "messages": HELLO, "stream": True})
    assert response.status == 200 and response.content_type == "text/event-stream"
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert "x-hermes-route" in response.headers["Access-Control-Expose-Headers"]
    assert (await response.text()).rstrip().endswith("data: [DONE]")


async def test_error_responses_carry_cors_headers(aiohttp_client: Any, counter: Any) -> None:
    client = await _client(aiohttp_client, counter, [APP], auth="keys")
    unauthorized = await client.post("/v1/chat/completions", headers={"Origin": APP},
                                     json={"model": "hermes-4-405b", "messages": HELLO})
    assert unauthorized.status == 401
    assert unauthorized.headers["Access-Control-Allow-Origin"] == APP
    assert "x-request-id" in unauthorized.headers["Access-Control-Expose-Headers"]
    missing = await client.get("/v1/nothing-here", headers={"Origin": APP})
    assert missing.status == 404 and missing.headers["Access-Control-Allow-Origin"] == APP


async def test_rate_limited_answer_exposes_retry_after_and_ratelimit_headers(aiohttp_client: Any,
                                                                             counter: Any) -> None:
    config = build_config(None, server={"auth": "none", "cors_origins": [APP]},
                          teams={"default": {"rate_limits": {"requests_per_minute": 1}}})
    client = await aiohttp_client(create_app(config, counter=counter))
    body = {"model": "hermes-4-405b", "messages": HELLO}
    first = await client.post("/v1/chat/completions", headers={"Origin": APP}, json=body)
    assert "x-ratelimit-remaining-requests" in first.headers["Access-Control-Expose-Headers"]
    refused = await client.post("/v1/chat/completions", headers={"Origin": APP}, json=body)
    assert refused.status == 429
    assert "retry-after" in refused.headers["Access-Control-Expose-Headers"]


async def test_other_origins_get_no_cors_headers(aiohttp_client: Any, counter: Any) -> None:
    client = await _client(aiohttp_client, counter, [APP])
    evil = "https://evil.example.net"
    preflight = await client.options("/v1/chat/completions", headers=_preflight(evil))
    assert preflight.status == 405 and "Access-Control-Allow-Origin" not in preflight.headers
    answer = await client.post("/v1/chat/completions", headers={"Origin": evil},
                               json={"model": "hermes-4-405b", "messages": HELLO})
    assert answer.status == 200
    assert not any(name.lower().startswith("access-control-") for name in answer.headers)


async def test_cors_is_off_by_default(aiohttp_client: Any, counter: Any) -> None:
    client = await _client(aiohttp_client, counter, None)
    preflight = await client.options("/v1/chat/completions", headers=_preflight(APP))
    assert preflight.status == 405
    answer = await client.post("/v1/chat/completions", headers={"Origin": APP},
                               json={"model": "hermes-4-405b", "messages": HELLO})
    assert not any(name.lower().startswith("access-control-") for name in answer.headers)


async def test_star_allows_any_origin_and_echoes_it(aiohttp_client: Any, counter: Any) -> None:
    client = await _client(aiohttp_client, counter, ["*"])
    origin = "http://localhost:5173"
    preflight = await client.options("/v1/models", headers={**_preflight(origin),
                                                            "Access-Control-Request-Private-Network": "true"})
    assert preflight.status == 204 and preflight.headers["Access-Control-Allow-Origin"] == origin
    assert preflight.headers["Access-Control-Allow-Private-Network"] == "true"
    models = await client.get("/v1/models", headers={"Origin": origin})
    assert models.status == 200 and models.headers["Access-Control-Allow-Origin"] == origin


async def test_origins_compare_without_case(aiohttp_client: Any, counter: Any) -> None:
    client = await _client(aiohttp_client, counter, ["https://App.Example.com"])
    response = await client.get("/healthz", headers={"Origin": APP})
    assert response.headers["Access-Control-Allow-Origin"] == APP


@pytest.mark.parametrize("origins", [
    "https://app.example.com",          # not a list
    [42],                               # not strings
    ["https://app.example.com/"],       # trailing slash
    ["https://app.example.com/chat"],   # a path
    ["app.example.com"],                # no scheme
    ["https://app.example.com:99999"],  # port out of range
    [""],
])
def test_bad_cors_origins_are_refused_naming_the_key(origins: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"server": {"cors_origins": origins}}, env={})
    assert caught.value.key == "server.cors_origins"


def test_good_cors_origins_load() -> None:
    config = parse_config({"server": {"cors_origins": ["*", "http://localhost:5173", "https://[::1]:8443",
                                                       "chrome-extension://abcdef"]}}, env={})
    assert config.server.cors_origins == ("*", "http://localhost:5173", "https://[::1]:8443",
                                          "chrome-extension://abcdef")
