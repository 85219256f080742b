"""What the terminal chat talks to: a :class:`ChatBackend` that lists models, reports the budget and streams replies.

Two backends implement it: the in-process gateway (``tui.inprocess_backend``, no server needed) and a running
hermes-proxy over HTTP (``tui.http_backend``). Tests use a scripted fake. The app never sees anything else.

A reply streams as events: one :class:`Started`, then :class:`ReasoningDelta` / :class:`ContentDelta` pieces, then one
:class:`Finished` with the real usage. Failures raise :class:`BackendError`, whose ``kind`` says what the user should
do about it. Cancelling the iteration (``task.cancel()`` or ``aclose()``) stops the reply; the backend bills what
arrived.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Protocol, TypeAlias

ErrorKind = Literal["budget", "auth", "upstream", "network", "invalid", "other"]
ERROR_KINDS: tuple[ErrorKind, ...] = ("budget", "auth", "upstream", "network", "invalid", "other")
DEFAULT_CONTEXT_WINDOW = 131072
_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A model alias the backend can serve, with what the chat needs to show live numbers."""

    alias: str
    context_window: int
    input_usd_per_mtok: Decimal | None
    output_usd_per_mtok: Decimal | None
    simulated: bool
    upstream: str  # a label such as "openrouter" or "demo (simulated)"

    def cost(self, prompt_tokens: int, completion_tokens: int) -> Decimal | None:
        """The cost of a usage at this model's prices; ``None`` when a price is unknown."""
        if self.input_usd_per_mtok is None or self.output_usd_per_mtok is None:
            return None
        return (prompt_tokens * self.input_usd_per_mtok + completion_tokens * self.output_usd_per_mtok) / _MILLION


@dataclass(frozen=True, slots=True)
class BudgetInfo:
    """The team's remaining budget. ``warning`` is set past the soft limit; ``None`` remaining means no budget.

    ``reserved_usd``: what the last request held against the budget while it ran (its worst case), when the backend
    says; about what the next message may reserve. With less than that left, a message can be refused although the
    budget shows money left.
    """

    remaining_usd: Decimal | None
    warning: str | None
    team: str
    reserved_usd: Decimal | None = None

    @property
    def short_of_reservation(self) -> bool:
        """Money is left, but less than a message may reserve."""
        return (self.remaining_usd is not None and self.reserved_usd is not None
                and 0 < self.remaining_usd < self.reserved_usd)


@dataclass(frozen=True, slots=True)
class Started:
    """The request was admitted. ``reasoning`` is the reasoning state the gateway applied, when it says."""

    model_label: str
    simulated: bool
    prompt_tokens: int | None
    budget: BudgetInfo | None
    reasoning: bool | None = None


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ContentDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    """The real usage of the reply. ``reasoning_tokens`` is part of ``completion_tokens``."""

    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    cost_usd: Decimal | None
    estimated: bool
    finish_reason: str | None
    budget: BudgetInfo | None
    #: answered from the proxy's response cache: what that saved (the answer's first cost less this reply's charge)
    saved_usd: Decimal | None = None


StreamEvent: TypeAlias = Started | ReasoningDelta | ContentDelta | Finished


class BackendError(Exception):
    """A reply could not be produced. ``kind`` is one of :data:`ERROR_KINDS`; ``message`` is for the user."""

    def __init__(self, message: str, kind: ErrorKind = "other", *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind: ErrorKind = kind
        self.status = status

    def __repr__(self) -> str:
        return f"BackendError({self.message!r}, kind={self.kind!r})"


def unexpected_error(exc: BaseException) -> BackendError:
    """A failure that is not a :class:`BackendError` (a bug, a broken backend), as one the chat can show."""
    return exc if isinstance(exc, BackendError) else BackendError(f"{type(exc).__name__}: {exc}", "other")


def error_kind(value: str | None) -> ErrorKind:
    """A stored error kind read back; anything unknown is ``"other"``."""
    return next((kind for kind in ERROR_KINDS if kind == value), "other")


class ChatBackend(Protocol):
    label: str  # shown in the header, e.g. "in-process · demo upstream (SIMULATED)" or "http://127.0.0.1:8787"
    simulated: bool

    async def models(self) -> list[ModelInfo]: ...

    async def budget(self) -> BudgetInfo | None: ...

    def stream(self, *, model: str, messages: list[dict[str, Any]], reasoning: bool,
               temperature: float | None = None, max_tokens: int | None = None) -> AsyncIterator[StreamEvent]:
        """Stream one reply. Raises :class:`BackendError`. Cancelling the iteration stops the reply.

        ``temperature`` and ``max_tokens`` are the conversation's settings; ``None`` leaves them out of the request
        (the model's default, and the proxy's policy for the maximum).
        """
        ...

    async def aclose(self) -> None: ...


BackendFactory: TypeAlias = Callable[[], Awaitable[ChatBackend]]


# --- live estimates (replaced by the real numbers in Finished) -------------------------------------------------------


def estimate_tokens(text: str) -> int:
    """A quick token estimate for the live display: about four characters per token."""
    return chars_to_tokens(len(text))


def chars_to_tokens(chars: int) -> int:
    return math.ceil(chars / 4) if chars > 0 else 0


def estimate_prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """An estimate of a chat prompt's tokens, with a few tokens of template overhead per message."""
    total = 3
    for message in messages:
        content = message.get("content")
        total += 4 + (estimate_tokens(content) if isinstance(content, str) else 0)
    return total


# --- formatting ---------------------------------------------------------------------------------------------------


def format_tokens(count: int) -> str:
    return f"{count:,}"


def format_window(tokens: int) -> str:
    """``131072`` → ``131k``."""
    if tokens >= 1_000_000:
        return f"{tokens / 1_000_000:.1f}M".replace(".0M", "M")
    if tokens >= 1000:
        return f"{round(tokens / 1000)}k"
    return str(tokens)


def error_title(kind: ErrorKind) -> str:
    """How an error of this kind is introduced in the conversation."""
    return {
        "budget": "Budget refused",
        "auth": "Not authorised",
        "upstream": "Upstream error",
        "network": "Network error",
        "invalid": "Request rejected",
        "other": "Error",
    }[kind]


def error_hint(kind: ErrorKind) -> str:
    """One line on what to do next."""
    return {
        "budget": "Your message is saved. Ask an admin to raise the team's budget, or wait for the next window.",
        "auth": "Check the API key (--api-key or HERMES_PROXY_API_KEY) or the upstream's key in the config.",
        "upstream": "The model's host failed. Try again, or pick another model/upstream with F3.",
        "network": "The connection was lost. Check that the proxy or upstream is reachable, then resend.",
        "invalid": "The request was rejected as invalid; try a shorter conversation or another model.",
        "other": "Something unexpected happened; your conversation is saved.",
    }[kind]
