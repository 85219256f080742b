"""The SQLite rate limiter keeps a running count per scope beside its logs (counting the log at each admit cost as many
rows as the window held: 14 ms an admit with 20,000 entries). These tests hold the counts to the logs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hermes_proxy.ratelimit import SQLiteRateLimiter
from hermes_proxy.ratelimit.scopes import scopes_for
from hermes_proxy.ratelimit.sqlite import SCHEMA
from policies.types import RateLimitRule, TeamPolicy

TEAM = TeamPolicy(name="research", rate_limits=RateLimitRule(5, 1_000), key_rate_limits=RateLimitRule(3, None))
#: how the limiter names the team's own scope in its file
TEAM_SCOPE = "\x1f".join(scopes_for(TEAM, None)[0].ident)
RECOUNT = ("SELECT scope, SUM(r), SUM(t) FROM (SELECT scope, 1 AS r, 0 AS t FROM rl_requests "
           "UNION ALL SELECT scope, 0, tokens FROM rl_tokens) GROUP BY scope")


def counts_and_logs(path: Path) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int]]]:
    conn = sqlite3.connect(path)
    try:
        counts = {scope: (r, t) for scope, r, t in conn.execute("SELECT scope, requests, tokens FROM rl_counts")
                  if r or t}
        logs = {scope: (r, t) for scope, r, t in conn.execute(RECOUNT)}
    finally:
        conn.close()
    return counts, logs


async def test_the_counts_follow_admits_completions_refunds_and_entries_leaving_the_window(tmp_path: Path) -> None:
    path = tmp_path / "rate-limits.sqlite3"
    limiter = SQLiteRateLimiter(f"sqlite:///{path}", window_s=60)
    try:
        first = await limiter.admit(TEAM, "key-1", 100, now=1000.0)
        second = await limiter.admit(TEAM, "key-1", 200, now=1001.0)
        await limiter.admit(TEAM, "key-2", 50, now=1002.0)
        await limiter.record_completion(TEAM, "key-1", 300, now=1003.0)
        assert second.ticket is not None
        await limiter.refund(TEAM, "key-1", second.ticket)
        counts, logs = counts_and_logs(path)
        assert counts == logs
        assert counts[TEAM_SCOPE] == (2, 100 + 50 + 300)  # the refunded request and its tokens are gone

        # key-1 may make three requests a minute: its first is still in the window, so two more fit, not three
        assert (await limiter.admit(TEAM, "key-1", 10, now=1010.0)).allowed
        assert (await limiter.admit(TEAM, "key-1", 10, now=1011.0)).allowed
        refused = await limiter.admit(TEAM, "key-1", 10, now=1012.0)
        assert not refused.allowed

        # a minute after the first request, its entries leave the window and take their counts with them
        assert first.ticket is not None
        later = await limiter.admit(TEAM, "key-1", 10, now=1060.5)
        assert later.allowed
        counts, logs = counts_and_logs(path)
        assert counts == logs
        assert counts[TEAM_SCOPE][0] == 4  # 1002, 1010, 1011 and 1060.5; 1000 left the window
    finally:
        await limiter.close()


async def test_a_file_an_older_version_wrote_without_counts_is_counted_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "rate-limits.sqlite3"
    (scope,) = scopes_for(TeamPolicy(name="research", rate_limits=RateLimitRule(4, None)), None)
    conn = sqlite3.connect(path)
    for statement in SCHEMA:
        conn.execute(statement)
    conn.executemany("INSERT INTO rl_requests VALUES (?, ?, ?)",
                     [("\x1f".join(scope.ident), 999.0 + i / 10, f"old-{i}") for i in range(3)])
    conn.commit()
    conn.close()

    limiter = SQLiteRateLimiter(f"sqlite:///{path}", window_s=60)
    team = TeamPolicy(name="research", rate_limits=RateLimitRule(4, None))
    try:
        assert (await limiter.admit(team, None, 0, now=1000.0)).allowed  # the fourth of four
        assert not (await limiter.admit(team, None, 0, now=1000.5)).allowed
    finally:
        await limiter.close()
    counts, logs = counts_and_logs(path)
    assert counts == logs
