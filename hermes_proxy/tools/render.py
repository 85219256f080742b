"""Hermes' own tool format, for hosts that take raw text (no native ``tools``): the system prompt and the history.

The texts below are the one copy of the format; :mod:`hermes_proxy.tokens.template` counts prompts with them.

What the Hermes 4 template renders (and what is UNCONFIRMED)
-------------------------------------------------------------
- The tools branch puts the caller's system text first, then ``\\n\\n`` and :data:`TOOLS_PREAMBLE`, one JSON line
  per tool (the whole OpenAI tool object, ``{"type": "function", "function": {...}}``), and :data:`TOOLS_POSTAMBLE`.
  The wording is the Qwen 2.5 tools branch the Hermes 4 template appears to be ported from (UNCONFIRMED).
- Calls are ``<tool_call>\\n{"name": …, "arguments": …}\\n</tool_call>``, after any text of the assistant turn.
- Tool results go in a turn of role :data:`TOOL_RESULT_ROLE` = ``"tool"``, one turn per run of consecutive results,
  each wrapped in ``<tool_response>\\n…\\n</tool_response>``. ``tool`` is a role the Hermes 4 (Llama 3) template
  knows, and it is what Nous' own Hermes 3 tool-use template renders results under; the Qwen 2.5 template the
  tools branch may be ported from uses ``user`` instead (UNCONFIRMED for Hermes 4). A host whose OpenAI
  validation refuses a ``tool`` message without native ``tool_calls`` before it can be given
  ``result_role="user"``; the token count is the same either way.
- Inside ``<tool_response>`` the result is ``{"name": …, "content": …}`` (Nous' Hermes-Function-Calling format):
  the function's name looked up from the call id, and the content parsed as JSON when it is JSON, else the string.

``tool_choice`` has no template form: it is instruction text after the tools (:func:`tools_system_prompt`), which
:func:`choice_from_system_prompt` reads back (the demo upstream does).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
TOOL_RESPONSE_OPEN, TOOL_RESPONSE_CLOSE = "<tool_response>", "</tool_response>"
TOOLS_PREAMBLE = (  # UNCONFIRMED text (Qwen 2.5 tools branch, ported to Llama 3 headers)
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
TOOLS_POSTAMBLE = (  # UNCONFIRMED text
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)
TOOL_RESULT_ROLE = "tool"  # UNCONFIRMED: may be "user" in the real template (same token count)
SYSTEM_SEPARATOR = "\n\n"  # between the caller's system text and the tools block, as the template joins them

CHOICE_REQUIRED = "You must call at least one of these functions in your answer."
CHOICE_NAMED = "You must call the function {name} exactly once in your answer, and no other function."
_NAMED_RE = re.compile(r"You must call the function (\S+) exactly once in your answer")
_TOOLS_BLOCK_RE = re.compile(r"<tools>(.*?)</tools>", re.DOTALL)


def forced_function(tool_choice: Any) -> str | None:
    """The function name a ``tool_choice`` object forces (``{"type": "function", "function": {"name"}}``)."""
    if isinstance(tool_choice, Mapping):
        function = tool_choice.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            return str(function["name"])
    return None


def tools_system_prompt(tools: Sequence[Mapping[str, Any]], tool_choice: Any = None) -> str:
    """The system-prompt text for ``tools`` under ``tool_choice`` (``None`` counts as ``"auto"``).

    ``"none"`` (or no tools) gives ``""``: no tools are offered and the caller drops them. ``"required"`` and a named
    function add one instruction sentence after the template's text; ``"auto"`` adds nothing.
    """
    if not tools or tool_choice == "none":
        return ""
    lines = "".join("\n" + json.dumps(dict(tool), ensure_ascii=False) for tool in tools)
    text = TOOLS_PREAMBLE + lines + TOOLS_POSTAMBLE
    name = forced_function(tool_choice)
    if name is not None:
        text += "\n\n" + CHOICE_NAMED.format(name=name)
    elif tool_choice == "required":
        text += "\n\n" + CHOICE_REQUIRED
    return text


def with_tools_system_prompt(messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]],
                             tool_choice: Any = None, *, default_system: str = "") -> list[dict[str, Any]]:
    """``messages`` with :func:`tools_system_prompt` after the caller's system text, or as the system message.

    ``default_system`` is what the template's tools branch puts first when the caller sends no system message (its
    default prompt): given, the inserted system message starts with it, so the model reads the same text as when the
    host renders native ``tools`` itself (and the prompt counts the same).
    """
    text = tools_system_prompt(tools, tool_choice)
    if text and default_system and not (messages and messages[0].get("role") in ("system", "developer")):
        text = default_system + SYSTEM_SEPARATOR + text
    return with_system_text(messages, text)


def with_system_text(messages: Sequence[Mapping[str, Any]], text: str) -> list[dict[str, Any]]:
    """``messages`` with ``text`` after the caller's system text (joined as the template joins them), or as the
    system message when there is none; unchanged (copied) for an empty ``text``."""
    out = [dict(m) for m in messages]
    if not text:
        return out
    if out and out[0].get("role") in ("system", "developer"):
        caller = content_text(out[0].get("content"))
        out[0] = {**out[0], "role": "system", "content": caller + SYSTEM_SEPARATOR + text if caller else text}
    else:
        out.insert(0, {"role": "system", "content": text})
    return out


def tools_from_system_prompt(text: str) -> list[dict[str, Any]]:
    """The tools a system prompt offers in its ``<tools>`` block (JSON lines or one JSON array); ``[]`` if none."""
    found: list[dict[str, Any]] = []
    for block in _TOOLS_BLOCK_RE.findall(text):
        block = block.strip()
        if not block:
            continue  # the preamble's "within <tools></tools> XML tags"
        try:
            parsed = json.loads(block)
            items = parsed if isinstance(parsed, list) else [parsed]
        except ValueError:
            items = []
            for line in block.splitlines():
                try:
                    items.append(json.loads(line))
                except ValueError:
                    continue
        found.extend(item for item in items if isinstance(item, dict))
    return found


def choice_from_system_prompt(text: str) -> str | dict[str, Any]:
    """The ``tool_choice`` a system prompt written by :func:`tools_system_prompt` expresses."""
    named = _NAMED_RE.search(text)
    if named:
        return {"type": "function", "function": {"name": named.group(1)}}
    return "required" if CHOICE_REQUIRED in text else "auto"


def tool_name(tool: Mapping[str, Any]) -> str:
    """A tool's function name (OpenAI shape ``{"function": {"name"}}`` or a bare ``{"name"}``)."""
    function = tool.get("function")
    source = function if isinstance(function, Mapping) else tool
    name = source.get("name")
    return name if isinstance(name, str) else ""


