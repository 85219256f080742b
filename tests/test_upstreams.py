"""Upstream clients at the HTTP level, against real local servers answering exactly what each test scripts."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from hermes_proxy.config import parse_config
from hermes_proxy.errors import (
    UpstreamOverloaded,
    UpstreamRejected,
    UpstreamStreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from hermes_proxy.reasoning import DEEP_THINKING_PROMPT
from hermes_proxy.upstreams import build_upstream
from hermes_proxy.upstreams.demo import DemoUpstream
from tests.fake_upstream import ANSWER, Script, make_upstream_app

KEY = "sk-live-abcdef123456"
Reply = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Scripted:
    """A local upstream that answers the n-th chat request with the n-th reply and records what it received."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []

    def app(self) -> web.Application:
        async def chat(request: web.Request) -> web.StreamResponse:
            self.bodies.append(await request.json())
            self.headers.append(dict(request.headers))
            return await self.replies.pop(0)(request)

        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        return app


def respond(status: int = 200, *, body: bytes | None = None, json_body: Any = None,
            headers: dict[str, str] | None = None) -> Reply:
    async def reply(request: web.Request) -> web.StreamResponse:
        data = json.dumps(json_body).encode() if json_body is not None else (body or b"")
        content_type = "application/json" if json_body is not None else "text/event-stream"
        return web.Response(status=status, body=data, headers=headers, content_type=content_type)

    return reply


