"""HTTP mode: the real ``openai`` SDK against a small OpenAI-compatible aiohttp server speaking hermes-proxy's dialect."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from fake_backend import wait_for
from textual.widgets import Static

from tui.app import HermesChatApp
from tui.backend import BackendError, BudgetInfo, ContentDelta, Finished, ReasoningDelta, Started, StreamEvent
from tui.http_backend import HttpBackend
from tui.store import Store
from tui.widgets.messages import AssistantMessage, ReasoningBlock

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]

MODEL = {
    "id": "hermes-4-405b", "object": "model", "created": 0, "owned_by": "hermes-proxy",
    "context_window": 131072, "pricing": {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 3.0},
    "simulated": True, "upstream": "demo (simulated)",
}
BUDGET_HEADERS = {
    "x-hermes-budget-remaining-usd": "4.9900",
    "x-hermes-budget-warning": "team default is past 80% of its daily budget",
    "x-hermes-reasoning": "on",
}


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, usage: dict[str, Any] | None = None,
          ) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
                            "model": "hermes-4-405b", "choices": []}
    if delta is not None or finish is not None:
        body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    if usage is not None:
        body["usage"] = usage
    return body


USAGE = {"prompt_tokens": 20, "completion_tokens": 30, "total_tokens": 50,
         "completion_tokens_details": {"reasoning_tokens": 10}, "cost": 0.00011}
CHUNKS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"reasoning_content": "The user greets me.", "reasoning": "The user greets me."}),
    chunk({"reasoning_content": " Answer kindly."}),
    chunk({"content": "Hello"}),
    chunk({"content": " **there**!"}),
    chunk(finish="stop"),
    chunk(usage=USAGE),
]


class FakeProxy:
    """An OpenAI-compatible server: scripted SSE chunks, hermes headers, or an error."""

    def __init__(self, chunks: list[dict[str, Any]] | None = None, *, status: int = 200,
                 error: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
                 hold_after: int | None = None, split: bool = False, drop_after: int | None = None) -> None:
        self.chunks = CHUNKS if chunks is None else chunks
        self.status = status
        self.error = error
        self.headers = BUDGET_HEADERS if headers is None else headers
        self.hold_after = hold_after
        self.split = split
        self.drop_after = drop_after
        self.requests: list[dict[str, Any]] = []
        self.authorization: list[str | None] = []
        self.disconnected = asyncio.Event()
        self.held = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [MODEL]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await request.json())
        self.authorization.append(request.headers.get("Authorization"))
        if self.status != 200:
            return web.json_response({"error": self.error}, status=self.status)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **self.headers})
        await response.prepare(request)
        try:
            for index, body in enumerate(self.chunks):
                if index == self.hold_after:
                    self.held.set()
                    await asyncio.sleep(30)
                if index == self.drop_after:
                    assert request.transport is not None
                    request.transport.close()  # the connection is cut without an end to the chunked body
                    return response
                data = f"data: {json.dumps(body)}\n\n".encode()
                if self.split:
                    half = len(data) // 2
                    await response.write(data[:half])
                    await asyncio.sleep(0.001)
                    data = data[half:]
                await response.write(data)
            if self.error is not None:
                await response.write(f"data: {json.dumps({'error': self.error})}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
        except (asyncio.CancelledError, ConnectionResetError):
            self.disconnected.set()
            raise
        return response


async def start(aiohttp_server: ServerFactory, proxy: FakeProxy) -> HttpBackend:
    server = await aiohttp_server(proxy.app())
    return HttpBackend(str(server.make_url("")), "sk-team-key")


async def collect(backend: HttpBackend, reasoning: bool = True) -> list[StreamEvent]:
    return [event async for event in backend.stream(model="hermes-4-405b", reasoning=reasoning,
                                                      messages=[{"role": "user", "content": "hi"}])]


async def test_models_carry_the_proxy_extras(aiohttp_server: ServerFactory) -> None:
    backend = await start(aiohttp_server, FakeProxy())
    (model,) = await backend.models()
    assert model.alias == "hermes-4-405b"
    assert model.context_window == 131072
    assert (model.input_usd_per_mtok, model.output_usd_per_mtok) == (Decimal("1.0"), Decimal("3.0"))
    assert model.simulated and model.upstream == "demo (simulated)"
    assert backend.simulated
    await backend.aclose()


@pytest.mark.parametrize("split", [False, True])
async def test_stream_reads_reasoning_content_usage_cost_and_budget_headers(aiohttp_server: ServerFactory,
                                                                            split: bool) -> None:
    proxy = FakeProxy(split=split)
    backend = await start(aiohttp_server, proxy)
    await backend.models()
    events = await collect(backend)
    budget = BudgetInfo(Decimal("4.9900"), "team default is past 80% of its daily budget", "")
    assert events[0] == Started("hermes-4-405b · demo (simulated)", True, None, budget, reasoning=True)
    assert [e for e in events if isinstance(e, ReasoningDelta)] == [
        ReasoningDelta("The user greets me."), ReasoningDelta(" Answer kindly.")]
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "Hello **there**!"
    finished = events[-1]
    assert finished == Finished(prompt_tokens=20, completion_tokens=30, reasoning_tokens=10,
                                cost_usd=Decimal("0.00011"), estimated=False, finish_reason="stop",
                                budget=BudgetInfo(Decimal("4.98989"), budget.warning, ""))
    assert await backend.budget() == finished.budget
    (request,) = proxy.requests
    assert request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}
    assert request["reasoning"] is True
    assert request["messages"] == [{"role": "user", "content": "hi"}]
    assert proxy.authorization == ["Bearer sk-team-key"]
    await backend.aclose()


async def test_reasoning_off_is_sent_and_estimated_usage_is_flagged(aiohttp_server: ServerFactory) -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "estimated": True}
    proxy = FakeProxy([chunk({"content": "Hi"}), chunk(finish="length"), chunk(usage=usage)], headers={})
    backend = await start(aiohttp_server, proxy)
    events = await collect(backend, reasoning=False)
    assert proxy.requests[0]["reasoning"] is False
    assert events[0] == Started("hermes-4-405b", False, None, None, reasoning=None)
    assert events[-1] == Finished(5, 2, 0, None, True, "length", None)
    await backend.aclose()


@pytest.mark.parametrize(("status", "error", "kind"), [
    (429, {"message": "team 'default' is over its daily budget", "type": "insufficient_quota",
           "code": "insufficient_quota"}, "budget"),
    (401, {"message": "invalid API key", "type": "invalid_request_error", "code": "invalid_api_key"}, "auth"),
    (400, {"message": "model 'x' is not allowed for team default", "type": "invalid_request_error"}, "invalid"),
    (502, {"message": "upstream demo failed: 503", "type": "upstream_error"}, "upstream"),
    (429, {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}, "other"),
])
async def test_errors_map_to_kinds(aiohttp_server: ServerFactory, status: int, error: dict[str, Any],
                                   kind: str) -> None:
    backend = await start(aiohttp_server, FakeProxy(status=status, error=error))
    with pytest.raises(BackendError) as caught:
        await collect(backend)
    assert caught.value.kind == kind
    assert error["message"] in caught.value.message
    assert caught.value.status == status
    await backend.aclose()


async def test_a_mid_stream_error_is_an_upstream_error(aiohttp_server: ServerFactory) -> None:
    proxy = FakeProxy([chunk({"content": "Par"})], error={"message": "upstream dropped the stream",
                                                          "type": "upstream_error"})
    backend = await start(aiohttp_server, proxy)
    seen: list[StreamEvent] = []
    with pytest.raises(BackendError) as caught:
        async for event in backend.stream(model="hermes-4-405b", messages=[], reasoning=False):
            seen.append(event)
    assert caught.value.kind == "upstream"
    assert caught.value.message == "upstream dropped the stream"
    assert ContentDelta("Par") in seen
    await backend.aclose()


async def test_a_closed_port_is_a_network_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = HttpBackend(f"http://127.0.0.1:{port}", None)
    with pytest.raises(BackendError) as caught:
        await collect(backend)
    assert caught.value.kind == "network"
    with pytest.raises(BackendError) as caught:
        await backend.models()
    assert caught.value.kind == "network"
    await backend.aclose()


async def test_a_connection_cut_mid_stream_is_a_network_error(aiohttp_server: ServerFactory) -> None:
    backend = await start(aiohttp_server, FakeProxy(drop_after=4))
    seen: list[StreamEvent] = []
    with pytest.raises(BackendError) as caught:
        async for event in backend.stream(model="hermes-4-405b", messages=[], reasoning=False):
            seen.append(event)
    assert caught.value.kind == "network"
    assert "lost the connection" in caught.value.message
    assert ContentDelta("Hello") in seen
    await backend.aclose()


async def test_closing_the_stream_disconnects_from_the_proxy(aiohttp_server: ServerFactory) -> None:
    proxy = FakeProxy(hold_after=4)
    backend = await start(aiohttp_server, proxy)
    stream = backend.stream(model="hermes-4-405b", messages=[], reasoning=True)
    async for event in stream:
        if isinstance(event, ContentDelta):
            break
    await proxy.held.wait()
    await stream.aclose()  # type: ignore[attr-defined]
    await asyncio.wait_for(proxy.disconnected.wait(), 5)
    await backend.aclose()


async def test_the_chat_in_http_mode(aiohttp_server: ServerFactory, store: Store) -> None:
    proxy = FakeProxy()
    server = await aiohttp_server(proxy.app())

    async def factory() -> HttpBackend:
        return HttpBackend(str(server.make_url("/v1")), "sk-team-key")

    app = HermesChatApp(store=store, backend_factory=factory)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.chat_screen
        await wait_for(pilot, lambda: screen.models)
        assert str(screen.query_one("#backend-label").content) == str(server.make_url(""))
        assert screen.query_one("#simulated-badge").display
        screen.reasoning_on = True
        await screen.send("hello")
        await wait_for(pilot, lambda: proxy.requests and screen.reply is None)
        view = screen.query_one(AssistantMessage)
        assert view.content == "Hello **there**!"
        assert view.query_one(ReasoningBlock).title == "Reasoning · 10 tokens"
        assert "⚠" in str(screen.query_one("#usage-budget").content)
        assert screen.query_one("#usage-budget").has_class("-warning")
        assert "$0.0001" in str(screen.query_one("#usage-reply").content)
        assert proxy.requests[0]["reasoning"] is True
    await app.close_backend()


async def test_exact_prompt_tokens_and_the_reservation_come_from_the_proxy_headers(
        aiohttp_server: ServerFactory) -> None:
    headers = {**BUDGET_HEADERS, "x-hermes-prompt-tokens": "20", "x-hermes-reserved-usd": "0.3000",
               "x-hermes-budget-remaining-usd": "0.2500"}
    proxy = FakeProxy(headers=headers)
    backend = await start(aiohttp_server, proxy)
    await backend.models()
    events = await collect(backend)
    started = events[0]
    assert isinstance(started, Started)
    assert started.prompt_tokens == 20  # exact from the first token on, not the local estimate
    assert started.budget is not None and started.budget.reserved_usd == Decimal("0.3000")
    assert started.budget.short_of_reservation
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.budget is not None
    assert finished.budget.reserved_usd == Decimal("0.3000")
    assert finished.budget.remaining_usd == Decimal("0.24989")
    await backend.aclose()


async def test_the_conversations_temperature_and_max_tokens_are_sent_only_when_set(
        aiohttp_server: ServerFactory) -> None:
    proxy = FakeProxy()
    backend = await start(aiohttp_server, proxy)
    messages = [{"role": "user", "content": "hi"}]
    [e async for e in backend.stream(model="hermes-4-405b", messages=messages, reasoning=False,
                                     temperature=0.3, max_tokens=256)]
    [e async for e in backend.stream(model="hermes-4-405b", messages=messages, reasoning=False)]
    assert proxy.requests[0]["temperature"] == 0.3 and proxy.requests[0]["max_tokens"] == 256
    assert "temperature" not in proxy.requests[1] and "max_tokens" not in proxy.requests[1]
    await backend.aclose()


async def test_an_answer_from_the_proxys_cache_says_what_it_saved(aiohttp_server: ServerFactory, store: Store) -> None:
    proxy = FakeProxy(headers={**BUDGET_HEADERS, "x-hermes-cache": "hit", "x-hermes-cache-saved-usd": "0.00011"})
    server = await aiohttp_server(proxy.app())

    async def factory() -> HttpBackend:
        return HttpBackend(str(server.make_url("/v1")), "sk-team-key")

    events = await collect(await factory())
    assert isinstance(events[-1], Finished) and events[-1].saved_usd == Decimal("0.00011")
    app = HermesChatApp(store=store, backend_factory=factory)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.chat_screen
        await wait_for(pilot, lambda: screen.models)
        await screen.send("hello")
        await wait_for(pilot, lambda: proxy.requests and screen.reply is None)
        meta = str(screen.query_one(AssistantMessage).query_one(".message-meta", Static).content)
        assert "from the cache, saved $0.0001" in meta
    await app.close_backend()
