"""The reasoning texts, one copy each, and the pure helpers that add or remove the deep-thinking prompt.

:data:`DEEP_THINKING_PROMPT` is the Hermes 4 model card's system prompt that switches reasoning on; the model then
encloses its deliberation in :data:`THINK_OPEN` ... :data:`THINK_CLOSE`. Everything else that needs these texts (the
token counter, the demo upstream, the tests' fake hosts) imports them from here.

The message helpers never modify their input: they return the same list when nothing changes, else a new list whose
untouched messages are the same objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEEP_THINKING_PROMPT",
    "EMPTY_THINK",
    "FORCED_ANSWER_NOTE",
    "THINK_CLOSE",
    "THINK_OPEN",
    "has_deep_thinking_prompt",
    "with_deep_thinking_prompt",
    "without_deep_thinking_prompt",
]

DEEP_THINKING_PROMPT = (
    "You are a deep thinking AI, you may use extremely long chains of thought to deeply consider the problem and "
    "deliberate with yourself via systematic reasoning processes to help come to a correct solution prior to "
    "answering. You should enclose your thoughts and internal monologue inside <think> </think> tags, and then "
    "provide your solution or response to the problem."
)
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
#: What the Hermes template expects in place of an earlier turn's reasoning (it splits on ``</think>``).
EMPTY_THINK = "<think> </think>"
#: Appended to the system message of a reasoning-off follow-up request when a reasoning budget cut the reasoning
#: (see :func:`hermes_proxy.reasoning.budget.forced_answer_payload`); ``{reasoning}`` is the reasoning so far.
FORCED_ANSWER_NOTE = (
    "You already started deliberating about the latest message of this conversation, and your reasoning was cut off "
    "at its budget. Your reasoning so far:\n\n<reasoning>\n{reasoning}\n</reasoning>\n\n"
    "Do not deliberate any further and do not repeat that reasoning: give your final response now."
)

_JOIN = "\n\n"  # between the prompt and the caller's own system text


def has_deep_thinking_prompt(messages: Any) -> bool:
    """True if a system message of ``messages`` contains the exact deep-thinking prompt (text or a text part)."""
    if not isinstance(messages, list):
        return False
    return any(_is_system_with_prompt(m) for m in messages)


def with_deep_thinking_prompt(messages: list[Any], *, insert: bool) -> list[Any]:
    """``messages`` with the deep-thinking prompt prepended to the first message, if it is a system message.

    A system message that already holds the prompt is left alone. With no leading system message, ``insert=True``
    adds one holding only the prompt; ``insert=False`` returns ``messages`` unchanged (for a template that injects the
    prompt itself when there is no system message).
    """
    first = messages[0] if messages else None
    if isinstance(first, Mapping) and first.get("role") == "system":
        content = first.get("content")
        if isinstance(content, str):
            if DEEP_THINKING_PROMPT in content:
                return messages
            new_content: Any = DEEP_THINKING_PROMPT + _JOIN + content if content else DEEP_THINKING_PROMPT
        elif isinstance(content, list):
            if any(_part_has_prompt(p) for p in content):
                return messages
            parts = list(content)
            head = parts[0] if parts else None
            if isinstance(head, Mapping) and head.get("type") == "text" and isinstance(head.get("text"), str):
                parts[0] = {**head, "text": DEEP_THINKING_PROMPT + _JOIN + head["text"]}
            else:
                parts.insert(0, {"type": "text", "text": DEEP_THINKING_PROMPT + _JOIN})
            new_content = parts
        else:
            new_content = DEEP_THINKING_PROMPT
        return [{**first, "content": new_content}, *messages[1:]]
    if insert:
        return [{"role": "system", "content": DEEP_THINKING_PROMPT}, *messages]
    return messages


def without_deep_thinking_prompt(messages: list[Any]) -> list[Any]:
    """``messages`` with the exact deep-thinking prompt removed from every system message.

    The whitespace that joined the prompt to the rest goes with it; a system message (or text part) left empty is
    dropped.
    """
    if not any(_is_system_with_prompt(m) for m in messages):
        return messages
    result: list[Any] = []
    for message in messages:
        if _is_system_with_prompt(message):
            new_message = _system_without_prompt(message)
            if new_message is not None:
                result.append(new_message)
        else:
            result.append(message)
    return result


def _is_system_with_prompt(message: Any) -> bool:
    if not (isinstance(message, Mapping) and message.get("role") == "system"):
        return False
    content = message.get("content")
    if isinstance(content, str):
        return DEEP_THINKING_PROMPT in content
    if isinstance(content, list):
        return any(_part_has_prompt(p) for p in content)
    return False


def _part_has_prompt(part: Any) -> bool:
    return isinstance(part, Mapping) and isinstance(part.get("text"), str) and DEEP_THINKING_PROMPT in part["text"]


def _system_without_prompt(message: Mapping[str, Any]) -> dict[str, Any] | None:
    content = message.get("content")
    if isinstance(content, str):
        text = _drop_prompt(content)
        return {**message, "content": text} if text else None
    parts: list[Any] = []
    for p in content if isinstance(content, list) else ():
        if _part_has_prompt(p):
            text = _drop_prompt(p["text"])
            if text:
                parts.append({**p, "text": text})
        else:
            parts.append(p)
    return {**message, "content": parts} if parts else None


def _drop_prompt(text: str) -> str:
    """``text`` without the deep-thinking prompt and the whitespace that joined it to the rest."""
    before, _, after = text.partition(DEEP_THINKING_PROMPT)
    before, after = before.rstrip(), after.lstrip()
    if before and after:
        return before + _JOIN + after
    return before or after