def hang(seconds: float) -> Reply:
    async def reply(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return web.Response(text="too late")

    return reply


def upstream_config(kind: str = "vllm", base_url: str = "http://127.0.0.1:9/v1", **extra: Any) -> Any:
    data = {"upstreams": [{"name": "u", "kind": kind, "base_url": base_url, "api_key_env": "K", **extra}],
            "models": {"m": {"routes": [{"upstream": "u", "model": "x"}]}}, "ledger": {"url": "memory://"}}
    return parse_config(data, env={"K": KEY}).upstreams[0]


@pytest.fixture
async def client_for(aiohttp_server: Any) -> Any:
    made: list[Any] = []

    async def make(scripted: Scripted, kind: str = "vllm", **extra: Any) -> Any:
        server = await aiohttp_server(scripted.app())
        upstream = build_upstream(upstream_config(kind, str(server.make_url("/v1")), **extra), counter=None)
        made.append(upstream)
        return upstream

    yield make
    for upstream in made:
        await upstream.aclose()


async def collect(upstream: Any, payload: dict[str, Any], stream: bool = True) -> list[dict[str, Any]]:
    return [chunk async for chunk in upstream.chat(payload, stream=stream)]


def sse(*events: str, newline: str = "\n") -> bytes:
    return "".join(f"{e}{newline}{newline}" for e in events).encode()


async def test_vllm_old_error_shape_is_a_400_with_the_upstream_message(client_for: Any) -> None:
    scripted = Scripted(respond(400, json_body={
        "object": "error", "message": "This model's maximum context length is 131072 tokens",
        "type": "BadRequestError", "param": None, "code": 400}))
    with pytest.raises(UpstreamRejected) as caught:
        await collect(await client_for(scripted), {"model": "x", "messages": []})
    assert caught.value.status == 400 and "131072" in caught.value.message
    assert not caught.value.retryable


async def test_401_names_the_env_var_and_never_the_key_even_if_echoed(client_for: Any) -> None:
    scripted = Scripted(respond(401, json_body={"error": {"message": f"bad key {KEY}"}}))
    with pytest.raises(UpstreamRejected) as caught:
        await collect(await client_for(scripted), {"model": "x", "messages": []})
    assert "$K" in caught.value.message and KEY not in caught.value.message
    assert caught.value.status == 502


@pytest.mark.parametrize(("header", "expected"), [("7", 7.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)])
async def test_429_is_retryable_and_carries_retry_after(client_for: Any, header: str, expected: float) -> None:
    scripted = Scripted(respond(429, headers={"Retry-After": header},
                                json_body={"error": {"code": 429, "message": "slow down"}}))
    with pytest.raises(UpstreamOverloaded) as caught:
        await collect(await client_for(scripted, "openrouter"), {"model": "x", "messages": []})
    assert caught.value.retryable and caught.value.retry_after == expected


async def test_sse_with_crlf_comments_and_usage_chunk_is_parsed(client_for: Any) -> None:
    body = sse(": OPENROUTER PROCESSING",
               'data: {"choices":[{"index":0,"delta":{"reasoning":"hm"}}]}',
               'data: {"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}',
               'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"cost":0.5}}',
               "data: [DONE]", newline="\r\n")
    scripted = Scripted(respond(body=body))
    chunks = await collect(await client_for(scripted, "openrouter"), {"model": "x", "messages": []})
    assert [c.get("usage") for c in chunks][-1]["cost"] == 0.5
    assert chunks[0]["choices"][0]["delta"]["reasoning"] == "hm"
    sent = scripted.bodies[0]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert scripted.headers[0]["Authorization"] == f"Bearer {KEY}"
    assert scripted.headers[0]["X-OpenRouter-Title"] == "hermes-proxy"


async def test_stream_options_switch_off_for_old_vllm_and_top_k_dropped_where_unsupported(client_for: Any) -> None:
    scripted = Scripted(respond(body=sse('data: {"choices":[{"index":0,"delta":{"content":"x"}}]}')))
    await collect(await client_for(scripted, "vllm", stream_options=False, accepts_top_k=False),
                  {"model": "x", "messages": [], "top_k": 20})
    sent = scripted.bodies[0]
    assert "stream_options" not in sent and "top_k" not in sent


async def test_error_chunk_before_any_content_is_retryable_after_content_is_a_stream_error(client_for: Any) -> None:
    scripted = Scripted(
        respond(body=sse('data: {"error":{"code":503,"message":"no capacity"}}')),
        respond(body=sse('data: {"choices":[{"index":0,"delta":{"content":"a"}}]}',
                         'data: {"error":{"code":502,"message":"provider died"}}')),
    )
    upstream = await client_for(scripted, "openrouter")
    with pytest.raises(UpstreamOverloaded):
        await collect(upstream, {"model": "x", "messages": []})
    received: list[dict[str, Any]] = []
    with pytest.raises(UpstreamStreamError, match="provider died"):
        async for chunk in upstream.chat({"model": "x", "messages": []}, stream=True):
            received.append(chunk)
    assert len(received) == 1


async def test_refused_connection_and_read_timeout_are_told_apart(client_for: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    refused = build_upstream(upstream_config("vllm", f"http://127.0.0.1:{port}/v1"), counter=None)
    with pytest.raises(UpstreamUnavailable):
        await collect(refused, {"model": "x", "messages": []})
    await refused.aclose()
    slow = await client_for(Scripted(hang(2)), "vllm", read_timeout_s=0.2)
    with pytest.raises(UpstreamTimeout):
        await collect(slow, {"model": "x", "messages": []})


async def test_non_streaming_response_becomes_one_chunk_with_the_whole_message(client_for: Any) -> None:
    scripted = Scripted(respond(json_body={
        "id": "c1", "model": "x", "usage": {"prompt_tokens": 5, "completion_tokens": 1},
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None,
            "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]}))
    [chunk] = await collect(await client_for(scripted), {"model": "x", "messages": []}, stream=False)
    assert chunk["choices"][0]["delta"]["tool_calls"][0]["index"] == 0
    assert chunk["choices"][0]["finish_reason"] == "tool_calls" and chunk["usage"]["prompt_tokens"] == 5
    assert "stream_options" not in scripted.bodies[0]


async def test_demo_thinks_when_asked_honours_max_tokens_and_reports_usage(counter: Any) -> None:
    config = upstream_config("demo", first_token_s=0, tokens_per_s=0)
    demo = DemoUpstream(config, counter)
    messages = [{"role": "user", "content": "write python code"}]
    chunks = await collect(demo, {"model": "Hermes-4-405B", "messages": messages, "reasoning": True})
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text.startswith("<think>\n") and "```python" in text
    assert chunks[-1]["usage"]["prompt_tokens"] == counter.count_prompt(messages, system_prompt=DEEP_THINKING_PROMPT)
    assert all("(simulated)" in c["model"] for c in chunks)
    short = await collect(demo, {"model": "m", "messages": messages, "max_tokens": 5})
    finishes = [c["choices"][0]["finish_reason"] for c in short if c["choices"]]
    assert finishes[-1] == "length"


@pytest.mark.slow
async def test_litellm_upstream_reaches_an_openai_compatible_host(aiohttp_server: Any) -> None:
    script = Script(dialect="nous")
    server = await aiohttp_server(make_upstream_app(script))
    config = parse_config({"upstreams": [{"name": "ll", "kind": "litellm", "base_url": str(server.make_url("/v1")),
                                          "api_key_env": "K"}],
                           "models": {"m": {"routes": [{"upstream": "ll", "model": "openai/Hermes-4-405B"}]}},
                           "ledger": {"url": "memory://"}}, env={"K": KEY}).upstreams[0]
    upstream = build_upstream(config, counter=None)
    chunks = await collect(upstream, {"model": "openai/Hermes-4-405B", "messages": [{"role": "user", "content": "hi"}],
                                      "max_tokens": 64})
    text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices"))
    assert text == ANSWER
    assert script.requests[0]["model"] == "Hermes-4-405B"
    assert script.headers_seen[0]["Authorization"] == f"Bearer {KEY}"
    assert any(c.get("usage") for c in chunks)
