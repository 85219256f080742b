"""The Responses API (``/v1/responses``) through the real openai SDK, on the same pipeline as chat completions: the
demo upstream and a host answering in raw Hermes text (tests/fake_upstream.py); every streamed event checked against
the SDK's own typed event models."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import openai
import pytest
from aiohttp.test_utils import TestClient
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from hermes_proxy.app import create_app
from hermes_proxy.appkeys import LEDGER, current_gateway
from hermes_proxy.config import parse_config
from hermes_proxy.errors import ConfigError
from hermes_proxy.ledger import open_ledger
from hermes_proxy.ledger.sqlite import SQLiteLedger
from hermes_proxy.responses.store import (
    MemoryResponseStore,
    ResponseStore,
    StoredResponse,
    open_response_store,
)
from hermes_proxy.sse import SSEDecoder
from tests.fake_upstream import ANSWER, REASONING, Script
from tests.proxy_harness import ProxyFactory

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                           "unit": {"type": "string", "enum": ["c", "f"]}},
                          "required": ["city"], "additionalProperties": False}}
RAW_CALLS = ('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}}\n'
             '</tool_call>')


async def sse_events(client: TestClient, body: dict[str, Any], headers: dict[str, str] | None = None
                     ) -> list[dict[str, Any]]:
    """The raw events of a streamed response, each validated with the SDK's ResponseStreamEvent type adapter."""
    response = await client.post("/v1/responses", json={**body, "stream": True}, headers=headers or {})
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    decoder = SSEDecoder()
    raw = decoder.feed(await response.read()) + decoder.finish()
    events = []
    for event in raw:
        data = json.loads(event.data)
        assert event.event == data["type"]
        EVENTS.validate_python(data)  # raises on any field the SDK's model does not accept
        events.append(data)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def check_sequence(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The order the SDK's accumulator needs; returns the final response."""
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in ("response.completed", "response.incomplete", "response.failed")
    final = events[-1]["response"]
    Response.model_validate(final)
    opened: dict[int, dict[str, Any]] = {}
    for event in events[2:-1]:
        index = event.get("output_index")
        if event["type"] == "response.output_item.added":
            assert index == len(opened) and index not in opened
            opened[index] = {"item": event["item"], "text": "", "done": False}
        elif event["type"] in ("response.output_text.delta", "response.reasoning_summary_text.delta",
                               "response.function_call_arguments.delta"):
            assert not opened[index]["done"]
            opened[index]["text"] += event["delta"]
        elif event["type"] == "response.output_item.done":
            opened[index]["done"] = True
            assert event["item"] == final["output"][index]
    assert all(entry["done"] for entry in opened.values())
    assert len(opened) == len(final["output"])
    for index, entry in opened.items():
        item = final["output"][index]
        if item["type"] == "reasoning":
            assert item["summary"][0]["text"] == entry["text"]
        elif item["type"] == "function_call":
            assert item["arguments"] == entry["text"]
        else:
            assert item["content"][0]["text"] == entry["text"].lstrip()
    return final


def texts(response: Response) -> tuple[str, str]:
    """(reasoning summary text, output text)."""
    reasoning = "".join(s.text for item in response.output if item.type == "reasoning" for s in item.summary)
    return reasoning, response.output_text


# --- the basics ----------------------------------------------------------------------------------------------------


async def test_a_string_input_on_the_demo_costs_what_the_ledger_billed(proxy: ProxyFactory) -> None:
    p = await proxy()
    raw = await p.sdk().responses.with_raw_response.create(model="hermes-4-405b", input="hello")
    response = raw.parse()
    assert response.status == "completed" and response.object == "response"
    assert response.output_text and response.model == "hermes-4-405b (simulated)"
    assert [item.type for item in response.output] == ["message"]  # reasoning off by default
    (row,) = await p.rows()
    assert response.id == "resp_" + row.request_id.removeprefix("req_")
    usage = response.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.output_tokens_details.reasoning_tokens) == (
        row.prompt_tokens, row.completion_tokens, row.reasoning_tokens)
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.total_tokens == row.prompt_tokens + row.completion_tokens
    assert usage.model_extra is not None and usage.model_extra["cost"] == pytest.approx(float(row.cost_usd))
    headers = raw.headers
    assert headers["x-hermes-request-id"] == row.request_id
    assert float(headers["x-hermes-cost-usd"]) == pytest.approx(float(row.cost_usd))
    assert headers["x-hermes-reasoning"] == "off; source=model" and "x-hermes-route" in headers
    assert row.status == "ok" and row.model == "hermes-4-405b"


