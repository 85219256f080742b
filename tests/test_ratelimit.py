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

import pytest

from hermes_proxy.config import RateLimitsConfig
from hermes_proxy.errors import RateLimited
from hermes_proxy.ratelimit import (
    InProcessRateLimiter,
    RateDecision,
    RateLimiter,
    RateLimiterUnavailable,
    RedisRateLimiter,
    format_duration,
    open_rate_limiter,
)
from hermes_proxy.ratelimit.redis import lua_script
from hermes_proxy.retry_after import parse_retry_after, retry_after_seconds, wait_ms
from policies.types import RateLimitRule, TeamPolicy

REDIS_URL = os.environ.get("HERMES_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="HERMES_TEST_REDIS_URL is not set")

T0 = 1_700_000_000.0  # an epoch-like clock, so float noise at that magnitude is exercised too

Factory = Callable[[], RateLimiter]


def team(rpm: int | None = None, tpm: int | None = None, *, key_rpm: int | None = None, key_tpm: int | None = None,
         name: str = "research") -> TeamPolicy:
    rule = RateLimitRule(rpm, tpm) if rpm is not None or tpm is not None else None
    key_rule = RateLimitRule(key_rpm, key_tpm) if key_rpm is not None or key_tpm is not None else None
    return TeamPolicy(name=name, rate_limits=rule, key_rate_limits=key_rule)


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
async def make_limiter(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    """A factory of limiters sharing one state: in-process, the same instance; with Redis, new "replicas" on one prefix."""
    created: list[RateLimiter] = []
    if request.param == "memory":
        shared = InProcessRateLimiter()
        created.append(shared)

        def factory() -> RateLimiter:
            return shared
    else:
        prefix = f"hermes-test:{uuid.uuid4().hex}:"

        def factory() -> RateLimiter:
            assert REDIS_URL is not None
            limiter = RedisRateLimiter(REDIS_URL, prefix=prefix, fail_open=False)
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
    admit, record = lua_script("admit.lua"), lua_script("record.lua")
    for script in (admit, record):
        assert script.startswith("-- Helpers shared by admit.lua and record.lua")
        assert "local function token_sum(" in script and script.count("local function clock(") == 1
    assert "redis.call('ZADD', rk, score, id)" in admit
    assert "redis.call('INCRBY', sk, tokens)" in record


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
    assert shipped == ["admit.lua", "common.lua", "record.lua"]
    probe = ("import hermes_proxy.ratelimit as rl, pathlib, sys;"
             "assert pathlib.Path(rl.__file__).is_relative_to(sys.argv[1]), rl.__file__;"
             "limiter = rl.RedisRateLimiter('redis://127.0.0.1:1/0');"
             "print(len(limiter._admit_script.script), len(limiter._record_script.script))")
    result = subprocess.run([sys.executable, "-c", probe, str(build)], cwd=tmp_path, check=True,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(build)})
    admit_len, record_len = map(int, result.stdout.split())
    assert admit_len == len(lua_script("admit.lua")) and record_len == len(lua_script("record.lua"))


def _copy_tree(src: Path, dst: Path) -> None:
    for path in src.rglob("*"):
        if "__pycache__" in path.parts or path.is_dir():
            continue
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
