"""Per-team and per-key rate limits: requests per minute and tokens per minute, exact over a sliding 60 s window.

Two scopes may apply to a request: the team (``team.rate_limits``, shared by all its keys) and the key it used
(``team.key_rate_limits``, for each key separately). :meth:`RateLimiter.admit` checks both and counts the request in
both, atomically: a refused request counts nothing anywhere. An admitted request that is then refused by its budget
is taken back with :meth:`RateLimiter.refund` (its decision's ``ticket``), so it costs no slot either.

Algorithm: a sliding-window *log* for both dimensions, so there is no approximation at window edges.

- requests: the timestamps of the requests counted in the last 60 s. A request is refused when one more would exceed
  the RPM; ``Retry-After`` is when enough of the oldest entries have left the window to make room (usually the oldest).
- tokens: ``(timestamp, tokens)`` entries plus a running sum (so checking costs O(1), not a sum over the log). A request
  is refused only when the tokens already used in the window are >= TPM; an admitted request may take the counter past
  the limit once (its prompt tokens, then its completion tokens via :meth:`RateLimiter.record_completion`), as OpenAI
  does. ``Retry-After`` is when enough of the oldest entries have left to bring the sum under the limit. A
  sliding-window *counter* (two fixed windows, weighted) would be O(1) memory but can be off by up to a whole window's
  worth at the edges; the log costs one entry per request in the last minute, which is small, and is exact.

Entries leave the window at ``t + 60 s`` exactly (an entry at ``t`` counts while ``now - t < 60``).

Modules, one job each:

- ``base``: the :class:`RateLimiter` protocol, :class:`RateDecision` and how counter states become one;
- ``scopes``: which limits apply to a request, and the state of one scope's counters after an admit;
- ``headers``: OpenAI's ``x-ratelimit-*`` response headers;
- ``memory``: :class:`InProcessRateLimiter` (one process; the default);
- ``redis``: :class:`RedisRateLimiter` (shared by every replica), with its Lua scripts in ``common.lua``,
  ``admit.lua``, ``record.lua`` and ``refund.lua`` next to it, read when a Redis limiter is built.
"""

from __future__ import annotations

from hermes_proxy.config import RateLimitsConfig
from hermes_proxy.ratelimit.base import (
    ALLOWED,
    WINDOW_S,
    RateDecision,
    RateLimiter,
    RateLimiterUnavailable,
    Ticket,
)
from hermes_proxy.ratelimit.headers import format_duration
from hermes_proxy.ratelimit.memory import InProcessRateLimiter
from hermes_proxy.ratelimit.redis import RedisRateLimiter
from hermes_proxy.ratelimit.sqlite import SQLiteRateLimiter

__all__ = [
    "ALLOWED",
    "WINDOW_S",
    "InProcessRateLimiter",
    "RateDecision",
    "RateLimiter",
    "RateLimiterUnavailable",
    "RedisRateLimiter",
    "SQLiteRateLimiter",
    "Ticket",
    "format_duration",
    "open_rate_limiter",
]


def open_rate_limiter(config: RateLimitsConfig) -> RateLimiter:
    """Redis-backed (shared across replicas) or in a SQLite file (shared by the workers of one host) when
    ``[rate_limits] url`` says so, else in-process."""
    if config.url and config.url.startswith("sqlite:///"):
        return SQLiteRateLimiter(config.url)
    if config.url:
        return RedisRateLimiter(config.url)
    return InProcessRateLimiter()
