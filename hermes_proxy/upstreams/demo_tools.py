"""What the simulated Hermes writes when a request offers tools, returns tool results or asks for JSON (pure).

It reads the request the way either kind of host would give it to the model, so the demo works whichever way its
dialect sends tools:

- native fields: ``tools`` / ``tool_choice`` / ``response_format`` in the payload (as vLLM would get them);
- or the rendered text: a ``<tools>`` block (and the ``tool_choice`` instruction) from
  :func:`~hermes_proxy.tools.render.tools_system_prompt`, and the JSON-mode ``<schema>`` instruction from
  :func:`~hermes_proxy.tools.structured.format_instruction`, in the system message (as Nous Portal would).

Native fields win when both are there. Tool results are read as ``role: "tool"`` messages (native) or as
``<tool_response>`` blocks in the last message (rendered, whatever its role).

Answers, in order:

1. the last message is a tool result: prose that uses the result's content (or, with a JSON ``response_format``,
   JSON built from the schema);
2. tools are offered (``tool_choice`` is not ``"none"``): one raw ``<tool_call>{"name", "arguments"}</tool_call>``,
   Hermes' own text, for the function ``tool_choice`` names, else the one whose name and description share most
   words with the question (the first on a tie), with arguments generated from its parameters schema;
3. a JSON ``response_format``: JSON valid against the schema (``json_object``: an instance of the JSON schema the
   prompt spells out, as instructor's JSON mode and LangChain's ``json_mode`` write it, else a small object);
4. otherwise ``None``: the demo's canned markdown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from hermes_proxy.tools.examples import example_value
from hermes_proxy.tools.render import (
    TOOL_RESPONSE_CLOSE,
    TOOL_RESPONSE_OPEN,
    choice_from_system_prompt,
    content_text,
    forced_function,
    render_tool_call,
    tool_name,
    tools_from_system_prompt,
)
from hermes_proxy.tools.structured import response_format_from_system_prompt

SIMULATED_NOTE = "*This answer comes from the simulated demo upstream: configure a real upstream for real answers.*"
_RESPONSE_RE = re.compile(re.escape(TOOL_RESPONSE_OPEN) + r"\s*(.*?)\s*" + re.escape(TOOL_RESPONSE_CLOSE), re.DOTALL)
_WORD_RE = re.compile(r"[a-z0-9]+")


def compose_tool_answer(payload: Mapping[str, Any], question: str) -> str | None:
    """The demo's answer for a request with tools, tool results or a JSON ``response_format``; ``None`` otherwise."""
    messages = payload.get("messages") or []
    system = "\n\n".join(content_text(m.get("content")) for m in messages
                         if isinstance(m, Mapping) and m.get("role") in ("system", "developer"))
    if payload.get("tools"):
        tools, choice = list(payload["tools"]), payload.get("tool_choice")
    else:
        tools, choice = tools_from_system_prompt(system), choice_from_system_prompt(system)
    response_format = payload.get("response_format") or response_format_from_system_prompt(system)
    results = tool_results(messages)
    if results:
        structured = _json_answer(response_format, question + " " + " ".join(_text(c) for _, c in results), system)
        return structured if structured is not None else _prose(results)
    if tools and choice != "none":
        tool = _pick(tools, choice, question)
        parameters = _function(tool).get("parameters") or {"type": "object", "properties": {}}
        arguments = example_value(parameters, tool_name(tool), hint=question)
        return render_tool_call({"name": tool_name(tool), "arguments": arguments})
    return _json_answer(response_format, question, system)


def tool_results(messages: Sequence[Any]) -> list[tuple[str, Any]]:
    """(function name, content) of the tool results the conversation ends with; ``[]`` when it ends otherwise."""
    names: dict[str, str] = {}
    for message in messages:
        for call in (message.get("tool_calls") or []) if isinstance(message, Mapping) else []:
            if isinstance(call, Mapping) and isinstance(call.get("id"), str):
                names[call["id"]] = tool_name(call)
    results: list[tuple[str, Any]] = []
    for message in reversed(messages):
        if not isinstance(message, Mapping) or message.get("role") != "tool":
            break
        text = content_text(message.get("content"))
        call_id = message.get("tool_call_id")
        name = names.get(call_id, "") if isinstance(call_id, str) else ""
        results[:0] = _blocks(text) or [(name or str(message.get("name") or "the tool"), _parsed(text))]
    if results or not messages or not isinstance(messages[-1], Mapping):
        return results
    return _blocks(content_text(messages[-1].get("content")))  # results rendered as text in another role


def _blocks(text: str) -> list[tuple[str, Any]]:
    """(name, content) of each ``<tool_response>`` block in ``text``."""
    found: list[tuple[str, Any]] = []
    for block in _RESPONSE_RE.findall(text):
        value = _parsed(block)
        if isinstance(value, Mapping) and "content" in value:
            found.append((str(value.get("name") or "the tool"), value["content"]))
        else:
            found.append(("the tool", value))
    return found


def _words(text: str) -> set[str]:
    """The words of ``text`` that say something (four letters or more: no "the", "in", "for")."""
    return {w for w in _WORD_RE.findall(text.lower()) if len(w) >= 4}


def _function(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    function = tool.get("function")
    return function if isinstance(function, Mapping) else tool


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _pick(tools: Sequence[Mapping[str, Any]], choice: Any, question: str) -> Mapping[str, Any]:
    forced = forced_function(choice)
    if forced is not None:
        for tool in tools:
            if tool_name(tool) == forced:
                return tool
    asked = _words(question)

    def overlap(tool: Mapping[str, Any]) -> int:
        return len(asked & _words(f"{tool_name(tool).replace('_', ' ')} {_function(tool).get('description') or ''}"))

    return max(tools, key=overlap)  # max keeps the first of equals


def _prose(results: list[tuple[str, Any]]) -> str:
    lines = []
    for name, content in results:
        if isinstance(content, Mapping) and content:
            facts = ", ".join(f"**{key}**: {_text(value)}" for key, value in list(content.items())[:6])
            lines.append(f"- `{name}` returned {facts}.")
        else:
            text = " ".join(_text(content).split())
            lines.append(f"- `{name}` returned: {text[:300] + ('…' if len(text) > 300 else '') or '(nothing)'}")
    return "Here is what the tools found:\n\n" + "\n".join(lines) + "\n\n" + SIMULATED_NOTE


def _json_answer(response_format: Any, question: str, system: str = "") -> str | None:
    if not isinstance(response_format, Mapping):
        return None
    kind = response_format.get("type")
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    if kind == "json_schema" and isinstance(spec, Mapping) and isinstance(schema, Mapping):
        value = example_value(schema, str(spec.get("name") or ""), hint=question)
    elif kind == "json_object" and (written := _schema_in_text(system) or _schema_in_text(question)) is not None:
        value = example_value(written, str(written.get("title") or ""), hint=question)
    elif kind in ("json_object", "json_schema"):
        words = _WORD_RE.findall(question.lower())
        value = {"answer": "This is a simulated JSON answer.", "topic": " ".join(words[:8]) or "your question",
                 "simulated": True}
    else:
        return None
    return json.dumps(value, ensure_ascii=False, indent=2)


def _schema_in_text(text: str, attempts: int = 40) -> Mapping[str, Any] | None:
    """The first JSON object in ``text`` that is an object schema (``"properties"``), as a JSON-mode prompt gives it."""
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start >= 0 and attempts > 0:
        attempts -= 1
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict) and isinstance(value.get("properties"), dict) and value.get("type", "object") == "object":
            return value
        start = text.find("{", end)
    return None
