"""Which limits apply to a request (the team's, the key's), and what one scope's counters look like after an admit:
the sliding-window decision the in-process and SQLite limiters share (Redis makes the same one in Lua)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from policies.types import RateLimitRule, TeamPolicy


@dataclass(frozen=True, slots=True)
class Scope:
    """One set of counters: the team's, or one key's."""

    ident: tuple[str, ...]
    label: str
    rule: RateLimitRule

    @property
    def rpm(self) -> int | None:
        return self.rule.requests_per_minute

    @property
    def tpm(self) -> int | None:
        return self.rule.tokens_per_minute


def _limited(rule: RateLimitRule | None) -> bool:
    return rule is not None and (rule.requests_per_minute is not None or rule.tokens_per_minute is not None)


def scopes_for(team: TeamPolicy, key_id: str | None) -> list[Scope]:
    """The team's scope (when it has limits), then the key's (when keys have limits and a key was used)."""
    scopes: list[Scope] = []
    if _limited(team.rate_limits):
        assert team.rate_limits is not None
        scopes.append(Scope(("team", team.name), f"team '{team.name}'", team.rate_limits))
    if key_id is not None and _limited(team.key_rate_limits):
        assert team.key_rate_limits is not None
        scopes.append(Scope(("key", team.name, key_id), f"key '{key_id}' of team '{team.name}'",
                            team.key_rate_limits))
    return scopes


def token_scopes(team: TeamPolicy, key_id: str | None, tokens: int) -> list[Scope]:
    """The scopes a completion's ``tokens`` count against: those with a tokens-per-minute limit (none for no tokens)."""
    if tokens <= 0:
        return []
    return [scope for scope in scopes_for(team, key_id) if scope.tpm is not None]


@dataclass(slots=True)
class ScopeState:
    """What one scope looks like after an admit (after counting if admitted, before if refused)."""

    scope: Scope
    requests: int = 0
    requests_reset_s: float = 0.0
    tokens: int = 0
    tokens_reset_s: float = 0.0
    #: (kind, exact seconds until admissible) for each dimension that refused
    refusals: list[tuple[str, float]] = field(default_factory=list)

    def count(self, tokens: int, window_s: float) -> tuple[bool, bool]:
        """Count one admitted request and its prompt ``tokens``; returns whether the request, and whether the tokens,
        go in the scope's logs (only the dimensions it limits)."""
        logs_request = self.scope.rpm is not None
        logs_tokens = self.scope.tpm is not None and tokens > 0
        if logs_request:
            self.requests += 1
            self.requests_reset_s = window_s
        if logs_tokens:
            self.tokens += tokens
            self.tokens_reset_s = window_s
        return logs_request, logs_tokens


def window_state(scope: Scope, now: float, window_s: float, *, requests: int, last_request: float | None, tokens: int,
                 last_tokens: float | None, request_at: Callable[[int], float | None],
                 token_log: Callable[[], Iterable[tuple[float, int]]]) -> ScopeState:
    """A scope's counters over the window ending at ``now``, and what refuses one more request, with the exact wait.

    ``requests`` and ``tokens`` are what the window holds, ``last_*`` the newest entry's time; ``request_at(i)`` is
    the time of the i-th oldest request and ``token_log()`` the (time, tokens) entries oldest first: asked for only
    when a limit is reached."""
    state = ScopeState(scope, requests=requests, tokens=tokens)
    if last_request is not None:
        state.requests_reset_s = last_request + window_s - now
    if last_tokens is not None:
        state.tokens_reset_s = last_tokens + window_s - now
    rpm, tpm = scope.rpm, scope.tpm
    if rpm is not None and requests + 1 > rpm:
        # room appears when the entry at index (count - rpm) leaves the window
        index = requests - rpm
        at = request_at(index) if 0 <= index < requests else None
        state.refusals.append(("requests", window_s if at is None else at + window_s - now))
    if tpm is not None and tokens >= tpm:
        need = tokens - tpm + 1  # tokens that must leave before the sum is under the limit
        wait, gone = window_s, 0
        for at, count in token_log():
            gone += count
            if gone >= need:
                wait = at + window_s - now
                break
        state.refusals.append(("tokens", wait))
    return state


class ForwardClock:
    """The limiter's clock, never stepping back: its logs are in time order, and a caller's clock (or the wall
    clock) may go backwards."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last = -math.inf

    def __call__(self, now: float | None = None) -> float:
        value = self._clock() if now is None else now
        self._last = max(value, self._last)
        return self._last
