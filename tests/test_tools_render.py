"""Hermes' tool format for raw-text hosts: the <tools> system prompt (and tool_choice as text), read back by the demo;
history with tool calls and results as text; tools/tool_choice validation and the after-the-answer check."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hermes_proxy.errors import InvalidRequest
from hermes_proxy.tokens import render_prompt
from hermes_proxy.tools.choice import check_tool_choice, validate_tools
from hermes_proxy.tools.parser import parse_text, tool_calls_of
from hermes_proxy.tools.render import (
    CHOICE_REQUIRED,
    TOOL_RESULT_ROLE,
    TOOLS_POSTAMBLE,
    TOOLS_PREAMBLE,
    choice_from_system_prompt,
    render_messages,
    render_tool_call,
    tools_from_system_prompt,
    tools_system_prompt,
    with_tools_system_prompt,
)

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather now in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


# --- the system prompt ----------------------------------------------------------------------------------------------


def test_tools_prompt_is_the_template_text_with_one_json_line_per_tool() -> None:
    text = tools_system_prompt([WEATHER, TIME], "auto")
    assert text == (TOOLS_PREAMBLE + "\n" + json.dumps(WEATHER) + "\n" + json.dumps(TIME) + TOOLS_POSTAMBLE)
    assert "<tool_call>" in text and '"arguments"' in text
    assert tools_system_prompt([WEATHER], None) == text.replace("\n" + json.dumps(TIME), "")


def test_tools_prompt_is_what_the_token_counter_renders_after_the_system_text() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    counted = render_prompt(messages, [WEATHER, TIME])
    assert "Be brief.\n\n" + tools_system_prompt([WEATHER, TIME]) in counted
    rendered = with_tools_system_prompt(messages, [WEATHER, TIME])
    assert rendered[0] == {"role": "system", "content": "Be brief.\n\n" + tools_system_prompt([WEATHER, TIME])}
    assert rendered[1:] == messages[1:]
    assert with_tools_system_prompt(messages[1:], [WEATHER])[0] == {"role": "system",
                                                                    "content": tools_system_prompt([WEATHER])}
    assert with_tools_system_prompt(messages, [WEATHER], "none") == messages


@pytest.mark.parametrize("choice", [None, "auto", "required", {"type": "function", "function": {"name": "get_time"}}])
def test_tool_choice_is_instruction_text_read_back_from_the_prompt(choice: Any) -> None:
    text = tools_system_prompt([WEATHER, TIME], choice)
    assert tools_from_system_prompt("You are Hermes.\n\n" + text) == [WEATHER, TIME]
    assert choice_from_system_prompt(text) == (choice or "auto")
    if choice == "required":
        assert text.endswith(CHOICE_REQUIRED)
    if isinstance(choice, dict):
        assert "get_time" in text.rsplit("</tool_call>", 1)[1]


def test_none_offers_no_tools() -> None:
    assert tools_system_prompt([WEATHER], "none") == ""
    assert tools_system_prompt([], "auto") == ""
    assert tools_from_system_prompt("You are Hermes.") == []
    assert tools_from_system_prompt("within <tools></tools> XML tags") == []


def test_tools_read_back_from_a_json_array_block() -> None:
    assert tools_from_system_prompt(f"<tools>[{json.dumps(WEATHER)}]</tools>") == [WEATHER]


# --- the history ----------------------------------------------------------------------------------------------------


HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather and time in Paris?"},
    {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "call_a", "content": '{"temp_c": 21}'},
    {"role": "tool", "tool_call_id": "call_b", "content": "09:30"},
    {"role": "user", "content": "Thanks"},
]


def test_history_calls_become_tool_call_blocks_after_the_text() -> None:
    out = render_messages(HISTORY)
    assistant = out[2]
    assert assistant == {"role": "assistant", "content": (
        'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>')}
    # what the proxy renders is what its parser reads back
    calls = tool_calls_of(parse_text(assistant["content"]))
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("get_weather", {"city": "Paris"}), ("get_time", {})]
    assert render_messages([{"role": "assistant", "content": None, "tool_calls": HISTORY[2]["tool_calls"][:1]}]) == [
        {"role": "assistant", "content": render_tool_call(HISTORY[2]["tool_calls"][0])}]


def test_consecutive_tool_results_become_one_turn_in_the_template_role() -> None:
    out = render_messages(HISTORY)
    assert [m["role"] for m in out] == ["system", "user", "assistant", TOOL_RESULT_ROLE, "user"]
    assert out[3]["content"] == (
        '<tool_response>\n{"name": "get_weather", "content": {"temp_c": 21}}\n</tool_response>\n'
        '<tool_response>\n{"name": "get_time", "content": "09:30"}\n</tool_response>')
    assert "tool_call_id" not in out[3]
    assert render_messages(HISTORY, result_role="user")[3]["role"] == "user"
    assert out[0] == HISTORY[0] and out[4] == HISTORY[5]
    assert HISTORY[2]["tool_calls"]  # the caller's messages are not changed


def test_a_result_without_a_known_call_takes_the_message_name() -> None:
    out = render_messages([{"role": "tool", "name": "lookup", "tool_call_id": "x", "content": "not json {"}])
    assert out[0]["content"] == '<tool_response>\n{"name": "lookup", "content": "not json {"}\n</tool_response>'


# --- validation -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "param"), [
    ({"tools": {}}, "tools"),
    ({"tools": ["x"]}, "tools[0]"),
    ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
    ({"tools": [{"type": "function"}]}, "tools[0].function"),
    ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "x" * 65}}]}, "tools[0].function.name"),
    ({"tools": [WEATHER, WEATHER]}, "tools[1].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": []}}]}, "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
     "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "f", "description": 3}}]},
     "tools[0].function.description"),
    ({"tools": [{"type": "function", "function": {"name": "f", "strict": "yes"}}]}, "tools[0].function.strict"),
    ({"tools": [WEATHER], "tool_choice": "always"}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function"}}, "tool_choice.function.name"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice.function.name"),
    ({"tools": [WEATHER], "tool_choice": 3}, "tool_choice"),
    ({"tools": [WEATHER], "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
])
def test_malformed_tools_are_a_400_naming_the_param(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate_tools(body)
    assert caught.value.status == 400 and caught.value.param == param


@pytest.mark.parametrize("body", [
    {}, {"tools": [WEATHER, TIME]}, {"tools": [WEATHER], "tool_choice": "required"}, {"tool_choice": "none"},
    {"tool_choice": "auto"}, {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name":
                                                                                                    "get_weather"}}},
    {"tools": [{"type": "function", "function": {"name": "f"}}], "parallel_tool_calls": False},
])
def test_well_formed_tools_pass(body: dict[str, Any]) -> None:
    validate_tools(body)


def test_tool_choice_check_after_the_answer() -> None:
    named = {"type": "function", "function": {"name": "get_time"}}
    call = {"id": "c", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    assert check_tool_choice("auto", []) is None
    assert check_tool_choice(None, ["get_time"]) is None
    assert check_tool_choice("required", ["get_time"]) is None
    assert "no function" in (check_tool_choice("required", []) or "")
    assert "get_time" in (check_tool_choice("none", [call]) or "")
    assert check_tool_choice(named, [call]) is None
    assert "no function" in (check_tool_choice(named, []) or "")
    assert "get_weather" in (check_tool_choice(named, ["get_time", "get_weather"]) or "")
    assert "2 times" in (check_tool_choice(named, ["get_time", "get_time"]) or "")
    assert "not among" in (check_tool_choice("auto", ["rm_rf"], [WEATHER, TIME]) or "")
    events = parse_text('<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>')
    assert check_tool_choice(named, events) is not None  # CallStart events are calls too
