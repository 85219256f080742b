"""The Hermes 4 chat template, rendered to the exact text the model sees (special tokens written out).

What is confirmed about the Hermes 4 (70B/405B) template, and what is not
--------------------------------------------------------------------------
Confirmed (model card, the 14B template's text, public reports quoting the 70B ``chat_template.jinja``):

- Llama 3 framing: ``<|begin_of_text|>`` once (the template emits ``bos_token`` itself), then per message
  ``<|start_header_id|>{role}<|end_header_id|>\\n\\n{content}<|eot_id|>``; the generation prompt is
  ``<|start_header_id|>assistant<|end_header_id|>\\n\\n``.
- With no system message the template injects one: ``You are Hermes, created by Nous Research.``, or, with
  ``thinking=True``, the deep-thinking prompt. With a caller system message nothing is injected, so the proxy
  prepends its own prompt to the caller's (:func:`join_system_prompt`).
- ``thinking=True`` (and ``keep_cots`` false) rewrites every earlier assistant turn to
  ``'<think> </think>' + content.split('</think>', 1)[1]``, in both the plain and the tool-call assistant branches.
- With ``tools`` the template takes a separate branch that opens
  ``bos_token + '<|start_header_id|>system<|end_header_id|>\\n'`` (one newline) and renders the tools inside
  ``<tools></tools>``; calls are ``<tool_call>{json}</tool_call>``, results ``<tool_response>…</tool_response>``.

UNCONFIRMED (every such choice lives in the constants and helpers of this module):

- The text of the tools preamble. The branch opening (one newline after the header, as in a mechanical port of
  Qwen's ``<|im_start|>system\\n``) suggests a port of the Qwen 2.5 tools branch, which is what is rendered here,
  caller system text (or the injected default) first.
- Tool results: rendered as one ``tool`` turn per run of consecutive tool messages, each wrapped in
  ``<tool_response>\\n{"name": …, "content": …}\\n</tool_response>`` exactly as :mod:`hermes_proxy.tools.render`
  writes them for a raw-text host (the name looked up from the call id), so that a request counted natively equals
  the same request rendered by a dialect; the real template may use the ``user`` role (same token count). A tool
  message whose content is already one or more ``<tool_response>`` blocks (history rendered by the proxy, as a
  raw-text host receives it) is not wrapped again.
- Assistant tool calls: ``<tool_call>\\n{"name": …, "arguments": …}\\n</tool_call>`` after the content.
- Whether content is trimmed (Llama 3.1's template trims; Qwen's does not): not trimmed here.
- Content given as a list of parts: text parts concatenated with nothing between them. Hermes 4 takes no images,
  so image parts are ignored (they add nothing to the count; an upstream would reject or drop them).
- Whether ``<think>``/``</think>`` are single added tokens in the Hermes 4 tokenizer: a real ``tokenizer.json``
  answers that by itself (every added token it lists counts as one token, wherever it appears); the cl100k fallback
  counts them as ordinary text (3 tokens each), and ``<tool_call>``/``</tool_call>``, which the model card names as
  added tokens, as one token each (:data:`~hermes_proxy.tokens.encodings.HERMES4_ADDED_TOKENS`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hermes_proxy.reasoning.prompts import DEEP_THINKING_PROMPT, EMPTY_THINK, THINK_CLOSE, THINK_OPEN

# the tool format has one copy, in tools/render.py (re-exported here: hermes_proxy.tokens exports these names)
from hermes_proxy.tools.render import (
    TOOL_RESPONSE_CLOSE,
    TOOL_RESPONSE_OPEN,
    TOOL_RESULT_ROLE,
    TOOLS_POSTAMBLE,
    TOOLS_PREAMBLE,
    content_text,
    render_tool_call,
    render_tool_result,
    tool_name,
)

DEFAULT_SYSTEM_PROMPT = "You are Hermes, created by Nous Research."
THINKING_SYSTEM_PROMPT = DEEP_THINKING_PROMPT  # one source of truth, in reasoning/prompts.py
SYSTEM_PROMPT_SEPARATOR = "\n\n"  # between the proxy's injected prompt and the caller's system message

BOS = "<|begin_of_text|>"
EOT = "<|eot_id|>"
ROLE_ALIASES = {"developer": "system"}  # OpenAI's newer name for the system role; the template knows only "system"


def _header(role: str) -> str:
    return f"<|start_header_id|>{role}<|end_header_id|>\n\n"


def _role(message: Mapping[str, Any]) -> str:
    role = str(message.get("role") or "user")
    return ROLE_ALIASES.get(role, role)


def join_system_prompt(injected: str, caller_system: str) -> str:
    """The system message when the proxy injects ``injected`` in front of the caller's own system message."""
    return injected + SYSTEM_PROMPT_SEPARATOR + caller_system


