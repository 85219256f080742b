"""The response cache in Redis, shared by every replica.

Keys, for a team whose name is escaped into ``{t}`` (percent-encoded, so no ``:`` nor brace is left in it and two
teams can never share a key; the braces make it the Cluster hash tag, so a team's keys sit in one slot)::

    {prefix}{t}:e:{key}   the entry: JSON of created_at / expires_at (epoch microseconds) and body, with a TTL
                          (PX) until expires_at; ``e:`` keeps an entry apart from the bookkeeping whatever its key
    {prefix}{t}:index     sorted set, key -> created_at: oldest first, for the byte cap
    {prefix}{t}:expiry    sorted set, key -> expires_at: soonest first, for pruning
    {prefix}{t}:sizes     hash, key -> bytes
    {prefix}{t}:bytes     the team's total of those bytes
    {prefix}teams         set of every ``{t}`` that ever put (for usage and clear-all)

A put is one Lua script (replace, prune, evict), so replicas racing on one team stay consistent. The bookkeeping
expires with the team's longest-lived entry. Entries that expire on their own (Redis's TTL) leave the bookkeeping
behind: each script first prunes, soonest expiry first, every member past its expires_at or whose entry key is gone,
stopping at the first live one; keys expire in that same order, so this is amortized O(1) and a team's byte total
never keeps counting what already expired.

Savings are not cached data but money the spend report sums: they go to the ledger's database store given as
``savings`` (nowhere when None).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

from hermes_proxy.cache.store import CachedEntry, CacheStore, CacheUsage, entry_size
from hermes_proxy.errors import LedgerUnavailable
from hermes_proxy.ledger.amounts import from_micros, to_micros
from policies.budget import now_utc

# KEYS: index, expiry, sizes, bytes; ARGV[1]: the prefix of the team's entry keys, ARGV[2]: now (epoch microseconds)
_COMMON = """
local index, expiry, sizes, total = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local entries, now = ARGV[1], tonumber(ARGV[2])

local function drop(member)
  local size = redis.call('HGET', sizes, member)
  if size then
    redis.call('DECRBY', total, size)
    redis.call('HDEL', sizes, member)
  end
  redis.call('ZREM', index, member)
  redis.call('ZREM', expiry, member)
  redis.call('DEL', entries .. member)
end

local function prune()
  while true do
    local first = redis.call('ZRANGE', expiry, 0, 0, 'WITHSCORES')
    if #first == 0 then return end
    if tonumber(first[2]) > now and redis.call('EXISTS', entries .. first[1]) == 1 then return end
    drop(first[1])
  end
end

local function live_bytes()
  return tonumber(redis.call('GET', total) or '0')
end
"""

# ARGV[3..]: key, JSON, created_at, expires_at (microseconds), size, TTL (ms; <= 0: already expired), cap (-1: none)
_PUT = _COMMON + """
local key, value, created, expires = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local size, ttl, cap = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
prune()
drop(key)
if ttl <= 0 then return 0 end
redis.call('SET', entries .. key, value, 'PX', ttl)
redis.call('ZADD', index, created, key)
redis.call('ZADD', expiry, expires, key)
redis.call('HSET', sizes, key, size)
redis.call('INCRBY', total, size)
if cap >= 0 then
  while live_bytes() > cap do
    local oldest = redis.call('ZRANGE', index, 0, 1)
    local victim = oldest[1]
    if victim == key then victim = oldest[2] end
    if not victim then
      drop(key)
      break
    end
    drop(victim)
  end
end
for _, name in ipairs(KEYS) do
  if redis.call('PTTL', name) < ttl then redis.call('PEXPIRE', name, ttl) end
