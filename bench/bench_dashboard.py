"""Dashboard page load times on a generated ledger: a year of traffic for 50 teams (SQLite).

    .venv/bin/python bench/bench_dashboard.py [--teams 50] [--days 365] [--per-day 100] [--repeat 5]

The ledger is written straight into the tables (requests, the hourly roll-up spend_buckets, team_totals, keys) with
the values the SQLite backend stores, then the real application serves /ui in-process on a loopback port and each
page is fetched --repeat times, signed in as the admin. Prints the median and the slowest load per page, in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from hermes_proxy.app import create_app
from hermes_proxy.config import Config, parse_config
from hermes_proxy.ledger import open_ledger
from hermes_proxy.ledger.amounts import to_micros

ADMIN = "bench-admin-key"
MODELS = ("hermes-4-405b", "hermes-4-70b")
HOUR_US = 3_600_000_000


def make_config(db: Path, teams: int) -> Config:
    return parse_config({
        "server": {"auth": "keys"},
        "upstreams": [{"name": "demo", "kind": "demo"}],
        "models": {m: {"routes": [{"upstream": "demo", "model": m}]} for m in MODELS},
        "teams": {f"team-{i:02d}": {"budgets": [{"window": "daily", "limit_usd": 50, "soft_limit_usd": 40},
                                                {"window": "monthly", "limit_usd": 1000}]} for i in range(teams)},
        "ledger": {"url": f"sqlite:///{db}"},
    }, env={"HERMES_ADMIN_KEY": ADMIN})


async def migrate(config: Config) -> None:
    ledger = open_ledger(config.ledger)
    await ledger.start()
    for team in config.teams:
        for name in ("ci", "notebooks", "alice", "bob", "batch"):
            await ledger.create_key(team.name, name)
    await ledger.close()


def generate(db: Path, config: Config, days: int, per_day: int) -> int:
    rng = random.Random(18)
    conn = sqlite3.connect(db)
    keys = {team: [row[0] for row in conn.execute("SELECT id FROM keys WHERE team = ?", (team,))]
            for team in (t.name for t in config.teams)}
    end = to_micros(datetime.now(UTC))
    start = to_micros(datetime.now(UTC) - timedelta(days=days))
    total = 0
    for team, team_keys in keys.items():
        rows, buckets = [], {}
        for n in range(days * per_day):
            started = rng.randint(start, end)
            cost = rng.randint(10_000, 40_000_000)  # nano-dollars: $0.00001 to $0.04
            key = rng.choice(team_keys)
            reasoning = rng.random() < 0.4
            rows.append((f"req_{team}_{n}", started, team, key, None, rng.choice(MODELS), "demo", int(reasoning),
                         rng.randint(50, 5000), rng.randint(10, 2000), rng.randint(0, 800) if reasoning else 0, cost,
                         int(rng.random() < 0.02), "ok", 900.0, 120.0, int(rng.random() < 0.01), cost, started))
            bucket = buckets.setdefault(started - started % HOUR_US, [0, 0])
            bucket[0] += cost
            bucket[1] += 1
        conn.executemany(
            "INSERT INTO requests (request_id, started_at, team, key_id, key_name, model, route, reasoning, "
            "prompt_tokens, completion_tokens, reasoning_tokens, cost_usd, estimated, status, latency_ms, ttft_ms, "
            "learned_price, reserved_usd, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows)
        conn.executemany("INSERT INTO spend_buckets (team, bucket_start, cost_usd, requests) VALUES (?, ?, ?, ?)",
                         [(team, b, c, k) for b, (c, k) in buckets.items()])
        conn.execute("INSERT INTO team_totals (team, spent_usd, requests) VALUES (?, ?, ?)",
                     (team, sum(r[11] for r in rows), len(rows)))
        conn.commit()
        total += len(rows)
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()
    return total


async def measure(config: Config, repeat: int) -> dict[str, list[float]]:
    pages = {
        "/ui (overview, 50 teams)": "/ui",
        "/ui/team 30d": "/ui/team?team=team-01&period=30d",
        "/ui/team 365d": "/ui/team?team=team-01&period=365d",
        "/ui/keys (all teams)": "/ui/keys",
        "/ui/live (team)": "/ui/live?team=team-01",
        "export spend-model.csv 30d": "/ui/export/spend-model.csv?team=team-01&since=30d",
        "export daily.json 365d": "/ui/export/daily.json?team=team-01&since=365d",
    }
    times: dict[str, list[float]] = {name: [] for name in pages}
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(config), host="127.0.0.1"))
    await client.start_server()
    try:
        form = await (await client.get("/ui/login")).text()
        token = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        assert (await client.post("/ui/login", data={"key": ADMIN, "csrf": token}, allow_redirects=False)).status == 303
        for _ in range(repeat):
            for name, path in pages.items():
                began = time.perf_counter()
                response = await client.get(path)
                await response.read()
                times[name].append((time.perf_counter() - began) * 1000)
                assert response.status == 200, (path, response.status)
    finally:
        await client.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teams", type=int, default=50)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--per-day", type=int, default=100, help="requests per team per day")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "ledger.sqlite3"
        config = make_config(db, args.teams)
        asyncio.run(migrate(config))
        began = time.perf_counter()
        rows = generate(db, config, args.days, args.per_day)
        print(f"generated {rows:,} requests for {args.teams} teams over {args.days} days "
              f"({db.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - began:.1f} s")
        times = asyncio.run(measure(config, args.repeat))
    print(f"{'page':<30} {'median ms':>10} {'max ms':>8}")
    for name, values in times.items():
        print(f"{name:<30} {statistics.median(values):>10.1f} {max(values):>8.1f}")


if __name__ == "__main__":
    main()
