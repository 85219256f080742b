"""A saved conversation turned into what the model reads next, and into a markdown document for people."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from hermes_proxy.money import format_usd
from tui.backend import format_tokens
from tui.store import Conversation, StoredMessage
from tui.tool_calls import answer_parts, call_names, calls_markdown, result_markdown, result_name

TITLE_LENGTH = 60


def conversation_title(text: str) -> str:
    """A new conversation's title: its first message on one line, cut at :data:`TITLE_LENGTH` characters."""
    line = " ".join(text.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


def slugify(title: str) -> str:
    """A file name for a conversation's title."""
    slug = re.sub(r"[^\w-]+", "-", title.lower()).strip("-")
    return slug[:50] or "conversation"


def chat_messages(system_prompt: str, history: Sequence[StoredMessage]) -> list[dict[str, Any]]:
    """OpenAI chat messages: the system prompt first, then the turns.

    Earlier reasoning is never sent back: assistant turns carry their answer only. Assistant turns with no answer
    (refused before any text) are left out; a partial answer that was stopped is kept, as the user saw it. A failed
    turn (a user message whose answer failed, and that answer) is never sent again: a retry sends it anew.
    """
    messages: list[dict[str, Any]] = []
    if system_prompt.strip():
        messages.append({"role": "system", "content": system_prompt})
    for index, message in enumerate(history):
        if message.role == "user":
            after = history[index + 1] if index + 1 < len(history) else None
            if after is not None and after.role == "assistant" and after.status == "error":
                continue
        elif not message.content or message.status == "error":
            continue
        messages.append({"role": message.role, "content": message.content})
    return messages


def usage_line(message: StoredMessage) -> str:
    """``in 1,204 · out 356 (reasoning 120) · $0.0012``, or ``""`` when nothing was counted."""
    parts: list[str] = []
    approx = "~" if message.estimated else ""
    if message.prompt_tokens is not None:
        parts.append(f"in {approx}{format_tokens(message.prompt_tokens)}")
    if message.completion_tokens is not None:
        out = f"out {approx}{format_tokens(message.completion_tokens)}"
        if message.reasoning_tokens:
            out += f" ({approx}{format_tokens(message.reasoning_tokens)} reasoning)"
        parts.append(out)
    if message.cost_usd is not None:
        parts.append(f"{approx}{format_usd(message.cost_usd, places=4)}")
    return " · ".join(parts)


def message_meta(message: StoredMessage) -> str:
    """The line under a saved answer: its usage and, when it did not simply finish, how it ended."""
    parts = [usage_line(message)]
    if message.status == "stopped":
        parts.append("stopped")
    elif message.status == "streaming":
        parts.append("interrupted")
    elif message.status == "error":
        parts.append("failed")
    if message.finish_reason == "length":
        parts.append("cut off at max tokens")
    return " · ".join(p for p in parts if p)


def cache_note(saved_usd: Decimal | None) -> str:
    """Added to a live answer's line when the proxy answered it from its response cache."""
    return "" if saved_usd is None else f" · from the cache, saved {format_usd(saved_usd, places=4)}"


def to_markdown(conversation: Conversation, history: Sequence[StoredMessage]) -> str:
    """The conversation as a markdown document: reasoning in ``<details>`` blocks, usage under each answer."""
    total = sum((m.cost_usd for m in history if m.cost_usd is not None), Decimal(0))
    lines = [
        f"# {conversation.title}",
        "",
        f"- Model: {conversation.model or 'default'}",
        f"- Started: {conversation.created_at:%Y-%m-%d %H:%M} UTC",
        f"- Cost: {format_usd(total, places=4)}",
        "",
    ]
    if conversation.system_prompt.strip():
        lines += ["## System prompt", "", conversation.system_prompt.strip(), ""]
    names: dict[str, str] = {}
    for message in history:
        if message.role == "user":
            lines += ["## You", "", message.content, ""]
            continue
        if message.role == "tool":
            lines += [*result_markdown(result_name(message.content, message.tool_call_id, names), message.content), ""]
            continue
        parts = answer_parts(message.content, message.tool_calls)
        names.update(call_names(parts.calls))
        lines += [f"## Hermes ({message.model})" if message.model else "## Hermes", ""]
        if message.reasoning.strip():
            tokens = f" ({format_tokens(message.reasoning_tokens)} tokens)" if message.reasoning_tokens else ""
            lines += [f"<details><summary>Reasoning{tokens}</summary>", "", message.reasoning.strip(), "",
                      "</details>", ""]
        if parts.text:
            lines += [parts.text, ""]
        if parts.calls:
            lines += [*calls_markdown(parts.calls), ""]
        if message.status == "stopped":
            lines += ["*(stopped by the user)*", ""]
        elif message.status == "streaming":
            lines += ["*(interrupted)*", ""]
        elif message.status == "error":
            lines += [f"> **Error:** {message.error or 'unknown error'}", ""]
        usage = usage_line(message)
        if usage:
            lines += [f"<sub>{usage}</sub>", ""]
    return "\n".join(lines).rstrip() + "\n"
