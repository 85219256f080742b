"""The Redis rate limiter: the same exact sliding-window logs, shared by every replica.

One Lua script per admit (``admit.lua``), so check-and-count is atomic across processes, and one per refund
(``refund.lua``), so taking an admission back is too; the clock is Redis's ``TIME`` so replicas with skewed clocks
agree; every key carries a TTL so nothing lingers. The scripts are package files, read when a limiter is built (see
:func:`lua_script`).

When Redis cannot be reached the limiter fails OPEN (the request is admitted, without headers, and a warning is
logged), because rate limits protect throughput and fairness, not money: spend is enforced by the ledger, which fails
closed. Making the whole proxy unavailable because an auxiliary counter is down would turn a Redis outage into a full
outage. ``/readyz`` still reports the problem through :meth:`RedisRateLimiter.ping`. Pass ``fail_open=False`` to refuse
with :class:`RateLimiterUnavailable` (503) instead.
"""

from __future__ import annotations

import logging
import time
import uuid
from importlib import resources
from typing import Any

from hermes_proxy.ratelimit.base import ALLOWED, WINDOW_S, RateDecision, RateLimiterUnavailable, Ticket, decide
from hermes_proxy.ratelimit.scopes import Scope, ScopeState, scopes_for, token_scopes
from hermes_proxy.retry_after import retry_after_seconds
from policies.types import TeamPolicy

log = logging.getLogger("hermes_proxy.ratelimit")


def lua_script(name: str) -> str:
    """The source of one of this package's Lua scripts (``"admit.lua"``, ``"record.lua"``, ``"refund.lua"``), after
    the helpers of ``common.lua`` it uses."""
    files = resources.files("hermes_proxy.ratelimit")
    return files.joinpath("common.lua").read_text("utf-8") + files.joinpath(name).read_text("utf-8")


