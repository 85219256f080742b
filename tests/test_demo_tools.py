"""The simulated Hermes calls tools, answers from tool results and writes JSON for a schema, whether the request
carries them natively or rendered as Hermes text; and stays honest about tokens while doing it."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from hermes_proxy.tokens import TokenCounter
from hermes_proxy.tools.parser import Malformed, parse_text, tool_calls_of
from hermes_proxy.tools.render import render_messages, with_tools_system_prompt
from hermes_proxy.tools.structured import check_structured, format_instruction
from hermes_proxy.upstreams.demo import DemoUpstream
from tests.test_demo import demo_config, run_demo

WEATHER_PARAMS = {"type": "object", "properties": {
    "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    "days": {"type": "integer", "minimum": 1, "maximum": 7}}, "required": ["location", "unit"],
    "additionalProperties": False}
SEARCH_PARAMS = {"type": "object", "properties": {"query": {"type": "string", "minLength": 1},
                                                  "limit": {"type": "integer", "minimum": 1}}, "required": ["query"]}
TOOLS = [
    {"type": "function", "function": {"name": "search_web", "description": "Search the web",
                                      "parameters": SEARCH_PARAMS}},
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather forecast for a city",
                                      "parameters": WEATHER_PARAMS}},
]
PARAMS = {"search_web": SEARCH_PARAMS, "get_weather": WEATHER_PARAMS}
QUESTION = [{"role": "user", "content": "What is the weather in Paris?"}]
PERSON = {"type": "object", "properties": {
    "name": {"type": "string"}, "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "emails": {"type": "array", "items": {"type": "string", "format": "email"}, "minItems": 1},
    "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
                "required": ["city", "zip"], "additionalProperties": False}},
    "required": ["name", "age", "emails", "address"], "additionalProperties": False}
STRICT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}


async def answer(counter: TokenCounter, payload: dict[str, Any], *, stream: bool = True) -> tuple[str, str | None,
                                                                                                dict[str, Any]]:
    demo = DemoUpstream(demo_config(), counter)
    text, finish, usage = await run_demo(demo, {"model": "Hermes-4-405B", **payload}, stream=stream)
    whole = await run_demo(demo, {"model": "Hermes-4-405B", **payload}, stream=not stream)
    assert whole == (text, finish, usage)
    # honest as ever: the usage is the count of what it wrote, plus <|eot_id|>
    assert usage["completion_tokens"] == counter.count_text(text + ("<|eot_id|>" if finish == "stop" else ""))
    return text, finish, usage


def the_call(text: str) -> tuple[str, dict[str, Any]]:
    events = parse_text(text)
    assert not [e for e in events if isinstance(e, Malformed)]
    calls = tool_calls_of(events)
    assert len(calls) == 1
    name, arguments = calls[0]["function"]["name"], json.loads(calls[0]["function"]["arguments"])
    jsonschema.validate(arguments, PARAMS[name])
    return name, arguments


@pytest.mark.parametrize("stream", [True, False])
async def test_a_rendered_tools_prompt_gets_a_parseable_call(counter: TokenCounter, stream: bool) -> None:
    messages = with_tools_system_prompt([{"role": "system", "content": "Be brief."}, *QUESTION], TOOLS, "auto")
    text, finish, _ = await answer(counter, {"messages": messages}, stream=stream)
    assert text.startswith("<tool_call>") and finish == "stop"
    name, arguments = the_call(text)
    assert name == "get_weather"  # the plausible one for the question
    assert arguments["location"] == "San Francisco, CA" and arguments["unit"] == "celsius"


async def test_native_tools_get_a_call_too(counter: TokenCounter) -> None:
    text, _, _ = await answer(counter, {"messages": QUESTION, "tools": TOOLS})
    assert the_call(text)[0] == "get_weather"
    text, _, _ = await answer(counter, {"messages": [{"role": "user", "content": "hello"}], "tools": TOOLS})
    assert the_call(text)[0] == "search_web"  # nothing in common: the first


@pytest.mark.parametrize("native", [True, False])
async def test_a_named_tool_choice_is_the_function_called(counter: TokenCounter, native: bool) -> None:
    choice = {"type": "function", "function": {"name": "search_web"}}
    payload: dict[str, Any] = ({"messages": QUESTION, "tools": TOOLS, "tool_choice": choice} if native
                               else {"messages": with_tools_system_prompt(QUESTION, TOOLS, choice)})
    text, _, _ = await answer(counter, payload)
    name, arguments = the_call(text)
    assert name == "search_web" and arguments["query"] == "What is the weather in Paris?"


async def test_tool_choice_none_offers_nothing(counter: TokenCounter) -> None:
    text, _, _ = await answer(counter, {"messages": QUESTION, "tools": TOOLS, "tool_choice": "none"})
    assert "<tool_call>" not in text


async def test_thinking_comes_before_the_call(counter: TokenCounter) -> None:
    text, _, _ = await answer(counter, {"messages": QUESTION, "tools": TOOLS, "reasoning": True})
    assert text.startswith("<think>\n") and "</think>\n<tool_call>" in text


CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather",
                                                         "arguments": '{"location": "Paris", "unit": "celsius"}'}}
HISTORY: list[dict[str, Any]] = [*QUESTION, {"role": "assistant", "content": None, "tool_calls": [CALL]},
                                 {"role": "tool", "tool_call_id": "call_1",
                                  "content": '{"temperature_c": 21, "sky": "clear"}'}]


@pytest.mark.parametrize("form", ["native", "rendered", "rendered-as-user"])
async def test_tool_results_get_prose_that_uses_them(counter: TokenCounter, form: str) -> None:
    messages = HISTORY if form == "native" else render_messages(
        HISTORY, **({"result_role": "user"} if form == "rendered-as-user" else {}))
    payload: dict[str, Any] = {"messages": messages}
    if form == "native":
        payload["tools"] = TOOLS
    else:
        payload["messages"] = with_tools_system_prompt(messages, TOOLS)
    text, finish, _ = await answer(counter, payload)
    assert "<tool_call>" not in text and finish == "stop"
    assert "get_weather" in text and "temperature_c" in text and "21" in text and "clear" in text


async def test_a_plain_text_result_is_quoted(counter: TokenCounter) -> None:
    messages = [*HISTORY[:2], {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 degrees"}]
    text, _, _ = await answer(counter, {"messages": messages})
    assert "Sunny, 21 degrees" in text


@pytest.mark.parametrize("native", [True, False])
async def test_a_json_schema_gets_json_valid_against_it(counter: TokenCounter, native: bool) -> None:
    system = {"role": "system", "content": format_instruction(STRICT)}
    payload: dict[str, Any] = ({"messages": QUESTION, "response_format": STRICT} if native
                               else {"messages": [system, *QUESTION]})
    text, finish, _ = await answer(counter, payload)
    assert finish == "stop" and check_structured(STRICT, text) is None
    jsonschema.Draft202012Validator(PERSON, format_checker=jsonschema.FormatChecker()).validate(json.loads(text))


async def test_json_object_gets_a_small_object(counter: TokenCounter) -> None:
    fmt = {"type": "json_object"}
    for payload in ({"messages": QUESTION, "response_format": fmt},
                    {"messages": [{"role": "system", "content": format_instruction(fmt)}, *QUESTION]}):
        text, _, _ = await answer(counter, payload)
        assert check_structured(fmt, text) is None and isinstance(json.loads(text), dict)


async def test_json_object_follows_a_schema_written_in_the_prompt(counter: TokenCounter) -> None:
    """instructor's JSON mode and LangChain's json_mode send ``json_object`` and spell the schema out in the prompt."""
    fmt = {"type": "json_object"}
    prompt = ("As a genius expert, your task is to understand the content and provide the parsed objects in json that "
              f"match the following json_schema:\n\n{json.dumps(PERSON, indent=2)}\n\nMake sure to return an instance "
              "of the JSON, not the schema itself")
    for messages in ([{"role": "system", "content": prompt}, *QUESTION],
                     [{"role": "user", "content": "Alice {not json} is 30. " + prompt}]):
        text, _, _ = await answer(counter, {"messages": messages, "response_format": fmt})
        jsonschema.Draft202012Validator(PERSON, format_checker=jsonschema.FormatChecker()).validate(json.loads(text))


async def test_json_after_a_tool_result(counter: TokenCounter) -> None:
    text, _, _ = await answer(counter, {"messages": HISTORY, "tools": TOOLS, "response_format": STRICT})
    assert check_structured(STRICT, text) is None


@pytest.mark.parametrize("max_tokens", [1, 5, 12])
async def test_a_call_cut_by_max_tokens_stays_within_it(counter: TokenCounter, max_tokens: int) -> None:
    text, finish, usage = await answer(counter, {"messages": QUESTION, "tools": TOOLS, "max_tokens": max_tokens})
    assert finish == "length" and usage["completion_tokens"] <= max_tokens
    assert text and not tool_calls_of(parse_text(text))  # an unfinished call is not a call


async def test_tools_count_in_the_prompt(counter: TokenCounter) -> None:
    _, _, bare = await answer(counter, {"messages": QUESTION})
    _, _, native = await answer(counter, {"messages": QUESTION, "tools": TOOLS})
    _, _, rendered = await answer(counter, {"messages": with_tools_system_prompt(QUESTION, TOOLS)})
    assert native["prompt_tokens"] > bare["prompt_tokens"] + 50
    assert abs(native["prompt_tokens"] - rendered["prompt_tokens"]) <= 12  # the same text, framed a little apart