async def test_items_and_instructions_become_the_chat_messages(proxy: ProxyFactory) -> None:
    script = Script(dialect="nous")
    p = await proxy(script)
    response = await p.sdk().responses.create(
        model="hermes-4-405b", instructions="Answer briefly.", temperature=0.2, max_output_tokens=300,
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
               {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello."}]},
               {"role": "developer", "content": "Be kind."},
               {"role": "user", "content": [{"type": "input_text", "text": "How are"},
                                            {"type": "input_text", "text": "you?"}]}],
        metadata={"ticket": "42"}, user="u-1")
    assert response.output_text == ANSWER
    assert response.instructions == "Answer briefly." and response.metadata == {"ticket": "42"}
    assert response.temperature == 0.2 and response.max_output_tokens == 300
    sent = script.requests[0]
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "developer", "user"]
    assert "Answer briefly." in sent["messages"][0]["content"]
    assert sent["messages"][1]["content"] == "Hi" and sent["messages"][2]["content"] == "Hello."
    assert "How are" in json.dumps(sent["messages"][4]) and "you?" in json.dumps(sent["messages"][4])
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 300 and sent["user"] == "u-1"
    assert "metadata" not in sent and "instructions" not in sent and "input" not in sent


@pytest.mark.parametrize("stream", [False, True])
async def test_reasoning_on_is_a_reasoning_item_with_the_thinking_as_summary(proxy: ProxyFactory,
                                                                            stream: bool) -> None:
    script = Script(dialect="vllm", piece=3)
    p = await proxy(script)
    request: dict[str, Any] = {"model": "hermes-4-405b", "input": "hello",
                               "reasoning": {"effort": "high", "summary": "auto"}}
    if stream:
        final = check_sequence(await sse_events(p.client, request))
        response = Response.model_validate(final)
    else:
        response = await p.sdk().responses.create(**request)
    reasoning, answer = texts(response)
    assert reasoning == REASONING and answer == ANSWER
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert script.requests[0]["chat_template_kwargs"] == {"thinking": True}
    assert response.reasoning is not None and response.reasoning.effort == "high"


@pytest.mark.parametrize("reasoning", [{"effort": "none"}, {"effort": "none", "summary": "auto"}])
async def test_effort_none_turns_reasoning_off(proxy: ProxyFactory, reasoning: dict[str, Any]) -> None:
    script = Script(dialect="vllm")
    p = await proxy(script)
    raw = await p.sdk().responses.with_raw_response.create(model="hermes-4-405b:thinking", input="hi",
                                                           reasoning=reasoning)  # type: ignore[arg-type]
    assert raw.status_code == 200
    response = raw.parse()
    assert [item.type for item in response.output] == ["message"]
    assert raw.headers["x-hermes-reasoning"] == "off; source=request"


async def test_an_effort_is_a_reasoning_budget(proxy: ProxyFactory) -> None:
    p = await proxy()
    raw = await p.sdk().responses.with_raw_response.create(model="hermes-4-405b", input="hi",
                                                           reasoning={"effort": "minimal"})
    assert raw.headers["x-hermes-reasoning"] == "on; source=request"
    usage = raw.parse().usage
    assert usage is not None and 0 < usage.output_tokens_details.reasoning_tokens <= 1024