# --- history ------------------------------------------------------------------------------------------------------


def content_text(content: Any) -> str:
    """The text of a message ``content``: a string, ``None``, or a list of parts (text parts joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part["text"] for part in content
                       if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str))
    return ""


def render_tool_call(call: Mapping[str, Any]) -> str:
    """One OpenAI ``tool_calls`` entry as Hermes writes it (``<tool_call>\\n{"name", "arguments"}\\n</tool_call>``).

    ``arguments`` is OpenAI's JSON string and goes in as written; an object is serialised as Jinja's ``tojson``.
    """
    function = call.get("function")
    if not isinstance(function, Mapping):
        function = call
    arguments = function.get("arguments", {})
    args_json = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    name_json = json.dumps(function.get("name", ""), ensure_ascii=False)
    return TOOL_CALL_OPEN + '\n{"name": ' + name_json + ', "arguments": ' + args_json + "}\n" + TOOL_CALL_CLOSE


def render_tool_result(name: str, content: str) -> str:
    """One tool result as Hermes reads it: ``<tool_response>\\n{"name", "content"}\\n</tool_response>``."""
    value: Any = content
    stripped = content.strip()
    if stripped[:1] in ("{", "["):
        try:
            value = json.loads(stripped)
        except ValueError:
            value = content
    body = json.dumps({"name": name, "content": value}, ensure_ascii=False)
    return TOOL_RESPONSE_OPEN + "\n" + body + "\n" + TOOL_RESPONSE_CLOSE


def render_messages(messages: Sequence[Mapping[str, Any]], *,
                    result_role: str = TOOL_RESULT_ROLE) -> list[dict[str, Any]]:
    """OpenAI history as a raw-text host needs it: no ``tool_calls``, no ``tool_call_id``, only text.

    - an assistant message with ``tool_calls`` becomes one content: its text, then one ``<tool_call>`` block per
      call (``\\n`` between them);
    - each run of consecutive ``role: "tool"`` messages becomes ONE message of role ``result_role`` (default
      ``"tool"``, the template's; see the module docstring) holding their ``<tool_response>`` blocks, ``\\n``
      between them; the function name comes from the call with the same id (or the message's ``name``);
    - every other message is passed through (copied).
    """
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    run_open = False
    for message in messages:
        role = message.get("role")
        if role == "tool":
            call_id = message.get("tool_call_id")
            name = names.get(call_id, "") if isinstance(call_id, str) else ""
            name = name or (message.get("name") if isinstance(message.get("name"), str) else "") or ""
            block = render_tool_result(name, content_text(message.get("content")))
            if run_open:
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": result_role, "content": block})
                run_open = True
            continue
        run_open = False
        calls = message.get("tool_calls")
        if role == "assistant" and isinstance(calls, list) and calls:
            rendered = [c for c in calls if isinstance(c, Mapping)]
            for call in rendered:
                if isinstance(call.get("id"), str):
                    names[call["id"]] = tool_name(call)
            text = content_text(message.get("content"))
            blocks = "\n".join(render_tool_call(c) for c in rendered)
            copy = {k: v for k, v in message.items() if k not in ("tool_calls", "content", "function_call")}
            copy["content"] = f"{text}\n{blocks}" if text else blocks
            out.append(copy)
        else:
            out.append(dict(message))
    return out
