"""The proxy end to end: the real openai SDK -> the real app -> a real local aiohttp upstream speaking each dialect."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestServer

from hermes_proxy.app import create_app
from hermes_proxy.appkeys import LEDGER
from tests.conftest import build_config
from tests.fake_upstream import ANSWER, REASONING, Script
from tests.proxy_harness import (
    HELLO,
    SECRET,
    ProxyFactory,
    _closed_port_url,
    _proxy_with_routes,
    _script_urls,
)

# --- the demo upstream -------------------------------------------------------------------------------------------


async def test_demo_upstream_answers_streaming_and_not_and_says_it_is_simulated(proxy: ProxyFactory) -> None:
    p = await proxy()
    sdk = p.sdk()
    completion = await sdk.chat.completions.create(model="hermes-4-405b", messages=HELLO)
    assert "simulated" in completion.model
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.completion_tokens > 0

    stream = await sdk.chat.completions.create(model="hermes-4-405b:thinking", messages=HELLO, stream=True,
                                               stream_options={"include_usage": True})
    content, reasoning, usage = "", "", None
    async for chunk in stream:
        assert "simulated" in chunk.model
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            content += choice.delta.content or ""
            reasoning += getattr(choice.delta, "reasoning_content", None) or ""
    assert "Hermes" in content and "<think>" not in content
    assert reasoning and "<think>" not in reasoning
    assert usage is not None and usage.completion_tokens_details.reasoning_tokens > 0
    assert usage.completion_tokens > usage.completion_tokens_details.reasoning_tokens


async def test_models_lists_aliases_with_suffixes_and_simulated_label(proxy: ProxyFactory) -> None:
    p = await proxy()
    models = await p.sdk().models.list()
    ids = {m.id for m in models.data}
    assert {"hermes-4-405b", "hermes-4-405b:thinking", "hermes-4-405b:fast"} <= ids
    entry = next(m for m in models.data if m.id == "hermes-4-405b")
    assert entry.model_extra["simulated"] is True
    assert entry.model_extra["context_window"] == 131072


async def test_health_and_readiness(proxy: ProxyFactory) -> None:
    p = await proxy(Script())
    assert (await p.client.get("/healthz")).status == 200
    ready = await p.client.get("/readyz")
    assert ready.status == 200, await ready.text()
    body = await ready.json()
    assert body["checks"]["ledger"]["ok"] and body["checks"]["upstream:primary"]["ok"]


async def test_readyz_reports_an_unreachable_upstream(proxy: ProxyFactory) -> None:
    p = await proxy(config=build_config(_closed_port_url(), "vllm"))
    ready = await p.client.get("/readyz")
    assert ready.status == 503
    body = await ready.json()
    assert body["checks"]["upstream:primary"]["ok"] is False


# --- what the upstream receives ----------------------------------------------------------------------------------


async def test_vllm_receives_sampling_defaults_usage_request_and_the_thinking_switch(proxy: ProxyFactory) -> None:
    script = Script(dialect="vllm")
    p = await proxy(script)
    stream = await p.sdk().chat.completions.create(model="hermes-4-405b", messages=HELLO, stream=True,
                                                   extra_body={"reasoning": True})
    chunks = [c async for c in stream]
    sent = script.requests[0]
    assert sent["model"] == "Hermes-4-405B"
    assert sent["temperature"] == 0.6 and sent["top_p"] == 0.95 and sent["top_k"] == 20
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["chat_template_kwargs"]["thinking"] is True
    assert "reasoning" not in sent
    # the client did not ask for usage: the upstream's usage chunk is not relayed
    assert all(c.usage is None for c in chunks)
    assert script.headers_seen[0]["Authorization"] == f"Bearer {SECRET}"


async def test_client_sampling_wins_over_defaults(proxy: ProxyFactory) -> None:
    script = Script(dialect="nous")
    p = await proxy(script)
    await p.sdk().chat.completions.create(model="hermes-4-405b", messages=HELLO, temperature=0.1, top_p=0.5,
                                          seed=7, stop=["\n\n"], user="u1", max_tokens=50)
    sent = script.requests[0]
    assert (sent["temperature"], sent["top_p"], sent["seed"], sent["stop"], sent["user"], sent["max_tokens"]) == (
        0.1, 0.5, 7, ["\n\n"], "u1", 50)
    assert "top_k" not in sent  # Nous Portal is not known to accept top_k
    assert "stream_options" not in sent  # never on a non-streaming request


async def test_an_integer_past_64_bits_in_a_request_reaches_the_upstream_exactly(proxy: ProxyFactory) -> None:
    """The proxy encodes with orjson, which refuses such integers; the client's request still goes through intact."""
    script = Script(dialect="vllm")
    p = await proxy(script)
    answer = await p.sdk().chat.completions.create(model="hermes-4-405b", messages=HELLO, seed=2**70,
                                                   stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in answer if c.choices]) == ANSWER
    assert script.requests[0]["seed"] == 2**70


