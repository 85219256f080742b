"""The in-process rate limiter: exact sliding-window logs in this process's memory (the default backend)."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from typing import Any

from hermes_proxy.ratelimit.base import ALLOWED, WINDOW_S, RateDecision, Ticket, decide
from hermes_proxy.ratelimit.scopes import ForwardClock, Scope, ScopeState, scopes_for, token_scopes, window_state
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
        self._now = ForwardClock(clock)
        self._logs: dict[tuple[str, ...], _Log] = {}
        # admit never awaits, so it is atomic on the event loop; the lock covers callers on other threads too
        self._lock = threading.Lock()
        self._ops = 0
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
                for entry, state in zip(logs, states, strict=True):
                    logs_request, logs_tokens = state.count(ticket.tokens, self._window)
                    if logs_request:
                        entry.requests.append((now, ticket.id))
                    if logs_tokens:
                        entry.tokens.append((now, ticket.tokens, ticket.id))
                        entry.token_sum += ticket.tokens
            self._maybe_sweep(cutoff)
        return decide(states, ticket)

    async def record_completion(self, team: TeamPolicy, key_id: str | None, tokens: int, *,
                                now: float | None = None) -> None:
        scopes = token_scopes(team, key_id, tokens)
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

    def _log(self, scope: Scope, cutoff: float) -> _Log:
        entry = self._logs.get(scope.ident)
        if entry is None:
            entry = self._logs[scope.ident] = _Log()
        else:
            entry.prune(cutoff)
        return entry

    def _check(self, scope: Scope, entry: _Log, now: float) -> ScopeState:
        requests, tokens = entry.requests, entry.tokens
        return window_state(scope, now, self._window, requests=len(requests),
                            last_request=requests[-1][0] if requests else None, tokens=entry.token_sum,
                            last_tokens=tokens[-1][0] if tokens else None,
                            request_at=lambda index: requests[index][0],
                            token_log=lambda: ((at, count) for at, count, _ in tokens))

    def _maybe_sweep(self, cutoff: float) -> None:
        self._ops += 1
        if self._ops % _SWEEP_EVERY:
            return
        for ident in list(self._logs):
            entry = self._logs[ident]
            entry.prune(cutoff)
            if entry.empty:
                del self._logs[ident]
