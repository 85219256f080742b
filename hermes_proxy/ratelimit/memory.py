"""The in-process rate limiter: exact sliding-window logs in this process's memory (the default backend)."""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import deque
from typing import Any

from hermes_proxy.ratelimit.base import ALLOWED, WINDOW_S, RateDecision, Ticket, decide
from hermes_proxy.ratelimit.scopes import Scope, ScopeState, scopes_for
from policies.types import TeamPolicy

_SWEEP_EVERY = 4096


class _Log:
    """The sliding-window log of one scope: ``(time, id)`` of each request, and ``(time, tokens, id)`` token entries
    with their running sum (completion entries have the id ``""``). The ids let a refund find its own entries."""

    __slots__ = ("requests", "token_sum", "tokens")

    def __init__(self) -> None:
        self.requests: deque[tuple[float, str]] = deque()
        self.tokens: deque[tuple[float, int, str]] = deque()
        self.token_sum = 0

    def prune(self, cutoff: float) -> None:
        requests, tokens = self.requests, self.tokens
        while requests and requests[0][0] <= cutoff:
            requests.popleft()
        while tokens and tokens[0][0] <= cutoff:
            self.token_sum -= tokens.popleft()[1]

    def refund(self, ticket: Ticket) -> None:
        """Remove the entries of ``ticket``'s request. Both logs are ordered by time and a refund usually follows its
        admit closely, so the search runs from the newest entry back to the ticket's time only."""
        requests, tokens = self.requests, self.tokens
        for index in range(len(requests) - 1, -1, -1):
            at, ident = requests[index]
            if at < ticket.at:
                break
            if ident == ticket.id:
                del requests[index]
                break
        for index in range(len(tokens) - 1, -1, -1):
            at, count, ident = tokens[index]
            if at < ticket.at:
                break
            if ident == ticket.id:
                del tokens[index]
                self.token_sum -= count
                break

    @property
    def empty(self) -> bool:
        return not self.requests and not self.tokens


class InProcessRateLimiter:
    """Exact sliding-window limits for one process. Amortised O(1) per request (each entry is appended once and
    popped once); scopes whose window has emptied are swept away every few thousand operations."""

    def __init__(self, *, window_s: float = WINDOW_S, clock: Any = time.monotonic) -> None:
        self._window = window_s
        self._clock = clock
        self._logs: dict[tuple[str, ...], _Log] = {}
        # admit never awaits, so it is atomic on the event loop; the lock covers callers on other threads too
        self._lock = threading.Lock()
        self._ops = 0
        self._last_now = -math.inf
        self._ids = itertools.count(1)

    async def admit(self, team: TeamPolicy, key_id: str | None, prompt_tokens: int, *,
                    now: float | None = None) -> RateDecision:
        scopes = scopes_for(team, key_id)
        if not scopes:
            return ALLOWED
        with self._lock:
            now = self._now(now)
            cutoff = now - self._window
            logs = [self._log(scope, cutoff) for scope in scopes]
            states = [self._check(scope, entry, now) for scope, entry in zip(scopes, logs, strict=True)]
            ticket = None
            if not any(state.refusals for state in states):
                ticket = Ticket(str(next(self._ids)), now, max(0, prompt_tokens))
                for scope, entry, state in zip(scopes, logs, states, strict=True):
                    if scope.rpm is not None:
                        entry.requests.append((now, ticket.id))
                        state.requests += 1
                        state.requests_reset_s = self._window
                    if scope.tpm is not None and prompt_tokens > 0:
                        entry.tokens.append((now, prompt_tokens, ticket.id))
                        entry.token_sum += prompt_tokens
                        state.tokens += prompt_tokens
                        state.tokens_reset_s = self._window
            self._maybe_sweep(cutoff)
        return decide(states, ticket)

    async def record_completion(self, team: TeamPolicy, key_id: str | None, tokens: int, *,
                                now: float | None = None) -> None:
        if tokens <= 0:
            return
        scopes = [scope for scope in scopes_for(team, key_id) if scope.tpm is not None]
        if not scopes:
            return
        with self._lock:
            now = self._now(now)
            cutoff = now - self._window
            for scope in scopes:
                entry = self._log(scope, cutoff)
                entry.tokens.append((now, tokens, ""))
                entry.token_sum += tokens

    async def refund(self, team: TeamPolicy, key_id: str | None, ticket: Ticket) -> None:
        scopes = scopes_for(team, key_id)
        with self._lock:
            for scope in scopes:
                entry = self._logs.get(scope.ident)
                if entry is not None:
                    entry.refund(ticket)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._logs.clear()

    def _now(self, now: float | None) -> float:
        # the logs are ordered by time: never let a caller's clock step backwards into them
        value = self._clock() if now is None else now
        if value < self._last_now:
            value = self._last_now
        self._last_now = value
        return value

    def _log(self, scope: Scope, cutoff: float) -> _Log:
        entry = self._logs.get(scope.ident)
        if entry is None:
            entry = self._logs[scope.ident] = _Log()
        else:
            entry.prune(cutoff)
        return entry

    def _check(self, scope: Scope, entry: _Log, now: float) -> ScopeState:
        window = self._window
        state = ScopeState(scope, requests=len(entry.requests), tokens=entry.token_sum)
        if entry.requests:
            state.requests_reset_s = entry.requests[-1][0] + window - now
        if entry.tokens:
            state.tokens_reset_s = entry.tokens[-1][0] + window - now
        rpm, tpm = scope.rpm, scope.tpm
        if rpm is not None and state.requests + 1 > rpm:
            # room appears when the entry at index (count - rpm) leaves the window
            index = state.requests - rpm
            wait = entry.requests[index][0] + window - now if 0 <= index < state.requests else window
            state.refusals.append(("requests", wait))
        if tpm is not None and state.tokens >= tpm:
            need = state.tokens - tpm + 1  # tokens that must leave before the sum is under the limit
            wait, gone = window, 0
            for ts, count, _ in entry.tokens:
                gone += count
                if gone >= need:
                    wait = ts + window - now
                    break
            state.refusals.append(("tokens", wait))
        return state

    def _maybe_sweep(self, cutoff: float) -> None:
        self._ops += 1
        if self._ops % _SWEEP_EVERY:
            return
        for ident in list(self._logs):
            entry = self._logs[ident]
            entry.prune(cutoff)
            if entry.empty:
                del self._logs[ident]
