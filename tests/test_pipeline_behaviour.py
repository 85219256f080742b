"""What the pipeline-and-dialects restructuring fixed, each against a fake upstream that does what real hosts do:
usage repeated cumulatively, <think> prefilled by the template, a reasoning budget OpenRouter does not enforce for
Hermes 4, hidden reasoning that sends nothing for minutes, a failure after a role-only first chunk."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest

import hermes_proxy.pipeline.answer as answer_stage
from hermes_proxy.config import parse_config
from hermes_proxy.errors import UpstreamUnavailable
from hermes_proxy.pipeline.plan import BIG_PROMPT_CHARS, prompt_size
from hermes_proxy.upstreams import build_upstream
from tests.fake_upstream import ANSWER, REASONING, Script
from tests.proxy_harness import HELLO, SECRET, ProxyFactory, _proxy_with_routes


def _config(url: str, kind: str, *, upstream: dict[str, Any] | None = None,
            route: dict[str, Any] | None = None) -> Any:
    return parse_config({
        "server": {"auth": "none"}, "ledger": {"url": "memory://"},
        "upstreams": [{"name": "primary", "kind": kind, "base_url": url, "api_key_env": "UPSTREAM_KEY",
                       "max_retries": 0, "retry_backoff_s": 0, **(upstream or {})}],
        "models": {"hermes-4-405b": {"routes": [{"upstream": "primary", "model": "Hermes-4-405B",
                                                 "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 3.0,
                                                 **(route or {})}]}},
    }, env={"UPSTREAM_KEY": SECRET})


async def _sse(p: Any, body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The events of a streamed answer, and the SSE comment lines, as a client reads them off the wire."""
    response = await p.client.post("/v1/chat/completions", json={**body, "stream": True})
    assert response.status == 200
    text = await response.text()
    events = [json.loads(line[6:]) for line in text.splitlines()
              if line.startswith("data: ") and line != "data: [DONE]"]
    comments = [line for line in text.splitlines() if line.startswith(":")]
    return events, comments


def _joined(events: list[dict[str, Any]], field: str) -> str:
    return "".join(e["choices"][0]["delta"].get(field) or "" for e in events if e.get("choices"))


# --- usage repeated cumulatively --------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_usage_repeated_cumulatively_in_every_chunk_is_billed_once(proxy: ProxyFactory, stream: bool) -> None:
    script = Script(dialect="vllm", cumulative_usage=True, piece=2)
    p = await proxy(script)
    body = {"model": "hermes-4-405b", "messages": HELLO, "stream_options": {"include_usage": True}}
    if stream:
        events, _ = await _sse(p, body)
        usage = events[-1]["usage"]
    else:
        body.pop("stream_options")
        response = await p.client.post("/v1/chat/completions", json=body)
        usage = (await response.json())["usage"]
        assert response.headers["x-hermes-cost-usd"] == "0.000091"
    expected_cost = Decimal(31) * Decimal(1) / 10**6 + Decimal(20) * Decimal(3) / 10**6
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (31, 20)
    assert Decimal(str(usage["cost"])) == expected_cost
    (row,) = await p.rows()
    assert (row.prompt_tokens, row.completion_tokens) == (31, 20)
    assert row.cost_usd == expected_cost and not row.estimated


# --- <think> prefilled by the template --------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_reasoning_whose_think_the_template_prefilled_is_reasoning(proxy: ProxyFactory, stream: bool) -> None:
    script = Script(dialect="vllm", prefill_think=True, piece=3)
    started = await proxy(script)
    p = await proxy(config=_config(started.config.upstreams[0].base_url, "vllm",
                                   upstream={"prefills_think": True}))
    body = {"model": "hermes-4-405b:thinking", "messages": HELLO}
    if stream:
        events, _ = await _sse(p, body)
        reasoning, content = _joined(events, "reasoning_content"), _joined(events, "content")
    else:
        message = (await (await p.client.post("/v1/chat/completions", json=body)).json())["choices"][0]["message"]
        reasoning, content = message["reasoning_content"], message["content"]
    assert reasoning == REASONING
    assert content == ANSWER and "</think>" not in content
    (row,) = await p.rows()
    assert row.reasoning and row.reasoning_tokens > 0


async def test_a_prefilled_think_is_recognised_without_the_setting_when_the_whole_answer_is_known(
        proxy: ProxyFactory) -> None:
    p = await proxy(Script(dialect="vllm", prefill_think=True))
    completion = await p.sdk().chat.completions.create(model="hermes-4-405b:thinking", messages=HELLO)
    message = completion.choices[0].message
    assert message.content == ANSWER
    assert message.model_extra["reasoning_content"] == REASONING


async def test_a_prefilled_think_stops_at_the_reasoning_budget(proxy: ProxyFactory) -> None:
    script = Script(dialect="vllm", prefill_think=True, piece=2, reasoning_text="word " * 200)
    started = await proxy(script)
    p = await proxy(config=_config(started.config.upstreams[0].base_url, "vllm",
                                   upstream={"prefills_think": True}))
    events, _ = await _sse(p, {"model": "hermes-4-405b:thinking", "messages": HELLO, "max_reasoning_tokens": 10})
    assert len(script.requests) == 2 and script.requests[1]["continue_final_message"] is True
    assert _joined(events, "content") == ANSWER
    assert len(_joined(events, "reasoning_content")) < len("word " * 200)


# --- OpenRouter reasoning budgets -------------------------------------------------------------------------------


