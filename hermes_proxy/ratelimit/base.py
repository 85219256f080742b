"""What every rate limiter is: the :class:`RateLimiter` protocol, the :class:`RateDecision` it answers with, and
:func:`decide`, the one place where the counter states of a request's scopes become that answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from hermes_proxy.errors import HermesError, RateLimited
from hermes_proxy.ratelimit.headers import ratelimit_headers
from hermes_proxy.ratelimit.scopes import ScopeState
from hermes_proxy.retry_after import retry_after_seconds, wait_ms
from policies.types import TeamPolicy

WINDOW_S = 60.0


class RateLimiterUnavailable(HermesError):
    """The shared rate limiter (Redis) cannot be reached."""

    status = 503
    type = "server_error"
    code = "rate_limiter_unavailable"


@dataclass(frozen=True, slots=True)
class Ticket:
    """What one admitted request counted, so that :meth:`RateLimiter.refund` can take exactly that back.

    Opaque to callers: hand it back to the limiter that issued it, with the same team and key. ``id`` names the
    request's entries in every scope's logs, ``at`` is when they were counted and ``tokens`` the prompt tokens counted.
    """

    id: str
    at: float
    tokens: int


@dataclass(frozen=True)
class RateDecision:
    """The answer to :meth:`RateLimiter.admit`.

    ``headers`` are OpenAI's ``x-ratelimit-*`` headers (empty when no limit applies); on a refusal they also carry
    ``retry-after`` (whole seconds) and ``retry-after-ms``. ``retry_after_s`` is the ``Retry-After`` value: seconds
    until the request would be admitted, rounded up, at least 1. ``limit_type`` is ``"requests"`` or ``"tokens"`` for a
    refusal (OpenAI's error ``type``). ``ticket`` is set when the request was admitted and counted somewhere: pass it
    to :meth:`RateLimiter.refund` to take the admission back (a request the budget then refused).
    """

    allowed: bool
    headers: dict[str, str]
    retry_after_s: float | None
    message: str | None
    limit_type: str | None = None
    ticket: Ticket | None = None

    def error(self) -> RateLimited:
        """The 429 to raise for a refusal (headers included)."""
        error = RateLimited(self.message or "Rate limit reached.", headers=self.headers)
        if self.limit_type is not None:
            error.type = self.limit_type
        return error


ALLOWED = RateDecision(allowed=True, headers={}, retry_after_s=None, message=None)


@runtime_checkable
class RateLimiter(Protocol):
    async def admit(self, team: TeamPolicy, key_id: str | None, prompt_tokens: int, *,
                    now: float | None = None) -> RateDecision:
        """Count one request and ``prompt_tokens`` against every applicable limit, or refuse and count nothing."""
        ...

    async def record_completion(self, team: TeamPolicy, key_id: str | None, tokens: int, *,
                                now: float | None = None) -> None:
        """Add the completion tokens of an admitted request to its tokens-per-minute counters."""
        ...

    async def refund(self, team: TeamPolicy, key_id: str | None, ticket: Ticket) -> None:
        """Take back one admission (``ticket``, from its :class:`RateDecision`): remove that request and its prompt
        tokens from every scope, as if it had never been admitted. An unknown ticket, one already refunded, or one
        whose entries have left the window changes nothing. Never raises for an unreachable backend (it logs): a lost
        refund only costs the client one slot for a minute."""
        ...

    async def ping(self) -> None:
        """Raise :class:`RateLimiterUnavailable` when the limiter cannot work (for ``/readyz``)."""
        ...

    async def close(self) -> None: ...


_KIND_TEXT = {"requests": "requests per minute", "tokens": "tokens per minute"}


def decide(states: list[ScopeState], ticket: Ticket | None = None) -> RateDecision:
    """Admitted when no scope refused (carrying ``ticket``, what the admit counted); otherwise refused with the
    longest wait of every refusing limit."""
    headers = ratelimit_headers(states)
    refusals = [(seconds, kind, state) for state in states for kind, seconds in state.refusals]
    if not refusals:
        return RateDecision(allowed=True, headers=headers, retry_after_s=None, message=None, ticket=ticket)
    # the client must wait for every refusing limit to clear: report the longest wait
    seconds, kind, state = max(refusals, key=lambda r: r[0])
    retry = retry_after_seconds(seconds)
    if kind == "requests":
        limit, used = state.scope.rpm, state.requests
    else:
        limit, used = state.scope.tpm, state.tokens
    message = (f"Rate limit reached for {state.scope.label} ({_KIND_TEXT[kind]}): limit {limit}, used {used}. "
               f"Retry after {retry} s.")
    headers["retry-after"] = str(retry)
    headers["retry-after-ms"] = str(wait_ms(seconds))
    return RateDecision(allowed=False, headers=headers, retry_after_s=float(retry), message=message,
                        limit_type=kind)