# --- streaming -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reasoning", [True, False])
async def test_streamed_events_are_the_sdks_and_build_the_final_response(proxy: ProxyFactory,
                                                                         reasoning: bool) -> None:
    p = await proxy()
    request: dict[str, Any] = {"model": "hermes-4-405b", "input": "Explain streaming",
                               "reasoning": {"effort": "medium" if reasoning else "none", "summary": "auto"}}
    events = await sse_events(p.client, request)
    final = check_sequence(events)
    assert final["status"] == "completed" and events[-1]["type"] == "response.completed"
    types = [item["type"] for item in final["output"]]
    assert types == (["reasoning", "message"] if reasoning else ["message"])
    (row,) = await p.rows()
    assert final["usage"]["output_tokens"] == row.completion_tokens
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] == row.reasoning_tokens
    assert final["usage"]["cost"] == pytest.approx(float(row.cost_usd))
    # the same stream through the SDK's own accumulator
    async with p.sdk().responses.stream(**request) as stream:
        deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        response = await stream.get_final_response()
    assert "".join(deltas) == response.output_text and response.status == "completed"
    assert bool(texts(response)[0]) is reasoning


async def test_a_stream_cut_at_max_output_tokens_is_incomplete(proxy: ProxyFactory) -> None:
    p = await proxy(Script(dialect="vllm", piece=1))
    events = await sse_events(p.client, {"model": "hermes-4-405b", "input": "hello", "max_output_tokens": 5})
    final = check_sequence(events)
    assert events[-1]["type"] == "response.incomplete" and final["status"] == "incomplete"
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][-1]["status"] == "incomplete"


async def test_an_upstream_failure_mid_stream_is_response_failed_and_billed(proxy: ProxyFactory) -> None:
    p = await proxy(Script(dialect="openrouter", error_chunk_after=3))
    events = await sse_events(p.client, {"model": "hermes-4-405b", "input": "hello"})
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    final = events[-1]["response"]
    assert final["status"] == "failed" and "provider disconnected" in final["error"]["message"]
    assert events[-2]["code"] == "upstream_stream_error"
    (row,) = await p.rows()
    assert row.status == "upstream_error" and row.completion_tokens > 0


# --- tools ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_the_demo_calls_a_function_then_answers_from_its_output(proxy: ProxyFactory, stream: bool) -> None:
    p = await proxy()
    sdk = p.sdk()
    request: dict[str, Any] = {"model": "hermes-4-405b", "input": "What is the weather in Oslo?", "tools": [WEATHER]}
    if stream:
        first = Response.model_validate(check_sequence(await sse_events(p.client, request)))
    else:
        first = await sdk.responses.create(**request)
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and calls[0].call_id
    jsonschema.validate(json.loads(calls[0].arguments), WEATHER["parameters"])  # type: ignore[arg-type]
    second = await sdk.responses.create(
        model="hermes-4-405b", previous_response_id=first.id, tools=[WEATHER],  # type: ignore[list-item]
        input=[{"type": "function_call_output", "call_id": calls[0].call_id,
                "output": '{"temperature": 3, "sky": "clear"}'}])
    assert second.previous_response_id == first.id
    assert [item.type for item in second.output] == ["message"] and "3" in second.output_text


@pytest.mark.parametrize("stream", [False, True])
async def test_raw_hermes_tool_calls_are_function_call_items(proxy: ProxyFactory, stream: bool) -> None:
    script = Script(dialect="nous", answer=RAW_CALLS, piece=5)
    p = await proxy(script)
    request: dict[str, Any] = {"model": "hermes-4-405b", "input": "weather?", "tools": [WEATHER],
                               "tool_choice": {"type": "function", "name": "get_weather"}}
    if stream:
        response = Response.model_validate(check_sequence(await sse_events(p.client, request)))
    else:
        response = await p.sdk().responses.create(**request)
    assert [item.type for item in response.output] == ["message", "function_call"]
    assert response.output_text.strip() == "Let me check."
    call = response.output[1]
    assert call.type == "function_call" and call.call_id.startswith("call_")
    assert json.loads(call.arguments) == {"city": "Oslo", "unit": "c"}
    assert "get_weather" in script.requests[0]["messages"][0]["content"]  # rendered <tools>