async def test_openrouter_reasoning_budget_is_enforced_by_the_proxy(proxy: ProxyFactory) -> None:
    script = Script(dialect="openrouter", reasoning_text="step " * 300, piece=5)
    p = await proxy(script)
    events, _ = await _sse(p, {"model": "hermes-4-405b", "messages": HELLO, "stream_options": {"include_usage": True},
                               "reasoning": {"enabled": True, "max_tokens": 12}})
    first, follow = script.requests
    assert first["reasoning"] == {"enabled": True}  # no max_tokens: OpenRouter does not honour it for Hermes 4
    assert follow["reasoning"] == {"enabled": False} and "step" in follow["messages"][0]["content"]
    assert _joined(events, "content") == ANSWER
    assert len(_joined(events, "reasoning_content")) < len("step " * 300) / 2
    usage = events[-1]["usage"]
    (row,) = await p.rows()
    # two upstream calls, both billed: the cut one (counted here, estimated: we hung up before its usage) and the
    # follow-up (its own usage, with OpenRouter's cost)
    assert row.completion_tokens == usage["completion_tokens"] > 20 and row.estimated
    assert row.prompt_tokens == usage["prompt_tokens"] > 31


async def test_openrouter_route_that_honours_max_tokens_gets_the_budget(proxy: ProxyFactory) -> None:
    script = Script(dialect="openrouter")
    started = await proxy(script)
    p = await proxy(config=_config(started.config.upstreams[0].base_url, "openrouter",
                                   route={"honours_reasoning_budget": True}))
    events, _ = await _sse(p, {"model": "hermes-4-405b", "messages": HELLO,
                               "reasoning": {"enabled": True, "max_tokens": 12}})
    assert [r["reasoning"] for r in script.requests] == [{"enabled": True, "max_tokens": 12}]
    assert _joined(events, "content") == ANSWER


# --- hidden reasoning stays alive ---------------------------------------------------------------------------------


async def test_hidden_reasoning_streams_send_keepalives(proxy: ProxyFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answer_stage, "KEEPALIVE_S", 0.02)
    script = Script(dialect="openrouter", reasoning_text="thinking " * 20, piece=9, delay_s=0.01)
    p = await proxy(script)
    events, comments = await _sse(p, {"model": "hermes-4-405b:thinking", "messages": HELLO,
                                      "reasoning_format": "hidden"})
    assert comments.count(": keep-alive") >= 3
    assert _joined(events, "content") == ANSWER and _joined(events, "reasoning_content") == ""


# --- failover until the first content ---------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
async def test_a_failure_after_a_role_only_chunk_still_fails_over(proxy: ProxyFactory, stream: bool) -> None:
    primary = Script(dialect="vllm", die_after=0)
    secondary = Script(dialect="vllm")
    p = await _proxy_with_routes(proxy, [primary, secondary])
    if stream:
        events, _ = await _sse(p, {"model": "hermes-4-405b", "messages": HELLO})
        content = _joined(events, "content")
        assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    else:
        # a client that does not stream, with a reasoning budget: the proxy streams from the upstream
        completion = await p.sdk().chat.completions.create(model="hermes-4-405b:thinking", messages=HELLO,
                                                           extra_body={"max_reasoning_tokens": 100})
        content = completion.choices[0].message.content or ""
    assert content == ANSWER
    assert len(primary.requests) == 2 and len(secondary.requests) == 1  # one retry, then the next route
    (row,) = await p.rows()
    assert row.status == "ok" and row.route.startswith("up1:")


# --- large prompts, closed clients ------------------------------------------------------------------------------


def test_prompt_size_counts_content_parts_so_big_prompts_are_counted_off_the_event_loop() -> None:
    text = "x" * (BIG_PROMPT_CHARS + 1)
    as_parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}
    assert prompt_size(as_parts) > BIG_PROMPT_CHARS
    assert prompt_size({"messages": [{"role": "user", "content": text}]}) > BIG_PROMPT_CHARS
    assert prompt_size({"messages": [{"role": "user", "content": "hi"}]}) < BIG_PROMPT_CHARS


async def test_a_closed_upstream_client_never_opens_a_new_session() -> None:
    config = _config("http://127.0.0.1:9/v1", "vllm")
    upstream = build_upstream(config.upstreams[0], counter=None)
    await upstream.aclose()
    with pytest.raises(UpstreamUnavailable, match="closed"):
        await anext(upstream.chat({"model": "m", "messages": HELLO}, stream=True))
    assert getattr(upstream, "_session", None) is None


async def test_a_reload_waits_for_a_call_that_has_not_reached_its_upstream_yet(proxy: ProxyFactory) -> None:
    script = Script(dialect="vllm")
    p = await proxy(script)
    from hermes_proxy.appkeys import current_gateway

    gateway = current_gateway(p.client.app)  # type: ignore[arg-type]
    call = gateway.chat({"model": "hermes-4-405b", "messages": HELLO}, _principal(p))
    entering = asyncio.ensure_future(call.__aenter__())
    await asyncio.sleep(0)
    retired = asyncio.ensure_future(gateway.wait_idle())
    await asyncio.sleep(0.05)
    assert not retired.done()  # the call counts from its first step, not from its first upstream byte
    await entering
    async for _ in call:
        pass
    await call.__aexit__(None, None, None)
    await asyncio.wait_for(retired, 2)


def _principal(p: Any) -> Any:
    from hermes_proxy.pipeline import Principal

    team = p.config.team(p.config.chat.team)
    return Principal(team=team)