async def test_native_tools_pass_through_and_tool_calls_come_back(proxy: ProxyFactory) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
    script = Script(dialect="vllm", tool_call=call)
    started = await proxy(script)
    from hermes_proxy.config import parse_config

    p = await proxy(config=parse_config({
        "server": {"auth": "none"}, "ledger": {"url": "memory://"},
        "upstreams": [{"name": "local", "kind": "vllm", "base_url": started.config.upstreams[0].base_url,
                       "tools": "native"}],
        "models": {"hermes-4-405b": {"routes": [{"upstream": "local", "model": "m", "input_usd_per_mtok": 1,
                                                 "output_usd_per_mtok": 3}]}}}, env={}))
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    completion = await p.sdk().chat.completions.create(model="hermes-4-405b", messages=HELLO, tools=tools,
                                                       tool_choice="auto")
    assert script.requests[0]["tools"] == tools and script.requests[0]["tool_choice"] == "auto"
    message = completion.choices[0].message
    assert message.tool_calls and message.tool_calls[0].function.name == "get_weather"
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Oslo"}
    assert completion.choices[0].finish_reason == "tool_calls"

    stream = await p.sdk().chat.completions.create(model="hermes-4-405b", messages=HELLO, tools=tools, stream=True)
    names = [tc.function.name async for c in stream for ch in c.choices for tc in (ch.delta.tool_calls or [])]
    assert names == ["get_weather"]


# --- the nasty SSE cases -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("split_bytes", [1, 3, 17])
async def test_openrouter_stream_split_crlf_comments_no_done(proxy: ProxyFactory, split_bytes: int) -> None:
    script = Script(dialect="openrouter", split_bytes=split_bytes, crlf=True, comments=True, send_done=False)
    p = await proxy(script)
    stream = await p.sdk().chat.completions.create(model="hermes-4-405b:thinking", messages=HELLO, stream=True,
                                                   stream_options={"include_usage": True})
    content, reasoning, usage = "", "", None
    async for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            content += choice.delta.content or ""
            reasoning += getattr(choice.delta, "reasoning_content", None) or ""
    assert content == ANSWER
    assert reasoning == REASONING
    assert script.requests[0]["reasoning"] == {"enabled": True}
    assert usage is not None
    # OpenRouter's own reported cost wins over config prices
    assert usage.model_extra["cost"] == pytest.approx(0.00012)


async def test_vllm_think_tags_split_into_reasoning_content_for_streams_and_not(proxy: ProxyFactory) -> None:
    script = Script(dialect="vllm", piece=3)
    p = await proxy(script)
    completion = await p.sdk().chat.completions.create(model="hermes-4-405b:thinking", messages=HELLO)
    message = completion.choices[0].message
    assert message.content == ANSWER
    assert message.model_extra["reasoning_content"] == REASONING
    assert message.model_extra["reasoning"] == REASONING


# --- retry and failover ------------------------------------------------------------------------------------------


async def test_failover_when_primary_refuses_connections(proxy: ProxyFactory) -> None:
    secondary = Script(dialect="vllm")
    p = await _proxy_with_routes(proxy, [None, secondary])
    completion = await p.sdk().chat.completions.create(model="hermes-4-405b", messages=HELLO)
    assert completion.choices[0].message.content == ANSWER
    assert len(secondary.requests) == 1


async def test_retry_after_500_then_success_on_the_same_upstream(proxy: ProxyFactory) -> None:
    script = Script(dialect="vllm", fail_statuses=[500])
    p = await proxy(script)
    completion = await p.sdk().chat.completions.create(model="hermes-4-405b", messages=HELLO)
    assert completion.choices[0].message.content == ANSWER
    assert len(script.requests) == 2


