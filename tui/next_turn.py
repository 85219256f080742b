"""What sending the prompt would cost, shown while the user types: the next turn's prompt tokens and cost range.

The whole history is sent again with every message, so a long conversation costs more each turn. :func:`next_turn`
is pure: from the messages the turn would send before the draft (as :func:`~tui.transcript.chat_messages` builds
them: the system prompt and the turns, earlier reasoning never included), the draft, the model and the
conversation's :class:`~tui.settings.ChatParams`, it gives a :class:`NextTurn`: the prompt tokens (estimated the way
the reply's live numbers estimate them, about four characters a token) and the cost, from the input alone up to the
most the answer may use: ``max_tokens`` when the conversation sets it, else all the room left in the context window
(what the proxy reserves for a request with no maximum and no team cap).

Typing must stay cheap: :class:`HistoryTokens` keeps the history's estimate per conversation, so a keystroke only
re-estimates the draft (:func:`next_turn_from`); the screen forgets it when the conversation changes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from hermes_proxy.money import format_usd
from tui.backend import (
    DEFAULT_CONTEXT_WINDOW,
    ModelInfo,
    estimate_prompt_tokens,
    estimate_tokens,
    format_tokens,
    format_window,
)
from tui.settings import ChatParams

DEBOUNCE_S = 0.2  # the preview is worked out this long after the last keystroke
MESSAGE_OVERHEAD = 4  # template tokens per message, as in estimate_prompt_tokens

OutputSource = Literal["max_tokens", "context"]


@dataclass(frozen=True, slots=True)
class NextTurn:
    """The next turn, were the draft sent now. All token counts are estimates."""

    history_tokens: int  # the system prompt and the turns before the draft, with the template overhead
    draft_tokens: int  # the draft as a user message
    context_window: int
    max_output_tokens: int  # the most the answer may use: max_tokens, or the room left in the context window
    output_source: OutputSource
    input_usd: Decimal | None  # the prompt at the model's input price; None when a price is unknown
    max_usd: Decimal | None  # plus max_output_tokens at the output price

    @property
    def prompt_tokens(self) -> int:
        return self.history_tokens + self.draft_tokens

    @property
    def over_context(self) -> bool:
        """The request cannot fit the context window: the prompt (plus ``max_tokens``, when set) exceeds it, or
        leaves no room for an answer."""
        needed = self.max_output_tokens if self.output_source == "max_tokens" else 1
        return self.prompt_tokens + needed > self.context_window

    def texts(self) -> tuple[str, ...]:
        """The status line's forms of the preview, longest first (a narrow terminal takes a shorter one).

        ``next ~1,234 in · $0.0012–$0.0050``; with the warning, ``⚠ next ~140,000 in · over the 131k context``.
        """
        tokens = f"next ~{format_tokens(self.prompt_tokens)} in"
        window = format_window(self.context_window)
        if self.over_context:
            if self.prompt_tokens < self.context_window and self.output_source == "max_tokens":
                return (f"⚠ {tokens} + max {format_tokens(self.max_output_tokens)} out · over the {window} context",
                        f"⚠ {tokens} · over the {window} context", "⚠ over context")
            return f"⚠ {tokens} · over the {window} context", "⚠ over context"
        if self.input_usd is None or self.max_usd is None:
            return (tokens,)
        cost = f"{format_usd(self.input_usd, places=4)}–{format_usd(self.max_usd, places=4)}"
        return f"{tokens} · {cost}", f"next {cost}", tokens

    def explanation(self) -> str:
        """The tooltip: where the numbers come from."""
        parts = [
            f"Sending this message would send about {format_tokens(self.prompt_tokens)} tokens: the conversation so "
            f"far and the system prompt (~{format_tokens(self.history_tokens)}; earlier reasoning is not sent back) "
            f"and your message (~{format_tokens(self.draft_tokens)}). Estimated at about four characters a token.",
        ]
        limit = ("this chat's max tokens" if self.output_source == "max_tokens"
                 else "the room left in the context window")
        if self.over_context:
            parts.append(f"It does not fit the {format_tokens(self.context_window)}-token context window "
                         f"(the answer may use up to {format_tokens(self.max_output_tokens)}, {limit}): "
                         "shorten it, start a new chat, or pick a model with a larger window.")
        elif self.input_usd is None or self.max_usd is None:
            parts.append("The model's price is unknown, so is the cost.")
        else:
            parts.append(f"Cost: {format_usd(self.input_usd, places=4)} for the input, up to "
                         f"{format_usd(self.max_usd, places=4)} if the answer uses all "
                         f"{format_tokens(self.max_output_tokens)} tokens it may ({limit}).")
        return " ".join(parts)


def next_turn(messages: Sequence[Mapping[str, Any]], draft: str, model: ModelInfo | None,
              params: ChatParams) -> NextTurn | None:
    """The next turn were ``draft`` sent after ``messages`` (system prompt and earlier turns, as sent);
    ``None`` when the draft is blank (nothing would be sent)."""
    return next_turn_from(estimate_prompt_tokens(messages), draft, model, params)


def next_turn_from(history_tokens: int, draft: str, model: ModelInfo | None, params: ChatParams) -> NextTurn | None:
    """:func:`next_turn` from the history's estimate (``estimate_prompt_tokens`` of the messages before the draft)."""
    text = draft.rstrip()  # what the send takes
    if not text.strip():
        return None
    draft_tokens = MESSAGE_OVERHEAD + estimate_tokens(text)
    prompt = history_tokens + draft_tokens
    window = model.context_window if model is not None else DEFAULT_CONTEXT_WINDOW
    source: OutputSource
    if params.max_tokens is not None:
        output, source = params.max_tokens, "max_tokens"
    else:
        output, source = max(window - prompt, 0), "context"
    return NextTurn(
        history_tokens=history_tokens, draft_tokens=draft_tokens, context_window=window, max_output_tokens=output,
        output_source=source,
        input_usd=model.cost(prompt, 0) if model is not None else None,
        max_usd=model.cost(prompt, output) if model is not None else None,
    )


class HistoryTokens:
    """The token estimate of a conversation's history, worked out once per ``key`` (the conversation and its system
    prompt) until :meth:`forget` says the conversation changed."""

    def __init__(self) -> None:
        self._key: Hashable | None = None
        self._tokens = 0
        self.estimates = 0  # how many times the history was estimated (the tests check typing does not)

    def tokens(self, key: Hashable, messages: Callable[[], Sequence[Mapping[str, Any]]]) -> int:
        if self._key is None or key != self._key:
            self._tokens = estimate_prompt_tokens(messages())
            self._key = key
            self.estimates += 1
        return self._tokens

    def forget(self) -> None:
        self._key = None