end
return 1
"""

_USAGE = _COMMON + """
prune()
return {redis.call('ZCARD', index), live_bytes()}
"""

_CLEAR = _COMMON + """
prune()
local members = redis.call('ZRANGE', index, 0, -1)
for _, member in ipairs(members) do redis.call('DEL', entries .. member) end
redis.call('DEL', index, expiry, sizes, total)
return #members
"""

# KEYS[1]: the set of teams; ARGV: the team, the TTL (ms) of its newest entry
_REGISTER = """
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
"""


class RedisCacheStore:
    """The cache in Redis at ``url``, under ``prefix``; ``savings`` (the ledger's database store) records savings.

    Every command waits at most ``timeout_s``; when Redis cannot be reached, :meth:`get`, :meth:`put` and the rest
    raise :class:`LedgerUnavailable` (the caller's miss). Other Redis errors are raised as they are."""

    def __init__(self, url: str, prefix: str = "hermes-cache:", timeout_s: float = 2.0,
                 clock: Callable[[], datetime] = now_utc, *, savings: CacheStore | None = None,
                 max_connections: int = 64) -> None:
        import redis.asyncio as redis_asyncio
        from redis import exceptions

        pool = redis_asyncio.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=timeout_s, socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s, decode_responses=True)
        self._redis = redis_asyncio.Redis.from_pool(pool)
        self._put = self._redis.register_script(_PUT)
        self._usage = self._redis.register_script(_USAGE)
        self._clear = self._redis.register_script(_CLEAR)
        self._register = self._redis.register_script(_REGISTER)
        self._prefix = prefix
        self._clock = clock
        self._savings = savings
        parts = urlsplit(url)
        self._where = f"{parts.hostname or 'localhost'}:{parts.port or 6379}"  # never the password
        self._unavailable: tuple[type[BaseException], ...] = (
            exceptions.ConnectionError, exceptions.TimeoutError, exceptions.ReadOnlyError, OSError, TimeoutError)

    async def get(self, team: str, key: str) -> CachedEntry | None:
        with self._reachable():
            raw = await self._redis.get(self._entries(_tag(team)) + key)
        if raw is None:
            return None
        value = json.loads(raw)
        entry = CachedEntry(team, key, from_micros(value["created_at"]), from_micros(value["expires_at"]),
                            value["body"])
        return entry if entry.expires_at > self._clock() else None

    async def put(self, entry: CachedEntry, *, max_team_bytes: int | None) -> None:
        now = self._clock()
        tag = _tag(entry.team)
        value = json.dumps({"created_at": to_micros(entry.created_at), "expires_at": to_micros(entry.expires_at),
                            "body": entry.body}, ensure_ascii=False, separators=(",", ":"))
        ttl_ms = math.ceil((entry.expires_at - now).total_seconds() * 1000)
        args = [to_micros(entry.created_at), to_micros(entry.expires_at), entry_size(entry), ttl_ms,
                -1 if max_team_bytes is None else max_team_bytes]
        with self._reachable():
            if ttl_ms > 0:  # registered first: a clear-all or usage running in between still finds the team
                await self._register(keys=[self._prefix + "teams"], args=[tag, ttl_ms])
            await self._put(keys=self._team_keys(tag), args=[*self._team_args(tag, now), entry.key, value, *args])

    async def usage(self) -> CacheUsage:
        now = self._clock()
        with self._reachable():
            tags = await self._teams()
            async with self._redis.pipeline(transaction=False) as pipe:
                for tag in tags:
                    await self._usage(keys=self._team_keys(tag), args=self._team_args(tag, now), client=pipe)
                counts: list[Any] = await pipe.execute()
        return CacheUsage(entries=sum(int(c[0]) for c in counts), bytes=sum(int(c[1]) for c in counts))

    async def clear(self, team: str | None = None) -> int:
        now = self._clock()
        with self._reachable():
            # the set of teams stays (it expires with the newest entry): deleting it could lose a racing put's team
            tags = [_tag(team)] if team is not None else await self._teams()
            async with self._redis.pipeline(transaction=False) as pipe:
                for tag in tags:
                    await self._clear(keys=self._team_keys(tag), args=self._team_args(tag, now), client=pipe)
                cleared: list[Any] = await pipe.execute()
        return sum(int(n) for n in cleared)

    async def record_saving(self, request_id: str, saved_usd: Decimal) -> None:
        if self._savings is not None:
            await self._savings.record_saving(request_id, saved_usd)

    async def close(self) -> None:
        """Close the connections to Redis (``savings`` is not this store's: its owner closes it)."""
        await self._redis.aclose()

    # --- internals --------------------------------------------------------------------------------------------

    async def _teams(self) -> list[str]:
        """The ``{t}`` of every team with entries (and maybe of some whose entries are gone)."""
        members = await self._redis.smembers(self._prefix + "teams")
        return sorted(m if isinstance(m, str) else m.decode() for m in members)

    def _entries(self, tag: str) -> str:
        return f"{self._prefix}{{{tag}}}:e:"

    def _team_keys(self, tag: str) -> list[str]:
        base = f"{self._prefix}{{{tag}}}:"
        return [base + "index", base + "expiry", base + "sizes", base + "bytes"]

    def _team_args(self, tag: str, now: datetime) -> list[str | int]:
        return [self._entries(tag), to_micros(now)]

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        try:
            yield
        except self._unavailable as exc:
            raise LedgerUnavailable(f"response cache: Redis at {self._where} is unreachable ({exc})") from exc


def _tag(team: str) -> str:
    """The team as it appears in key names: percent-encoded, so ``:``, braces and ``%`` never appear raw and two teams
    never share one."""
    return quote(team, safe="")