async def test_429_with_retry_after_fails_over_to_the_next_route(proxy: ProxyFactory) -> None:
    primary = Script(dialect="vllm", fail_statuses=[429, 429], retry_after="1")
    secondary = Script(dialect="openrouter")
    p = await _proxy_with_routes(proxy, [primary, secondary])
    completion = await p.sdk().chat.completions.create(model="hermes-4-405b", messages=HELLO)
    assert completion.choices[0].message.content == ANSWER
    assert len(primary.requests) == 2 and len(secondary.requests) == 1
    assert completion.model == "hermes-4-405b"


async def test_all_routes_down_is_a_502_naming_the_upstream_without_its_key(proxy: ProxyFactory) -> None:
    p = await proxy(config=build_config(_closed_port_url(), "vllm"))
    response = await p.client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": HELLO})
    assert response.status == 502
    body = await response.json()
    assert body["error"]["code"] == "upstream_unavailable" and body["error"]["upstream"] == "primary"
    assert SECRET not in await response.text()


async def test_upstream_that_hangs_past_the_read_timeout_is_a_504(proxy: ProxyFactory) -> None:
    script = Script(dialect="vllm", hang_s=3)
    p0 = await proxy(script)
    url = _script_urls(p0)[0]
    from hermes_proxy.config import parse_config

    config = parse_config({"server": {"auth": "none"}, "ledger": {"url": "memory://"},
                           "upstreams": [{"name": "slow", "kind": "vllm", "base_url": url, "read_timeout_s": 0.3,
                                          "max_retries": 0}],
                           "models": {"hermes-4-405b": {"routes": [{"upstream": "slow", "model": "m"}]}}}, env={})
    p = await proxy(config=config)
    response = await p.client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": HELLO})
    assert response.status == 504
    assert (await response.json())["error"]["upstream"] == "slow"


# --- failures after the first byte ---------------------------------------------------------------------------------


async def test_upstream_dies_mid_stream_client_gets_an_error_event_and_partial_is_billed(proxy: ProxyFactory) -> None:
    script = Script(dialect="vllm", die_after=4, piece=2)
    p = await proxy(script)
    stream = await p.sdk().chat.completions.create(model="hermes-4-405b", messages=HELLO, stream=True)
    received = ""
    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            for choice in chunk.choices:
                received += choice.delta.content or ""
    assert "primary" in str(caught.value)
    assert received == ANSWER[:8]
    rows = await p.rows()
    assert rows[0].status == "upstream_error"
    assert rows[0].estimated and rows[0].completion_tokens > 0 and rows[0].cost_usd > 0


async def test_openrouter_mid_stream_error_chunk_ends_the_stream_with_an_error(proxy: ProxyFactory) -> None:
    script = Script(dialect="openrouter", error_chunk_after=3)
    p = await proxy(script)
    stream = await p.sdk().chat.completions.create(model="hermes-4-405b", messages=HELLO, stream=True)
    with pytest.raises(openai.APIError, match="provider disconnected"):
        async for _ in stream:
            pass


async def test_client_disconnect_mid_stream_is_billed(proxy: ProxyFactory) -> None:
    script = Script(dialect="vllm", piece=1, answer="x" * 400, delay_s=0.005)
    p = await proxy(script)
    response = await p.client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": HELLO,
                                                                 "stream": True})
    await response.content.readline()
    response.close()
    for _ in range(100):
        rows = await p.rows()
        if rows:
            break
        await asyncio.sleep(0.02)
    assert rows and rows[0].status == "cancelled"
    assert rows[0].completion_tokens > 0


# --- errors as OpenAI error JSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "status", "param"), [
    (b"{not json", 400, None),
    (b"[]", 400, None),
    (json.dumps({"messages": HELLO}).encode(), 400, "model"),
    (json.dumps({"model": "hermes-4-405b"}).encode(), 400, "messages"),
    (json.dumps({"model": "hermes-4-405b", "messages": "hi"}).encode(), 400, "messages"),
    (json.dumps({"model": "hermes-4-405b", "messages": HELLO, "temperature": "hot"}).encode(), 400, "temperature"),
    (json.dumps({"model": "hermes-4-405b", "messages": HELLO, "max_tokens": -1}).encode(), 400, "max_tokens"),
    (json.dumps({"model": "hermes-4-405b", "messages": HELLO, "n": 2}).encode(), 400, "n"),
    (json.dumps({"model": "gpt-4", "messages": HELLO}).encode(), 404, "model"),
    (json.dumps({"model": "hermes-4-405b:turbo", "messages": HELLO}).encode(), 400, "model"),
])
async def test_bad_requests_get_openai_error_json(proxy: ProxyFactory, body: bytes, status: int,
                                                  param: str | None) -> None:
    p = await proxy()
    response = await p.client.post("/v1/chat/completions", data=body, headers={"Content-Type": "application/json"})
    assert response.status == status
    error = (await response.json())["error"]
    assert error["message"] and error["type"]
    if param is not None:
        assert error["param"] == param
    if status == 404:
        assert error["code"] == "model_not_found"


