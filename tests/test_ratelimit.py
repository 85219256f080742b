"""Rate limits, in-process and through a real Redis (``HERMES_TEST_REDIS_URL``; skipped when unset)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from hermes_proxy.app import create_app
from hermes_proxy.appkeys import current_gateway
from hermes_proxy.config import RateLimitsConfig
from hermes_proxy.errors import RateLimited
from hermes_proxy.ratelimit import (
    InProcessRateLimiter,
    RateDecision,
    RateLimiter,
    RateLimiterUnavailable,
    RedisRateLimiter,
    SQLiteRateLimiter,
    Ticket,
    format_duration,
    open_rate_limiter,
)
from hermes_proxy.ratelimit.redis import lua_script
from hermes_proxy.retry_after import parse_retry_after, retry_after_seconds, wait_ms
from policies.types import RateLimitRule, TeamPolicy
from tests.conftest import build_config
from tests.fake_upstream import Script, make_upstream_app

REDIS_URL = os.environ.get("HERMES_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="HERMES_TEST_REDIS_URL is not set")

T0 = 1_700_000_000.0  # an epoch-like clock, so float noise at that magnitude is exercised too

Factory = Callable[[], RateLimiter]


def team(rpm: int | None = None, tpm: int | None = None, *, key_rpm: int | None = None, key_tpm: int | None = None,
         name: str = "research") -> TeamPolicy:
    rule = RateLimitRule(rpm, tpm) if rpm is not None or tpm is not None else None
    key_rule = RateLimitRule(key_rpm, key_tpm) if key_rpm is not None or key_tpm is not None else None
    return TeamPolicy(name=name, rate_limits=rule, key_rate_limits=key_rule)


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=needs_redis)])
async def make_limiter(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Factory]:
    """A factory of limiters sharing one state: in-process, the same instance; with SQLite, new connections ("workers")
    on one file; with Redis, new "replicas" on one prefix."""
    created: list[RateLimiter] = []
    if request.param == "memory":
        shared = InProcessRateLimiter()
        created.append(shared)

        def factory() -> RateLimiter:
            return shared
    elif request.param == "sqlite":

        def factory() -> RateLimiter:
            limiter = SQLiteRateLimiter(f"sqlite:///{tmp_path / 'rate-limits.sqlite3'}")
            created.append(limiter)
            return limiter
    else:
        prefix = f"hermes-test:{uuid.uuid4().hex}:"

        def factory() -> RateLimiter:
            assert REDIS_URL is not None
            # a generous timeout: these tests count, and a loaded CI machine can stall a connection past the 0.5 s default
            limiter = RedisRateLimiter(REDIS_URL, prefix=prefix, fail_open=False, timeout_s=5.0)
            created.append(limiter)
            return limiter

    yield factory
    if request.param == "redis":
        import redis.asyncio as redis_asyncio

        assert REDIS_URL is not None
        client = redis_asyncio.from_url(REDIS_URL)
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    for limiter in {id(x): x for x in created}.values():
        await limiter.close()


@pytest.fixture
def limiter(make_limiter: Factory) -> RateLimiter:
    return make_limiter()


async def admit_many(limiter: RateLimiter, policy: TeamPolicy, times: list[float], key_id: str | None = None,
                     tokens: int = 0) -> list[RateDecision]:
    return [await limiter.admit(policy, key_id, tokens, now=t) for t in times]


async def test_sixth_request_in_a_minute_is_refused(limiter: RateLimiter) -> None:
    policy = team(rpm=5)
    decisions = await admit_many(limiter, policy, [T0 + i for i in range(5)])
    assert all(d.allowed for d in decisions)
    assert [d.headers["x-ratelimit-remaining-requests"] for d in decisions] == ["4", "3", "2", "1", "0"]
    sixth = await limiter.admit(policy, None, 0, now=T0 + 18)
    assert not sixth.allowed
    # the oldest entry (T0) leaves the window at T0 + 60: 42 s from now
    assert sixth.retry_after_s == 42
    assert sixth.headers["retry-after"] == "42"
    assert sixth.headers["retry-after-ms"] == "42000"
    assert sixth.headers["x-ratelimit-limit-requests"] == "5"
    assert sixth.headers["x-ratelimit-remaining-requests"] == "0"
    assert sixth.message == ("Rate limit reached for team 'research' (requests per minute): limit 5, used 5. "
                             "Retry after 42 s.")
    assert sixth.limit_type == "requests"
    error = sixth.error()
    assert isinstance(error, RateLimited) and error.status == 429 and error.headers["retry-after"] == "42"


async def test_three_replicas_share_one_limit(make_limiter: Factory) -> None:
    replicas = [make_limiter() for _ in range(3)]
    policy = team(rpm=5)
    decisions = [await replicas[i % 3].admit(policy, None, 0, now=T0 + i) for i in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert decisions[-1].retry_after_s == 55


async def test_the_window_slides(limiter: RateLimiter) -> None:
    policy = team(rpm=5)
    assert all(d.allowed for d in await admit_many(limiter, policy, [T0, T0 + 10, T0 + 20, T0 + 30, T0 + 40]))
    refused = await limiter.admit(policy, None, 0, now=T0 + 50)
    assert not refused.allowed and refused.retry_after_s == 10
    almost = await limiter.admit(policy, None, 0, now=T0 + 59.9)
    assert not almost.allowed and almost.retry_after_s == 1 and almost.headers["retry-after-ms"] == "100"
    # T0's request leaves at exactly T0 + 60
    assert (await limiter.admit(policy, None, 0, now=T0 + 60)).allowed
    again = await limiter.admit(policy, None, 0, now=T0 + 61)
    assert not again.allowed and again.retry_after_s == 9  # now T0 + 10 is the oldest
    # after a quiet minute everything is forgotten
    later = await admit_many(limiter, policy, [T0 + 200 + i for i in range(5)])
    assert all(d.allowed for d in later)
    assert later[0].headers["x-ratelimit-remaining-requests"] == "4"


async def test_a_refused_request_counts_nothing(limiter: RateLimiter) -> None:
    policy = team(rpm=2, tpm=1000)
    assert all(d.allowed for d in await admit_many(limiter, policy, [T0, T0 + 1], tokens=100))
    for i in range(10):
        refused = await limiter.admit(policy, None, 100, now=T0 + 2 + i)
        assert not refused.allowed
        assert refused.headers["x-ratelimit-remaining-tokens"] == "800"  # the refused prompts were not counted
    # when the first two leave, there is room for exactly two again: the ten refusals left no trace
    assert [d.allowed for d in await admit_many(limiter, policy, [T0 + 61.5, T0 + 61.6, T0 + 61.7], tokens=100)] == \
        [True, True, False]


async def test_a_refusal_by_the_key_does_not_count_against_the_team(limiter: RateLimiter) -> None:
    policy = team(rpm=3, key_rpm=1)
    assert (await limiter.admit(policy, "key-a", 0, now=T0)).allowed
    refused = await limiter.admit(policy, "key-a", 0, now=T0 + 1)
    assert not refused.allowed
    # the team saw one request, not two: two more (from other keys) fit
    assert (await limiter.admit(policy, "key-b", 0, now=T0 + 2)).allowed
    assert (await limiter.admit(policy, "key-c", 0, now=T0 + 3)).allowed
    assert not (await limiter.admit(policy, "key-d", 0, now=T0 + 4)).allowed


async def test_per_key_limit_tighter_than_the_team(limiter: RateLimiter) -> None:
    policy = team(rpm=10, key_rpm=2)
    first = await limiter.admit(policy, "key-a", 0, now=T0)
    # the headers describe the tightest scope: the key's
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert (await limiter.admit(policy, "key-a", 0, now=T0 + 1)).allowed
    refused = await limiter.admit(policy, "key-a", 0, now=T0 + 2)
    assert not refused.allowed and refused.retry_after_s == 58
    assert refused.message == ("Rate limit reached for key 'key-a' of team 'research' (requests per minute): "
                               "limit 2, used 2. Retry after 58 s.")
    # another key of the same team has its own allowance; the team's counts all keys
    other = await limiter.admit(policy, "key-b", 0, now=T0 + 3)
    assert other.allowed and other.headers["x-ratelimit-remaining-requests"] == "1"
    # without a key only the team's limit applies (3 used of 10)
    no_key = await limiter.admit(policy, None, 0, now=T0 + 4)
    assert no_key.allowed and no_key.headers["x-ratelimit-limit-requests"] == "10"
    assert no_key.headers["x-ratelimit-remaining-requests"] == "6"


async def test_team_limit_binds_across_keys(limiter: RateLimiter) -> None:
    policy = team(rpm=3, key_rpm=2)
    results = [await limiter.admit(policy, f"key-{i}", 0, now=T0 + i) for i in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert "team 'research'" in (results[-1].message or "")
    assert results[2].headers["x-ratelimit-remaining-requests"] == "0"  # team: 0 left, tighter than the key's 1


async def test_tokens_per_minute(limiter: RateLimiter) -> None:
    policy = team(tpm=1000)
    first = await limiter.admit(policy, None, 400, now=T0)
    assert first.allowed
    assert first.headers["x-ratelimit-limit-tokens"] == "1000"
    assert first.headers["x-ratelimit-remaining-tokens"] == "600"
    assert "x-ratelimit-limit-requests" not in first.headers
    await limiter.record_completion(policy, None, 300, now=T0 + 5)  # 700 used
    # not yet spent: admitted, and it may take the counter past the limit once (700 + 500)
    over = await limiter.admit(policy, None, 500, now=T0 + 10)
    assert over.allowed and over.headers["x-ratelimit-remaining-tokens"] == "0"
    refused = await limiter.admit(policy, None, 1, now=T0 + 20)
    assert not refused.allowed and refused.limit_type == "tokens"
    # 1200 used; under 1000 once 201 have left: T0's 400 leaves at T0 + 60
    assert refused.retry_after_s == 40
    assert refused.message == ("Rate limit reached for team 'research' (tokens per minute): limit 1000, used 1200. "
                               "Retry after 40 s.")
    assert refused.error().type == "tokens"
    after = await limiter.admit(policy, None, 10, now=T0 + 60)
    assert after.allowed and after.headers["x-ratelimit-remaining-tokens"] == "190"  # 300 + 500 + 10 in the window


async def test_token_retry_after_waits_for_enough_tokens_to_leave(limiter: RateLimiter) -> None:
    policy = team(tpm=100)
    for i, n in enumerate((10, 10, 90)):
        assert (await limiter.admit(policy, None, n, now=T0 + i)).allowed
    refused = await limiter.admit(policy, None, 1, now=T0 + 30)
    # 110 used: the first 10 leaving (T0 + 60) leaves 100, still spent; the second (T0 + 61) brings it to 90
    assert not refused.allowed and refused.retry_after_s == 31
    assert not (await limiter.admit(policy, None, 1, now=T0 + 60)).allowed
    assert (await limiter.admit(policy, None, 1, now=T0 + 61)).allowed


async def test_both_limits_and_both_scopes_report_in_headers(limiter: RateLimiter) -> None:
    policy = team(rpm=100, tpm=10_000, key_rpm=5, key_tpm=50_000)
    decision = await limiter.admit(policy, "key-a", 2_000, now=T0)
    assert decision.headers == {
        "x-ratelimit-limit-requests": "5",  # the key's rpm is tighter
        "x-ratelimit-remaining-requests": "4",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "10000",  # the team's tpm is tighter
        "x-ratelimit-remaining-tokens": "8000",
        "x-ratelimit-reset-tokens": "1m0s",
    }
    later = await limiter.admit(policy, "key-a", 0, now=T0 + 0.8)
    # no tokens this time: the tokens reset is still governed by T0's entry
    assert later.headers["x-ratelimit-reset-tokens"] == "59.2s"
    assert later.headers["x-ratelimit-reset-requests"] == "1m0s"


async def test_no_limits_no_headers(limiter: RateLimiter) -> None:
    policy = TeamPolicy(name="free", key_rate_limits=RateLimitRule())
    decisions = await admit_many(limiter, policy, [T0] * 50, key_id="key-a", tokens=10**6)
    assert all(d.allowed and d.headers == {} and d.retry_after_s is None for d in decisions)


async def test_teams_are_independent(limiter: RateLimiter) -> None:
    a, b = team(rpm=1, name="a"), team(rpm=1, name="b")
    assert (await limiter.admit(a, None, 0, now=T0)).allowed
    assert (await limiter.admit(b, None, 0, now=T0)).allowed
    assert not (await limiter.admit(a, None, 0, now=T0 + 1)).allowed


async def test_concurrent_admits_are_exact(make_limiter: Factory) -> None:
    replicas = [make_limiter() for _ in range(4)]
    policy = team(rpm=10, key_rpm=50)
    decisions = await asyncio.gather(*(replicas[i % 4].admit(policy, f"key-{i % 3}", 1) for i in range(100)))
    assert sum(d.allowed for d in decisions) == 10
    refused = [d for d in decisions if not d.allowed]
    assert all(d.retry_after_s is not None and 1 <= d.retry_after_s <= 60 for d in refused)


async def test_concurrent_tokens_count_every_admit(make_limiter: Factory) -> None:
    replicas = [make_limiter() for _ in range(3)]
    policy = team(rpm=1000, tpm=10**9)
    await asyncio.gather(*(replicas[i % 3].admit(policy, None, 7, now=T0) for i in range(90)))
    await asyncio.gather(*(replicas[i % 3].record_completion(policy, None, 3, now=T0 + 1) for i in range(90)))
    decision = await replicas[0].admit(policy, None, 0, now=T0 + 2)
    assert decision.headers["x-ratelimit-remaining-requests"] == str(1000 - 91)
    assert decision.headers["x-ratelimit-remaining-tokens"] == str(10**9 - 900)


# --- refunds: a request admitted here but refused by its budget gives its slot back ----------------------------------


async def test_a_refund_takes_back_the_request_and_its_prompt_tokens_in_every_scope(make_limiter: Factory) -> None:
    first, second = make_limiter(), make_limiter()  # with Redis, the refund may come from another replica
    policy = team(rpm=5, tpm=1000, key_rpm=3, key_tpm=500)
    kept = await first.admit(policy, "key-a", 100, now=T0)
    assert kept.allowed and kept.ticket is not None
    assert (kept.headers["x-ratelimit-remaining-requests"], kept.headers["x-ratelimit-remaining-tokens"]) == ("2", "400")
    refunded = await first.admit(policy, "key-a", 200, now=T0 + 1)
    assert refunded.allowed and refunded.ticket is not None and refunded.ticket != kept.ticket
    assert refunded.headers["x-ratelimit-remaining-tokens"] == "200"
    await second.refund(policy, "key-a", refunded.ticket)
    after = await first.admit(policy, "key-a", 0, now=T0 + 2)
    # exactly as if the refunded request had never come: the key's 3 rpm less 2, its 500 tpm less the kept 100
    assert after.headers["x-ratelimit-remaining-requests"] == "1"
    assert after.headers["x-ratelimit-remaining-tokens"] == "400"
    assert after.headers["x-ratelimit-reset-tokens"] == "58s"  # the newest token entry is the kept one, at T0
    # the team's counters gave it back too: without a key (the team's scope only), 3 of its 5 used, this one included
    team_only = await first.admit(policy, None, 0, now=T0 + 3)
    assert team_only.headers["x-ratelimit-limit-requests"] == "5"
    assert team_only.headers["x-ratelimit-remaining-requests"] == "2"
    assert team_only.headers["x-ratelimit-remaining-tokens"] == "900"


async def test_a_refunded_slot_can_be_used_again(limiter: RateLimiter) -> None:
    policy = team(rpm=2)
    decisions = await admit_many(limiter, policy, [T0, T0 + 1])
    assert not (await limiter.admit(policy, None, 0, now=T0 + 2)).allowed
    assert decisions[1].ticket is not None
    await limiter.refund(policy, None, decisions[1].ticket)
    again = await limiter.admit(policy, None, 0, now=T0 + 3)
    assert again.allowed and again.headers["x-ratelimit-remaining-requests"] == "0"
    assert not (await limiter.admit(policy, None, 0, now=T0 + 4)).allowed


async def test_refused_and_unlimited_admits_carry_no_ticket(limiter: RateLimiter) -> None:
    policy = team(rpm=1)
    assert (await limiter.admit(policy, None, 0, now=T0)).ticket is not None
    assert (await limiter.admit(policy, None, 0, now=T0 + 1)).ticket is None
    assert (await limiter.admit(TeamPolicy(name="free"), None, 10, now=T0)).ticket is None


async def test_refunding_an_unknown_repeated_or_expired_ticket_changes_nothing(limiter: RateLimiter) -> None:
    policy = team(rpm=10, tpm=1000)

    async def remaining(at: float) -> tuple[str, str]:
        # a zero-token probe, refunded at once so that it leaves no trace itself
        probe = await limiter.admit(policy, None, 0, now=at)
        assert probe.ticket is not None
        await limiter.refund(policy, None, probe.ticket)
        return probe.headers["x-ratelimit-remaining-requests"], probe.headers["x-ratelimit-remaining-tokens"]

    a = await limiter.admit(policy, None, 100, now=T0)
    b = await limiter.admit(policy, None, 50, now=T0 + 1)
    assert a.ticket is not None and b.ticket is not None
    assert await remaining(T0 + 2) == ("7", "850")
    await limiter.refund(policy, None, Ticket("no-such-request", T0 + 1, 50))  # unknown
    await limiter.refund(TeamPolicy(name="free"), None, b.ticket)  # a team without limits
    await limiter.refund(team(rpm=10, tpm=1000, name="other"), None, b.ticket)  # another team's counters
    assert await remaining(T0 + 3) == ("7", "850")
    await limiter.refund(policy, None, b.ticket)
    assert await remaining(T0 + 4) == ("8", "900")
    await limiter.refund(policy, None, b.ticket)  # twice: the second finds nothing, and takes nothing else
    assert await remaining(T0 + 5) == ("8", "900")
    # a's entries leave the window at T0 + 60; c's admit drops them; refunding a afterwards does not touch c
    c = await limiter.admit(policy, None, 30, now=T0 + 61)
    assert c.allowed and c.headers["x-ratelimit-remaining-tokens"] == "970"
    await limiter.refund(policy, None, a.ticket)
    assert await remaining(T0 + 62) == ("8", "970")


GO_DURATION = re.compile(r"^(\d+ms|(\d+h)?(\d+m)?\d+(\.\d+)?s)$")


async def test_header_formats(limiter: RateLimiter) -> None:
    policy = team(rpm=3, tpm=100)
    await admit_many(limiter, policy, [T0, T0 + 12.5], tokens=60)
    decision = await limiter.admit(policy, None, 0, now=T0 + 30)
    assert not decision.allowed
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        assert GO_DURATION.match(decision.headers[name]), decision.headers[name]
    assert decision.headers["x-ratelimit-reset-tokens"] == "42.5s"  # the newest entry (T0 + 12.5) leaves at T0 + 72.5
    # 120 tokens used: under 100 once T0's 60 have left, at T0 + 60
    assert decision.headers["retry-after"] == "30"
    assert decision.headers["retry-after-ms"] == "30000"
    assert all(re.fullmatch(r"\d+", decision.headers[h]) for h in ("x-ratelimit-limit-requests",
               "x-ratelimit-remaining-requests", "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens"))


def test_format_duration() -> None:
    cases = {0: "0s", -3: "0s", 0.0004: "0s", 0.012: "12ms", 0.9994: "999ms", 1: "1s", 1.5: "1.5s", 59.2: "59.2s",
             59.9996: "1m0s", 60: "1m0s", 90.25: "1m30.25s", 360: "6m0s", 3600: "1h0m0s", 3725.5: "1h2m5.5s"}
    assert {k: format_duration(k) for k in cases} == cases


async def test_in_process_forgets_idle_scopes() -> None:
    limiter = InProcessRateLimiter()
    for i in range(5000):
        await limiter.admit(team(rpm=5, name=f"t{i}"), None, 0, now=T0 + i * 0.001)
    # a sweep runs every few thousand operations; long after, a sweep drops every emptied scope
    for i in range(5000):
        await limiter.admit(team(rpm=5, name="busy"), None, 0, now=T0 + 120 + i)
    assert len(limiter._logs) <= 2
    await limiter.close()


async def test_in_process_clock_never_steps_back() -> None:
    limiter = InProcessRateLimiter()
    policy = team(rpm=1)
    assert (await limiter.admit(policy, None, 0, now=T0 + 10)).allowed
    assert not (await limiter.admit(policy, None, 0, now=T0)).allowed  # treated as T0 + 10, not before it


def test_open_rate_limiter_picks_the_backend() -> None:
    assert isinstance(open_rate_limiter(RateLimitsConfig()), InProcessRateLimiter)
    redis_limiter = open_rate_limiter(RateLimitsConfig(url="redis://127.0.0.1:6379/0"))
    assert isinstance(redis_limiter, RedisRateLimiter)
    assert isinstance(redis_limiter, RateLimiter)


# --- Redis specifics ----------------------------------------------------------------------------------------------


async def _closed_port_limiter(**kwargs: object) -> RedisRateLimiter:
    # port 1 on loopback: connection refused at once
    return RedisRateLimiter("redis://127.0.0.1:1/0", prefix="never:", timeout_s=0.2, **kwargs)  # type: ignore[arg-type]


async def test_unreachable_redis_fails_open_and_is_not_ready() -> None:
    limiter = await _closed_port_limiter()
    policy = team(rpm=1)
    decisions = [await limiter.admit(policy, None, 10) for _ in range(3)]
    assert all(d.allowed and d.headers == {} for d in decisions)
    await limiter.record_completion(team(tpm=5), None, 10)  # swallowed too
    await limiter.refund(team(rpm=1), None, Ticket("x", T0, 10))  # skipped while Redis is known to be down
    with pytest.raises(RateLimiterUnavailable) as info:
        await limiter.ping()
    assert info.value.status == 503
    assert limiter.failures >= 1
    await limiter.close()


async def test_unreachable_redis_can_fail_closed() -> None:
    limiter = await _closed_port_limiter(fail_open=False)
    with pytest.raises(RateLimiterUnavailable):
        await limiter.admit(team(rpm=1), None, 0)
    await limiter.close()


@needs_redis
async def test_redis_keys_expire_and_survive_a_script_flush() -> None:
    import redis.asyncio as redis_asyncio

    assert REDIS_URL is not None
    prefix = f"hermes-test:{uuid.uuid4().hex}:"
    limiter = RedisRateLimiter(REDIS_URL, prefix=prefix)
    client = redis_asyncio.from_url(REDIS_URL, decode_responses=True)
    try:
        policy = team(rpm=5, tpm=1000, key_rpm=2)
        assert (await limiter.admit(policy, "key-a", 10)).allowed
        await limiter.record_completion(policy, "key-a", 5)
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        # the team's requests, tokens and token sum; the key's requests (it has no tokens limit)
        assert len(keys) == 4
        for key in keys:
            ttl = await client.pttl(key)
            assert 0 < ttl <= 61_000
        await client.script_flush()  # a restarted Redis forgets scripts: EVALSHA falls back to loading it again
        decision = await limiter.admit(policy, "key-a", 0)
        assert decision.allowed and decision.headers["x-ratelimit-remaining-tokens"] == str(1000 - 15)
        await limiter.ping()
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        await limiter.close()


@needs_redis
async def test_redis_rebuilds_a_lost_token_sum() -> None:
    import redis.asyncio as redis_asyncio

    assert REDIS_URL is not None
    prefix = f"hermes-test:{uuid.uuid4().hex}:"
    limiter = RedisRateLimiter(REDIS_URL, prefix=prefix)
    client = redis_asyncio.from_url(REDIS_URL, decode_responses=True)
    try:
        policy = team(tpm=100)
        assert (await limiter.admit(policy, None, 60, now=T0)).allowed
        assert (await limiter.admit(policy, None, 60, now=T0 + 1)).allowed
        sums = [k async for k in client.scan_iter(match=prefix + "*:sum")]
        await client.delete(*sums)
        refused = await limiter.admit(policy, None, 1, now=T0 + 2)
        assert not refused.allowed and refused.headers["x-ratelimit-remaining-tokens"] == "0"
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        await limiter.close()


@needs_redis
async def test_redis_refund_with_a_lost_token_sum_leaves_it_to_be_rebuilt() -> None:
    import redis.asyncio as redis_asyncio

    assert REDIS_URL is not None
    prefix = f"hermes-test:{uuid.uuid4().hex}:"
    limiter = RedisRateLimiter(REDIS_URL, prefix=prefix)
    client = redis_asyncio.from_url(REDIS_URL, decode_responses=True)
    try:
        policy = team(tpm=1000)
        assert (await limiter.admit(policy, None, 60, now=T0)).allowed
        second = await limiter.admit(policy, None, 70, now=T0 + 1)
        assert second.ticket is not None
        sums = [k async for k in client.scan_iter(match=prefix + "*:sum")]
        await client.delete(*sums)
        await limiter.refund(policy, None, second.ticket)
        assert [k async for k in client.scan_iter(match=prefix + "*:sum")] == []  # not made up as -70
        after = await limiter.admit(policy, None, 0, now=T0 + 2)
        assert after.headers["x-ratelimit-remaining-tokens"] == "940"
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        await limiter.close()


async def test_a_refund_that_cannot_reach_redis_logs_and_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    limiter = await _closed_port_limiter()
    with caplog.at_level("WARNING", logger="hermes_proxy.ratelimit"):
        await limiter.refund(team(rpm=1), "key-a", Ticket("abc", T0, 10))
    assert any("could not refund" in r.getMessage() for r in caplog.records)
    # and the next admit does not wait for the timeout again: Redis is known to be down for a moment
    assert (await limiter.admit(team(rpm=1), None, 0)).allowed
    await limiter.close()


# --- over HTTP: a budget refusal is not a rate-limit slot ---------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", pytest.param("redis", marks=needs_redis)])
async def test_requests_refused_by_the_budget_do_not_use_rate_limit_slots(
        backend: str, aiohttp_server: Any, aiohttp_client: Any, counter: Any) -> None:
    name = f"t{uuid.uuid4().hex[:8]}"  # unique: Redis keys are per team name
    upstream = await aiohttp_server(make_upstream_app(Script(dialect="vllm")))
    # 3 requests a minute; a budget that fits small requests (max_tokens 10: about $0.00006 reserved) but never one
    # asking for 5000 completion tokens ($0.015 reserved)
    sections: dict[str, Any] = {
        "chat": {"team": name},
        "teams": {name: {"rate_limits": {"requests_per_minute": 3, "tokens_per_minute": 100_000},
                         "budgets": [{"window": "daily", "limit_usd": 0.001}]}},
    }
    if backend == "redis":
        sections["rate_limits"] = {"url": REDIS_URL}
    config = build_config(str(upstream.make_url("/v1")), "vllm", **sections)
    client = await aiohttp_client(create_app(config, counter=counter))

    async def ask(max_tokens: int) -> Any:
        return await client.post("/v1/chat/completions", json={
            "model": "hermes-4-405b", "messages": [{"role": "user", "content": "hello"}], "max_tokens": max_tokens})

    try:
        first = await ask(10)
        assert first.status == 200
        assert first.headers["x-ratelimit-remaining-requests"] == "2"
        prompt = 100_000 - int(first.headers["x-ratelimit-remaining-tokens"])
        completion = (await first.json())["usage"]["completion_tokens"]
        await current_gateway(client.app).settled()  # the completion tokens are counted when the request settles
        codes = []
        for _ in range(5):  # without refunds the 3rd of these would already be refused by the rate limit
            refused = await ask(5000)
            assert refused.status == 429
            codes.append((await refused.json())["error"]["code"])
        assert codes == ["insufficient_quota"] * 5
        second = await ask(10)
        assert second.status == 200
        # only the two admitted requests count: in requests and in tokens
        assert second.headers["x-ratelimit-remaining-requests"] == "1"
        assert int(second.headers["x-ratelimit-remaining-tokens"]) == 100_000 - 2 * prompt - completion
    finally:
        if backend == "redis":
            import redis.asyncio as redis_asyncio

            assert REDIS_URL is not None
            redis = redis_asyncio.from_url(REDIS_URL)
            keys = [k async for k in redis.scan_iter(match=f"hermes:rl:{{{name}}}:*")]
            if keys:
                await redis.delete(*keys)
            await redis.aclose()


def test_retry_after_is_whole_seconds_rounded_up_forgiving_float_noise() -> None:
    assert [retry_after_seconds(s) for s in (0, 0.001, 1.0, 1.0000001, 1.001, 59.5)] == [1, 1, 1, 1, 2, 60]
    assert [wait_ms(s) for s in (0, 0.0001, 0.1, 0.1000000001, 0.1011)] == [1, 1, 100, 100, 102]


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("", None), ("7", 7.0), ("1.5", 1.5), ("-3", 0.0),
                                                 ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", None)])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_reads_a_future_http_date() -> None:
    from email.utils import formatdate
    from time import time

    waited = parse_retry_after(formatdate(time() + 120, usegmt=True))
    assert waited is not None and 110 < waited <= 120


def test_lua_scripts_load_with_the_common_helpers_in_front() -> None:
    admit, record, refund = lua_script("admit.lua"), lua_script("record.lua"), lua_script("refund.lua")
    for script in (admit, record, refund):
        assert script.startswith("-- Helpers shared by admit.lua, record.lua and refund.lua")
        assert "local function token_sum(" in script and script.count("local function clock(") == 1
    assert "redis.call('ZADD', rk, score, id)" in admit
    assert "redis.call('INCRBY', sk, tokens)" in record
    assert "redis.call('ZREM', rk, id)" in refund


ROOT = Path(__file__).resolve().parent.parent


def test_lua_scripts_ship_in_a_non_editable_build(tmp_path: Path) -> None:
    """setuptools builds the packages the way a wheel gets them (package-data included) into a fresh directory; a
    Python that imports hermes_proxy from there, not from the source tree, builds a Redis limiter and reads the
    scripts."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
    readme = ROOT / "README.md"
    if readme.exists():
        (source / "README.md").write_bytes(readme.read_bytes())
    for package in ("hermes_proxy", "policies", "tui"):
        _copy_tree(ROOT / package, source / package)
    build = tmp_path / "lib"
    subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py",
                    "--build-lib", str(build)], cwd=source, check=True, capture_output=True)
    shipped = sorted(p.name for p in (build / "hermes_proxy" / "ratelimit").glob("*.lua"))
    assert shipped == sorted(p.name for p in (ROOT / "hermes_proxy" / "ratelimit").glob("*.lua"))
    assert shipped == ["admit.lua", "common.lua", "record.lua", "refund.lua"]
    probe = ("import hermes_proxy.ratelimit as rl, pathlib, sys;"
             "assert pathlib.Path(rl.__file__).is_relative_to(sys.argv[1]), rl.__file__;"
             "limiter = rl.RedisRateLimiter('redis://127.0.0.1:1/0');"
             "print(len(limiter._admit_script.script), len(limiter._record_script.script),"
             " len(limiter._refund_script.script))")
    result = subprocess.run([sys.executable, "-c", probe, str(build)], cwd=tmp_path, check=True,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(build)})
    admit_len, record_len, refund_len = map(int, result.stdout.split())
    assert admit_len == len(lua_script("admit.lua")) and record_len == len(lua_script("record.lua"))
    assert refund_len == len(lua_script("refund.lua"))


def _copy_tree(src: Path, dst: Path) -> None:
    for path in src.rglob("*"):
        if "__pycache__" in path.parts or path.is_dir():
            continue
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())


async def test_an_unusable_sqlite_file_fails_open_and_is_not_ready(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    limiter = SQLiteRateLimiter(f"sqlite:///{tmp_path / 'a-file' / 'rate-limits.sqlite3'}")
    try:
        decision = await limiter.admit(team(rpm=1), None, 10)
        assert decision.allowed and decision.ticket is None
        with pytest.raises(RateLimiterUnavailable):
            await limiter.ping()
    finally:
        await limiter.close()
