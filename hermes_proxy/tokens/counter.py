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
# Llama 3's 256 specials all look like this: one pattern finds them without listing them (the set says which are real)
_SPECIAL_LIKE = re.compile(r"<\|[^|<>\s]{1,64}\|>")


def added_token_finder(added: frozenset[str]) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """A pattern that finds every added token of ``added`` (and ``<|...|>``-shaped text, checked against the set by
    the caller), and the starts every added token begins with (text holding none of them has no added token).

    Added tokens of another shape (``<tool_call>``, ``<think>``...) are listed in the pattern, longest first, so that
    one that starts another is matched as the tokenizer does (leftmost, longest).
    """
    others = sorted((t for t in added if t and not _SPECIAL_LIKE.fullmatch(t)), key=lambda t: (-len(t), t))
    if not others:
        return _SPECIAL_LIKE, ("<|",)
    pattern = re.compile("|".join([*map(re.escape, others), _SPECIAL_LIKE.pattern]))
    firsts = {t[0] for t in others} - {"<"}
    return pattern, ("<", *sorted(firsts))


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
    _finder: re.Pattern[str] = field(init=False, repr=False)
    _starts: tuple[str, ...] = field(init=False, repr=False)
    _cached_count: Callable[[str], int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        specials = frozenset(self.encoding.special_tokens_set)
        finder, starts = added_token_finder(specials)
        object.__setattr__(self, "_specials", specials)
        object.__setattr__(self, "_finder", finder)
        object.__setattr__(self, "_starts", starts)
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
        """Tokens of ``text``; every added token of the tokenizer written in it (the ``<|...|>`` specials, and
        ``<tool_call>`` and its kin) counts as one token, as the server tokenises the rendered prompt and as the
        model generates them.

        Same result as ``encode(text, allowed_special="all")`` (tiktoken also cuts the text at special tokens and
        encodes the pieces separately), without handing tiktoken the whole special-token set on every call, which
        costs more than encoding a short prompt. Text without any character an added token starts with (``<``)
        goes straight to the encoder (``<|`` for a tokenizer whose only added tokens are ``<|...|>``-shaped).
        """
        count = self._count_ordinary
        starts = self._starts
        if len(starts) == 1:
            if starts[0] not in text:
                return count(text)
        elif not any(start in text for start in starts):
            return count(text)
        specials = self._specials
        search = self._finder.search
        total, last, pos = 0, 0, 0
        while (match := search(text, pos)) is not None:
            if match.group() in specials:
                if match.start() > last:
                    total += count(text[last:match.start()])
                total += 1
                last = pos = match.end()
            else:  # <|...|>-shaped text that is not a special token: look on from the next character
                pos = match.start() + 1
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