async def test_body_too_large_is_413(proxy: ProxyFactory) -> None:
    p = await proxy(server={"auth": "none", "max_request_bytes": 2048})
    big = {"model": "hermes-4-405b", "messages": [{"role": "user", "content": "x" * 5000}]}
    response = await p.client.post("/v1/chat/completions", json=big)
    assert response.status == 413
    assert (await response.json())["error"]["type"] == "invalid_request_error"


async def test_unknown_route_and_wrong_method_are_json(proxy: ProxyFactory) -> None:
    p = await proxy()
    missing = await p.client.get("/v1/nothing")
    assert missing.status == 404 and "error" in await missing.json()
    wrong = await p.client.get("/v1/chat/completions")
    assert wrong.status == 405 and "error" in await wrong.json()


async def test_context_window_is_enforced_before_sending(proxy: ProxyFactory) -> None:
    script = Script()
    p = await proxy(script)
    with pytest.raises(openai.BadRequestError) as caught:
        await p.sdk().chat.completions.create(model="hermes-4-405b", messages=HELLO, max_tokens=131072)
    assert caught.value.code == "context_length_exceeded"
    assert "131072" in caught.value.message
    assert script.requests == []


async def test_request_id_is_echoed_or_generated(proxy: ProxyFactory) -> None:
    p = await proxy()
    echoed = await p.client.get("/healthz", headers={"x-request-id": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = await p.client.post("/v1/chat/completions", data=b"{")
    assert generated.headers["x-request-id"].startswith("req_")


async def test_bad_key_is_401_when_keys_are_required(proxy: ProxyFactory) -> None:
    p = await proxy(server={"auth": "keys"})
    with pytest.raises(openai.AuthenticationError) as caught:
        await p.sdk("hp-wrong").chat.completions.create(model="hermes-4-405b", messages=HELLO)
    assert caught.value.code == "invalid_api_key"
    ledger = p.client.app[LEDGER]  # type: ignore[index]
    plaintext, _ = await ledger.create_key("default", "ci")
    completion = await p.sdk(plaintext).chat.completions.create(model="hermes-4-405b", messages=HELLO)
    assert completion.choices[0].message.content


async def test_cost_headers_on_non_streaming_responses(proxy: ProxyFactory) -> None:
    p = await proxy(Script(dialect="vllm"))
    raw = await p.sdk().chat.completions.with_raw_response.create(model="hermes-4-405b", messages=HELLO)
    headers = raw.headers
    # 31 prompt tokens at $1/Mtok + 20 completion at $3/Mtok
    assert Decimal(headers["x-hermes-cost-usd"]) == Decimal("0.000091")
    assert headers["x-hermes-prompt-tokens"] == "31" and headers["x-hermes-completion-tokens"] == "20"
    assert headers["x-hermes-reasoning"].startswith("off")


def test_sync_sdk_streams_against_a_running_server(counter: Any) -> None:
    """The synchronous SDK against a real server on a free port, as an app would use it."""

    async def run() -> tuple[str, str]:
        app = create_app(build_config(None), counter=counter)
        server = TestServer(app)
        await server.start_server()
        try:
            def call() -> tuple[str, str]:
                client = openai.OpenAI(base_url=str(server.make_url("/v1")), api_key="x", max_retries=0)
                text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
                    model="hermes-4-405b", messages=HELLO, stream=True) if c.choices)
                plain = client.chat.completions.create(model="hermes-4-405b", messages=HELLO)
                return text, plain.choices[0].message.content or ""
            return await asyncio.to_thread(call)
        finally:
            await server.close()

    text, plain = asyncio.run(run())
    assert text == plain and "Hermes" in text