async def test_function_call_history_items_become_tool_calls_and_tool_messages(proxy: ProxyFactory) -> None:
    script = Script(dialect="vllm", answer="It is 3 degrees.")
    p = await proxy(script)
    await p.sdk().responses.create(model="hermes-4-405b", tools=[WEATHER], input=[  # type: ignore[list-item]
        {"role": "user", "content": "weather in Oslo?"},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "I should call it."}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": '{"temperature": 3}'}])
    sent = script.requests[0]["messages"]  # tools rendered as Hermes text (the upstream's default)
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    assert "<tools>" in sent[0]["content"] and "get_weather" in sent[0]["content"]
    assert "<tool_call>" in sent[2]["content"] and '{"city":"Oslo"}' in sent[2]["content"]
    assert "I should call it" not in json.dumps(sent)  # earlier reasoning is not sent back
    assert "<tool_response>" in sent[3]["content"] and '"temperature": 3' in sent[3]["content"]


async def test_a_built_in_tool_is_a_clear_400(proxy: ProxyFactory) -> None:
    p = await proxy()
    with pytest.raises(openai.BadRequestError) as caught:
        await p.sdk().responses.create(model="hermes-4-405b", input="news?", tools=[{"type": "web_search"}])
    assert caught.value.code == "unsupported_tool"
    assert "web_search" in caught.value.message and "function tool" in caught.value.message
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == "tools[0].type"
    assert await p.rows() == []


async def test_the_pipelines_400s_name_the_responses_fields(proxy: ProxyFactory) -> None:
    p = await proxy()
    bad_tool = {"type": "function", "name": "a b", "parameters": {"type": "object"}}
    for body, param in (({"tools": [bad_tool]}, "tools[0].name"), ({"max_output_tokens": 0}, "max_output_tokens"),
                        ({"text": {"format": {"type": "json_schema", "name": "x y", "schema": {}}}},
                         "text.format.name"),
                        ({"input": [{"type": "image_generation_call", "id": "x"}]}, "input[0].type")):
        response = await p.client.post("/v1/responses", json={"model": "hermes-4-405b", "input": "hi", **body})
        assert response.status == 400, body
        error = (await response.json())["error"]
        assert error["param"] == param and "function." not in error["message"], error


# --- structured output ---------------------------------------------------------------------------------------------


class City(BaseModel):
    name: str
    population: int


async def test_text_format_json_schema_parses_on_the_demo(proxy: ProxyFactory) -> None:
    p = await proxy()
    response = await p.sdk().responses.parse(model="hermes-4-405b", input="A big city", text_format=City)
    assert isinstance(response.output_parsed, City) and response.output_parsed.name


async def test_a_fenced_json_answer_parses_streamed_and_not(proxy: ProxyFactory) -> None:
    script = Script(dialect="nous", answer='```json\n{"name": "Oslo", "population": 709000}\n```')
    p = await proxy(script)
    response = await p.sdk().responses.parse(model="hermes-4-405b", input="Oslo", text_format=City)
    assert response.output_parsed == City(name="Oslo", population=709000)
    async with p.sdk().responses.stream(model="hermes-4-405b", input="Oslo", text_format=City) as stream:
        final = await stream.get_final_response()
    assert final.output_parsed == City(name="Oslo", population=709000)
    assert "<schema>" in script.requests[0]["messages"][0]["content"]


async def test_an_answer_that_breaks_the_strict_schema_is_a_422(proxy: ProxyFactory) -> None:
    p = await proxy(Script(dialect="nous", answer='{"name": "Oslo"}'))
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        await p.sdk().responses.parse(model="hermes-4-405b", input="Oslo", text_format=City)
    assert caught.value.code == "invalid_structured_output"
    (row,) = await p.rows()
    assert row.status == "error" and row.cost_usd > 0


# --- stored responses ----------------------------------------------------------------------------------------------

ADMIN = "admin-secret-for-tests"


@pytest.fixture
async def keyed(aiohttp_client: Any, counter: Any, tmp_path: Path) -> AsyncIterator[tuple[TestClient, str, str]]:
    """The app with key auth, two teams (one with a tiny budget), and a key of each: (client, research, ops)."""
    config = parse_config({
        "server": {"auth": "keys"},
        "upstreams": [{"name": "demo", "kind": "demo", "first_token_s": 0, "tokens_per_s": 0}],
        "models": {"hermes-4-405b": {"routes": [{"upstream": "demo", "model": "Hermes-4-405B",
                                                 "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 3.0}]}},
        "teams": {"research": {}, "ops": {}, "broke": {"budgets": [{"window": "daily", "limit_usd": 0.000001}]}},
        "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.sqlite3'}"},
        "chat": {"team": "research"},
    }, env={"HERMES_ADMIN_KEY": ADMIN})
    client = await aiohttp_client(create_app(config, counter=counter))
    ledger = client.app[LEDGER]
    research, _ = await ledger.create_key("research", "ci")
    ops, _ = await ledger.create_key("ops", "bot")
    yield client, research, ops


def sdk_for(client: TestClient, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=key, max_retries=0, timeout=20)


async def test_stored_responses_are_the_teams_own(keyed: tuple[TestClient, str, str]) -> None:
    client, research_key, ops_key = keyed
    research, ops = sdk_for(client, research_key), sdk_for(client, ops_key)
    created = await research.responses.create(model="hermes-4-405b", input="hello", metadata={"k": "v"})
    fetched = await research.responses.retrieve(created.id)
    assert fetched.model_dump() == created.model_dump()
    for call in (ops.responses.retrieve(created.id), ops.responses.delete(created.id),
                 ops.responses.create(model="hermes-4-405b", input="more", previous_response_id=created.id)):
        with pytest.raises(openai.NotFoundError):
            await call
    follow = await research.responses.create(model="hermes-4-405b", input="and then?",
                                             previous_response_id=created.id)
    assert follow.previous_response_id == created.id
    await research.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        await research.responses.retrieve(created.id)
    # the follow-up carries the whole conversation: it outlives the response it continued
    third = await research.responses.create(model="hermes-4-405b", input="last", previous_response_id=follow.id)
    assert third.status == "completed"
    unstored = await research.responses.create(model="hermes-4-405b", input="private", store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        await research.responses.retrieve(unstored.id)
    response = await client.get(f"/v1/responses/{created.id}")
    assert response.status == 401


async def test_previous_response_id_sends_the_conversation_before(proxy: ProxyFactory) -> None:
    script = Script(dialect="vllm", answer="Noted.")
    p = await proxy(script)
    sdk = p.sdk()
    first = await sdk.responses.create(model="hermes-4-405b", instructions="Old rules.", input="My name is Ada.")
    await sdk.responses.create(model="hermes-4-405b", instructions="New rules.", input="What is my name?",
                               previous_response_id=first.id)
    sent = script.requests[1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[0]["content"] == "New rules." and "Old rules." not in json.dumps(sent)  # not carried over
    assert sent[1]["content"] == "My name is Ada." and sent[2]["content"] == "Noted."
    with pytest.raises(openai.NotFoundError) as caught:
        await sdk.responses.create(model="hermes-4-405b", input="x", previous_response_id="resp_nope")
    assert caught.value.code == "previous_response_not_found"


async def test_a_budget_refusal_is_429_insufficient_quota(keyed: tuple[TestClient, str, str]) -> None:
    client, _, _ = keyed
    key, _ = await client.app[LEDGER].create_key("broke", "b")
    with pytest.raises(openai.RateLimitError) as caught:
        await sdk_for(client, key).responses.create(model="hermes-4-405b", input="hello")
    assert caught.value.code == "insufficient_quota"
    response = await client.post("/v1/responses", json={"model": "hermes-4-405b", "input": "hi", "stream": True},
                                 headers={"Authorization": f"Bearer {key}"})
    assert response.status == 429 and (await response.json())["error"]["type"] == "insufficient_quota"
    await current_gateway(client.app).settled()
    assert await client.app[LEDGER].requests(limit=10) == []


# --- the store, on every backend -----------------------------------------------------------------------------------


def _stored(response_id: str, team: str, *, days: float = 30, now: datetime | None = None) -> StoredResponse:
    created = now or datetime.now(UTC)
    return StoredResponse(id=response_id, team=team, created_at=created, expires_at=created + timedelta(days=days),
                          response={"id": response_id, "output": [{"type": "message", "content": "é"}]},
                          input_items=[{"type": "message", "role": "user", "content": "hi"}])


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ResponseStore]:
    import os

    if request.param == "memory":
        yield MemoryResponseStore()
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    else:
        url = os.environ.get("HERMES_TEST_POSTGRES_URL", "")
        if not url:
            pytest.skip("HERMES_TEST_POSTGRES_URL is not set")
    config = parse_config({"upstreams": [{"name": "demo", "kind": "demo"}],
                           "models": {"m": {"routes": [{"upstream": "demo", "model": "m"}]}},
                           "ledger": {"url": url}}, env={})
    ledger = open_ledger(config.ledger)
    await ledger.start()
    try:
        made = open_response_store(ledger)
        assert not isinstance(made, MemoryResponseStore)
        if request.param == "postgresql":
            async with ledger._conn() as conn:  # type: ignore[attr-defined]
                await conn.execute("DELETE FROM stored_responses WHERE id LIKE 'resp_contract_%'")
        yield made
    finally:
        await ledger.close()


async def test_store_contract(store: ResponseStore) -> None:
    await store.put(_stored("resp_contract_1", "research"))
    got = await store.get("research", "resp_contract_1")
    assert got is not None and got.response["output"][0]["content"] == "é"
    assert got.conversation == [*got.input_items, *got.response["output"]]
    assert await store.get("ops", "resp_contract_1") is None
    assert await store.delete("ops", "resp_contract_1") is False
    assert await store.delete("research", "resp_contract_1") is True
    assert await store.get("research", "resp_contract_1") is None
    assert await store.delete("research", "resp_contract_1") is False
    past = datetime.now(UTC) - timedelta(days=2)
    await store.put(_stored("resp_contract_2", "research", days=1, now=past))
    assert await store.get("research", "resp_contract_2") is None  # expired
    assert await store.delete("research", "resp_contract_2") is False


async def test_a_memory_ledger_stores_in_its_sqlite(proxy: ProxyFactory) -> None:
    p = await proxy()
    assert isinstance(p.client.app[LEDGER], SQLiteLedger)
    created = await p.sdk().responses.create(model="hermes-4-405b", input="hello")
    assert (await p.sdk().responses.retrieve(created.id)).id == created.id


@pytest.mark.parametrize(("value", "ok"), [(30, True), (0.5, True), (0, False), (-1, False), ("30", False),
                                           (100000, False)])
def test_store_days_is_checked(config_factory: Callable[..., Any], value: Any, ok: bool) -> None:
    if ok:
        assert config_factory(responses={"store_days": value}).responses.store_days == value
        return
    with pytest.raises(ConfigError) as caught:
        config_factory(responses={"store_days": value})
    assert caught.value.key == "responses.store_days"


def test_store_days_default_and_unknown_keys(config_factory: Callable[..., Any]) -> None:
    assert config_factory().responses.store_days == 30
    with pytest.raises(ConfigError) as caught:
        config_factory(responses={"keep_days": 3})
    assert caught.value.key == "responses.keep_days"


# --- the OpenAI Agents SDK -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_an_agents_sdk_agent_with_a_function_tool(proxy: ProxyFactory, stream: bool) -> None:
    agents = pytest.importorskip("agents")
    p = await proxy()
    seen: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        seen.append(city)
        return '{"temperature": 3, "sky": "clear"}'

    model = agents.OpenAIResponsesModel(model="hermes-4-405b", openai_client=p.sdk())
    agent = agents.Agent(name="weather", instructions="Use the tool.", tools=[get_weather], model=model)
    config = agents.RunConfig(tracing_disabled=True)
    if stream:
        result = agents.Runner.run_streamed(agent, "What is the weather in Oslo?", run_config=config)
        async for _ in result.stream_events():
            pass
    else:
        result = await agents.Runner.run(agent, "What is the weather in Oslo?", run_config=config)
    assert seen and "3" in str(result.final_output)
