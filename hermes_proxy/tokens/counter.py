"""Counting: :class:`TokenCounter` counts the tokens of a text, a rendered prompt and a completion."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import tiktoken

from hermes_proxy.tokens.template import render_completion, render_prompt

SEGMENT_CACHE_SIZE = 1024
SEGMENT_CACHE_MAX_CHARS = 32_768
_SPECIAL_LIKE = re.compile(r"<\|[^|<>\s]{1,64}\|>")


@dataclass(frozen=True, slots=True, eq=False)
class TokenCounter:
    """Counts Hermes 4 tokens. Immutable; build one with :func:`load_token_counter` and share it.

    ``exact`` is true with the model's own tokenizer, false with the cl100k approximation. ``warning`` says why an
    exact tokenizer that was asked for is not in use (to log at start-up), else ``None``.
    """

    name: str
    exact: bool
    encoding: tiktoken.Encoding
    warning: str | None = None
    _specials: frozenset[str] = field(init=False, repr=False)
    _cached_count: Callable[[str], int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_specials", frozenset(self.encoding.special_tokens_set))
        encode = self.encoding.encode_ordinary
        # Chat clients resend the whole history every turn: remembering the count of each message's text means a
        # long conversation is tokenised once, not once per turn. Bounded: at most SEGMENT_CACHE_SIZE segments of at
        # most SEGMENT_CACHE_MAX_CHARS characters each are kept (about 32 MB of text at worst).
        object.__setattr__(self, "_cached_count",
                           functools.lru_cache(maxsize=SEGMENT_CACHE_SIZE)(lambda text: len(encode(text))))

    def _count_ordinary(self, text: str) -> int:
        if len(text) <= SEGMENT_CACHE_MAX_CHARS:
            return self._cached_count(text)
        return len(self.encoding.encode_ordinary(text))

    def count_text(self, text: str) -> int:
        """Tokens of ``text``; special tokens written in it count as one token each, as the server tokenises the
        rendered prompt.

        Same result as ``encode(text, allowed_special="all")`` (tiktoken also cuts the text at special tokens and
        encodes the pieces separately), without handing tiktoken the whole special-token set on every call, which
        costs more than encoding a short prompt.
        """
        count = self._count_ordinary
        if "<|" not in text:
            return count(text)
        total, last = 0, 0
        for match in _SPECIAL_LIKE.finditer(text):
            if match.group() in self._specials:
                if match.start() > last:
                    total += count(text[last:match.start()])
                total += 1
                last = match.end()
        return total + (count(text[last:]) if last < len(text) else 0)

    def head(self, text: str, tokens: int) -> str:
        """The longest start of ``text`` that is at most ``tokens`` tokens (never cutting inside a character)."""
        if tokens <= 0:
            return ""
        ids = self.encoding.encode_ordinary(text)
        if len(ids) <= tokens:
            return text
        return self.encoding.decode_bytes(ids[:tokens]).decode("utf-8", errors="ignore")

    def render_prompt(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        system_prompt: str | None = None,
        thinking: bool = False,
    ) -> str:
        return render_prompt(messages, tools, system_prompt=system_prompt, thinking=thinking)

    def count_prompt(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        system_prompt: str | None = None,
        thinking: bool = False,
    ) -> int:
        """Prompt tokens as the upstream counts them: template, injected system prompt, generation prompt included."""
        return self.count_text(render_prompt(messages, tools, system_prompt=system_prompt, thinking=thinking))

    def count_completion(
        self, reasoning: str, content: str, *, tool_calls: list[dict[str, Any]] | None = None
    ) -> tuple[int, int]:
        """(completion_tokens, reasoning_tokens) as generated: ``<think>\\n…\\n</think>\\n`` + answer + ``<|eot_id|>``.

        Reasoning tokens are the think block, a part of the completion tokens.
        """
        whole, think = render_completion(reasoning, content, tool_calls)
        completion = self.count_text(whole)
        return completion, min(self.count_text(think), completion) if think else 0