def _assistant_text(message: Mapping[str, Any], *, thinking: bool) -> str:
    text = content_text(message.get("content"))
    if thinking:
        # The template keeps only what follows </think>; history without it is sent as '<think> </think>' + text.
        text = EMPTY_THINK + (text.split(THINK_CLOSE, 1)[1] if THINK_CLOSE in text else text)
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        rendered = "\n".join(render_tool_call(c) for c in calls if isinstance(c, Mapping))
        text = f"{text}\n{rendered}" if text else rendered
    return text


def _tool_result(message: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """One tool message as the model reads it (see the module docstring); already rendered text as it is."""
    text = content_text(message.get("content"))
    if text.startswith(TOOL_RESPONSE_OPEN) and text.endswith(TOOL_RESPONSE_CLOSE):
        return text
    call_id = message.get("tool_call_id")
    name = names.get(call_id, "") if isinstance(call_id, str) else ""
    if not name and isinstance(message.get("name"), str):
        name = message["name"]
    return render_tool_result(name, text)


def render_prompt(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    system_prompt: str | None = None,
    thinking: bool = False,
    add_generation_prompt: bool = True,
) -> str:
    """The Hermes 4 (Llama 3) chat-template text of a request, special tokens written out.

    ``system_prompt`` is what the proxy injects (the deep-thinking prompt): prepended to the caller's first system
    message, or the system message itself when there is none. ``thinking`` is the template's own flag (sent to vLLM as
    ``chat_template_kwargs``): it rewrites earlier assistant turns and picks the deep-thinking default prompt.
    """
    rest = list(messages)
    caller_system: str | None = None
    if rest and _role(rest[0]) == "system":
        caller_system = content_text(rest[0].get("content"))
        rest = rest[1:]
    if caller_system is not None:
        # as the request builder does: a caller system message that already holds the prompt gets it only once
        if system_prompt and system_prompt not in caller_system:
            system = join_system_prompt(system_prompt, caller_system)
        else:
            system = caller_system
    elif system_prompt:
        system = system_prompt
    else:
        system = THINKING_SYSTEM_PROMPT if thinking else DEFAULT_SYSTEM_PROMPT

    out: list[str] = [BOS]
    if tools:
        out.append("<|start_header_id|>system<|end_header_id|>\n")
        out.append(system + "\n\n" + TOOLS_PREAMBLE)
        out.extend("\n" + json.dumps(tool, ensure_ascii=False) for tool in tools)
        out.append(TOOLS_POSTAMBLE + EOT)
    else:
        out.append(_header("system") + system + EOT)

    names: dict[str, str] = {}
    index = 0
    while index < len(rest):
        message = rest[index]
        role = _role(message)
        if role == "tool":
            results: list[str] = []
            while index < len(rest) and _role(rest[index]) == "tool":
                results.append(_tool_result(rest[index], names))
                index += 1
            out.append(_header(TOOL_RESULT_ROLE) + "\n".join(results) + EOT)
            continue
        if role == "assistant":
            text = _assistant_text(message, thinking=thinking)
            calls = message.get("tool_calls")
            for call in calls if isinstance(calls, list) else ():
                if isinstance(call, Mapping) and isinstance(call.get("id"), str):
                    names[call["id"]] = tool_name(call)
        else:
            text = content_text(message.get("content"))
        out.append(_header(role) + text + EOT)
        index += 1
    if add_generation_prompt:
        out.append(_header("assistant"))
    return "".join(out)


def render_completion(
    reasoning: str, content: str, tool_calls: Iterable[Mapping[str, Any]] | None = None
) -> tuple[str, str]:
    """(the whole generated text, its think block) as the model wrote them, ``<|eot_id|>`` included."""
    think = f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n" if reasoning else ""
    body = content
    calls = [render_tool_call(c) for c in tool_calls or () if isinstance(c, Mapping)]
    if calls:
        body = (body + "\n" if body else "") + "\n".join(calls)
    return think + body + EOT, think

