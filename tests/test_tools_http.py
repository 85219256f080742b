"""Tools and structured output through the real openai SDK: against a host that answers in raw Hermes text (split
across chunks), and against the simulated demo."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.fake_upstream import Script
from tests.proxy_harness import HELLO, ProxyFactory

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["c", "f"]}},
                   "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
RAW_CALLS = ('Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "c"}}\n'
             '</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>')


@pytest.mark.parametrize("piece", [1, 3, 7])
@pytest.mark.parametrize("stream", [False, True])
async def test_raw_hermes_tool_calls_become_openai_tool_calls(proxy: ProxyFactory, piece: int, stream: bool) -> None:
    script = Script(dialect="nous", answer=RAW_CALLS, piece=piece)
    p = await proxy(script)
    sdk = p.sdk()
    request: dict[str, Any] = {"model": "hermes-4-405b", "messages": HELLO, "tools": [WEATHER, TIME]}
    if stream:
        calls: dict[int, dict[str, str]] = {}
        content, finish = "", None
        async for chunk in await sdk.chat.completions.create(**request, stream=True):
            for choice in chunk.choices:
                content += choice.delta.content or ""
                finish = choice.finish_reason or finish
                for tc in choice.delta.tool_calls or []:
                    entry = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                    entry["id"] += tc.id or ""
                    entry["name"] += (tc.function.name or "") if tc.function else ""
                    entry["arguments"] += (tc.function.arguments or "") if tc.function else ""
        found = [(c["name"], json.loads(c["arguments"]), c["id"]) for _, c in sorted(calls.items())]
    else:
        completion = await sdk.chat.completions.create(**request)
        message = completion.choices[0].message
        content, finish = message.content or "", completion.choices[0].finish_reason
        found = [(tc.function.name, json.loads(tc.function.arguments), tc.id) for tc in message.tool_calls or []]
    assert [(name, args) for name, args, _ in found] == [("get_weather", {"city": "Oslo", "unit": "c"}),
                                                        ("get_time", {})]
    assert all(call_id.startswith("call_") for _, _, call_id in found)
    assert finish == "tool_calls"
    assert content.strip() == "Let me check."
    sent = script.requests[0]
    assert "tools" not in sent and "tool_choice" not in sent  # rendered: Nous Portal takes no native tools
    assert "<tools>" in sent["messages"][0]["content"] and "get_weather" in sent["messages"][0]["content"]


async def test_tool_history_is_sent_as_hermes_text(proxy: ProxyFactory) -> None:
    script = Script(dialect="nous", answer="It is 3 degrees in Oslo.")
    p = await proxy(script)
    history = [
        {"role": "user", "content": "weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 3}'},
    ]
    completion = await p.sdk().chat.completions.create(model="hermes-4-405b", messages=history, tools=[WEATHER])
    assert completion.choices[0].message.content == "It is 3 degrees in Oslo."
    assert completion.choices[0].finish_reason == "stop"
    sent = script.requests[0]["messages"]
    assert "<tool_call>" in sent[2]["content"] and "get_weather" in sent[2]["content"]
    assert "<tool_response>" in sent[3]["content"] and '"temperature": 3' in sent[3]["content"]


async def test_a_malformed_call_is_returned_as_content_with_a_note(proxy: ProxyFactory) -> None:
    broken = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"\n</tool_call>'
    p = await proxy(Script(dialect="nous", answer=broken, piece=4))
    response = await p.client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": HELLO,
                                                                 "tools": [WEATHER]})
    body = await response.json()
    message = body["choices"][0]["message"]
    assert message["content"] == broken and "tool_calls" not in message
    assert "malformed tool call" in response.headers["x-hermes-note"]


async def test_a_tool_choice_the_model_did_not_honour_is_noted(proxy: ProxyFactory) -> None:
    p = await proxy(Script(dialect="nous", answer="I would rather not call anything."))
    response = await p.client.post("/v1/chat/completions", json={
        "model": "hermes-4-405b", "messages": HELLO, "tools": [WEATHER], "tool_choice": "required"})
    assert response.status == 200
    assert "required" in response.headers["x-hermes-note"]
    sent = p.scripts[0].requests[0]["messages"][0]["content"]
    assert "You must call at least one of these functions" in sent


async def test_bad_tools_are_a_400_naming_the_param(proxy: ProxyFactory) -> None:
    p = await proxy()
    response = await p.client.post("/v1/chat/completions", json={
        "model": "hermes-4-405b", "messages": HELLO, "tools": [{"type": "function", "function": {"name": "a b"}}]})
    assert response.status == 400
    assert (await response.json())["error"]["param"] == "tools[0].function.name"


# --- structured output ---------------------------------------------------------------------------------------------


class City(BaseModel):
    name: str
    population: int


async def test_strict_json_schema_that_the_answer_breaks_is_an_error_the_client_sees(proxy: ProxyFactory) -> None:
    p = await proxy(Script(dialect="nous", answer='```json\n{"name": "Oslo"}\n```'))
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        await p.sdk().chat.completions.parse(model="hermes-4-405b", messages=HELLO, response_format=City)
    assert caught.value.code == "invalid_structured_output" and "population" in caught.value.message
    (row,) = await p.rows()
    assert row.status == "error" and row.cost_usd > 0  # the model generated it: billed
    sent = p.scripts[0].requests[0]
    assert "response_format" not in sent and "<schema>" in sent["messages"][0]["content"]


async def test_a_fenced_json_answer_parses(proxy: ProxyFactory) -> None:
    p = await proxy(Script(dialect="nous", answer='```json\n{"name": "Oslo", "population": 709000}\n```'))
    completion = await p.sdk().chat.completions.parse(model="hermes-4-405b", messages=HELLO, response_format=City)
    assert completion.choices[0].message.parsed == City(name="Oslo", population=709000)


# --- the demo ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_the_demo_calls_a_tool_then_uses_its_result(proxy: ProxyFactory, stream: bool) -> None:
    p = await proxy()
    sdk = p.sdk()
    messages: list[dict[str, Any]] = [{"role": "user", "content": "What is the weather in Oslo?"}]
    if stream:
        names, arguments = [], ""
        async for chunk in await sdk.chat.completions.create(model="hermes-4-405b", messages=messages,  # type: ignore
                                                             tools=[WEATHER, TIME], stream=True):
            for choice in chunk.choices:
                for tc in choice.delta.tool_calls or []:
                    names += [tc.function.name] if tc.function and tc.function.name else []
                    arguments += (tc.function.arguments or "") if tc.function else ""
        assert names == ["get_weather"] and "city" in json.loads(arguments)
        return
    completion = await sdk.chat.completions.create(model="hermes-4-405b", messages=messages,  # type: ignore
                                                   tools=[WEATHER, TIME])
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls" and message.tool_calls
    call = message.tool_calls[0]
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)
    messages += [message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 3, "sky": "clear"}'}]
    answer = await sdk.chat.completions.create(model="hermes-4-405b", messages=messages,  # type: ignore
                                               tools=[WEATHER, TIME])
    assert answer.choices[0].finish_reason == "stop" and "3" in (answer.choices[0].message.content or "")


async def test_the_demo_answers_a_json_schema_with_valid_json(proxy: ProxyFactory) -> None:
    p = await proxy()
    completion = await p.sdk().chat.completions.parse(model="hermes-4-405b", messages=HELLO, response_format=City)
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, City) and parsed.name