class RedisRateLimiter:
    """Exact sliding-window limits shared by every replica through Redis.

    Each admit is one Lua script (``EVALSHA``, loaded again by redis-py when the server lost it), so the check and the
    count are atomic across processes. Without an injected ``now`` the time is Redis's own ``TIME``.
    On connection errors or timeouts, admits are allowed (``fail_open=True``, the default; see the module docstring)
    and Redis is not tried again for ``retry_interval_s``, so an outage adds no latency to every request.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "hermes:rl:",
        window_s: float = WINDOW_S,
        fail_open: bool = True,
        timeout_s: float = 0.5,
        max_connections: int = 64,
        retry_interval_s: float = 1.0,
    ) -> None:
        import redis.asyncio as redis_asyncio
        from redis import exceptions

        pool = redis_asyncio.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout_s, socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s, decode_responses=True)
        self._redis = redis_asyncio.Redis.from_pool(pool)
        self._admit_script = self._redis.register_script(lua_script("admit.lua"))
        self._record_script = self._redis.register_script(lua_script("record.lua"))
        self._refund_script = self._redis.register_script(lua_script("refund.lua"))
        self._prefix = prefix
        self._window = window_s
        self._fail_open = fail_open
        self._retry_interval = retry_interval_s
        self._down_until = 0.0
        self._unavailable: tuple[type[BaseException], ...] = (
            exceptions.ConnectionError, exceptions.TimeoutError, exceptions.ReadOnlyError, OSError, TimeoutError)
        self._redis_error: type[BaseException] = exceptions.RedisError
        #: how many admits were let through (or refused, with fail_open=False) because Redis was unreachable
        self.failures = 0

    async def admit(self, team: TeamPolicy, key_id: str | None, prompt_tokens: int, *,
                    now: float | None = None) -> RateDecision:
        scopes = scopes_for(team, key_id)
        if not scopes:
            return ALLOWED
        if self._skipping():
            return self._unreachable(None)
        ident, prompt = uuid.uuid4().hex, max(0, prompt_tokens)
        keys = self._scope_keys(team.name, scopes)
        args: list[str | int] = ["" if now is None else repr(float(now)), repr(self._window), ident, prompt]
        for scope in scopes:
            args += [-1 if scope.rpm is None else scope.rpm, -1 if scope.tpm is None else scope.tpm]
        try:
            raw = await self._admit_script(keys=keys, args=args)
        except self._unavailable as exc:
            return self._unreachable(exc)
        self._down_until = 0.0
        ticket = Ticket(ident, float(raw[1]), prompt) if int(raw[0]) else None
        return decide(self._states(scopes, raw), ticket)

    async def record_completion(self, team: TeamPolicy, key_id: str | None, tokens: int, *,
                                now: float | None = None) -> None:
        scopes = token_scopes(team, key_id, tokens)
        if not scopes or self._skipping():
            return
        keys: list[str] = []
        for scope in scopes:
            base = self._key(team.name, scope)
            keys += [base + ":tok", base + ":sum"]
        args: list[str | int] = ["" if now is None else repr(float(now)), repr(self._window), uuid.uuid4().hex,
                                 tokens]
        try:
            await self._record_script(keys=keys, args=args)
        except self._unavailable as exc:
            self._mark_down(exc)

    async def refund(self, team: TeamPolicy, key_id: str | None, ticket: Ticket) -> None:
        scopes = scopes_for(team, key_id)
        if not scopes or self._skipping():
            return
        try:
            await self._refund_script(keys=self._scope_keys(team.name, scopes), args=[ticket.id, ticket.tokens])
        except (*self._unavailable, self._redis_error) as exc:
            # the request keeps its slot until it leaves the window: a small cost, not worth failing the request for
            log.warning("rate limiter: could not refund a request of team '%s' (%s: %s); it counts until it leaves "
                        "the window", team.name, type(exc).__name__, exc)
            if isinstance(exc, self._unavailable):
                self._down_until = time.monotonic() + self._retry_interval  # spare the next admits the timeout

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except self._unavailable as exc:
            raise RateLimiterUnavailable(f"rate limiter: Redis is unreachable ({exc})") from exc
        self._down_until = 0.0

    async def close(self) -> None:
        await self._redis.aclose()

    # --- internals --------------------------------------------------------------------------------------------

    def _scope_keys(self, team: str, scopes: list[Scope]) -> list[str]:
        """The three keys of each scope, in order: its requests, its tokens, its token sum."""
        keys: list[str] = []
        for scope in scopes:
            base = self._key(team, scope)
            keys += [base + ":req", base + ":tok", base + ":sum"]
        return keys

    def _key(self, team: str, scope: Scope) -> str:
        # the team's name is the hash tag: a team's keys and its keys' keys sit in one Cluster slot
        rest = "team" if scope.ident[0] == "team" else "key:" + scope.ident[2]
        return f"{self._prefix}{{{team}}}:{rest}"

    def _states(self, scopes: list[Scope], raw: list[Any]) -> list[ScopeState]:
        now = float(raw[1])
        states: list[ScopeState] = []
        for i, scope in enumerate(scopes):
            requests, r_newest, tokens, t_newest, r_wait, t_wait = raw[2 + 6 * i: 8 + 6 * i]
            state = ScopeState(scope, requests=int(float(requests)), tokens=int(float(tokens)))
            if r_newest:
                state.requests_reset_s = max(0.0, float(r_newest) + self._window - now)
            if t_newest:
                state.tokens_reset_s = max(0.0, float(t_newest) + self._window - now)
            if r_wait:
                state.refusals.append(("requests", float(r_wait)))
            if t_wait:
                state.refusals.append(("tokens", float(t_wait)))
            states.append(state)
        return states

    def _skipping(self) -> bool:
        return self._down_until > 0 and time.monotonic() < self._down_until

    def _mark_down(self, exc: BaseException | None) -> None:
        self.failures += 1
        if exc is not None:
            log.warning("rate limiter: Redis unreachable (%s: %s); %s for %.1f s", type(exc).__name__, exc,
                        "admitting requests without limits" if self._fail_open else "refusing requests",
                        self._retry_interval)
            self._down_until = time.monotonic() + self._retry_interval

    def _unreachable(self, exc: BaseException | None) -> RateDecision:
        self._mark_down(exc)
        if self._fail_open:
            return ALLOWED
        raise RateLimiterUnavailable("rate limiter: Redis is unreachable; try again shortly",
                                     headers={"retry-after": str(retry_after_seconds(self._retry_interval))})
