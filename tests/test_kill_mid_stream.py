"""A proxy process killed with SIGKILL mid-stream: the tokens already delivered are billed once its hold expires."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hermes_proxy.config import load_config
from hermes_proxy.ledger import open_ledger
from tests.fake_upstream import Script, make_upstream_app
from tests.test_operations import ROOT, free_port, start_replica, wait_up

HELLO = [{"role": "user", "content": "write a long story"}]


@pytest.mark.parametrize(("dialect", "factor"), [("vllm", Decimal(1)), ("openrouter", Decimal(5))])
@pytest.mark.slow
async def test_sigkill_mid_stream_bills_what_was_delivered_when_the_hold_expires(
        tmp_path: Path, aiohttp_server: Any, dialect: str, factor: Decimal) -> None:
    # openrouter: the route is known (from the ledger) to bill 5x its configured price; the estimate bills that rate
    script = Script(dialect=dialect, piece=2, answer="tale " * 400, delay_s=0.01, send_usage=False)
    upstream = await aiohttp_server(make_upstream_app(script))
    config_path = tmp_path / "proxy.toml"
    config_path.write_text(f"""
[server]
auth = "none"
[ledger]
url = "sqlite:///{tmp_path / 'ledger.db'}"
reservation_ttl_s = 1.5
[[upstreams]]
name = "up"
kind = "{dialect}"
base_url = "{upstream.make_url('/v1')}"
api_key_env = "UP_KEY"
[models.hermes-4-405b]
routes = [{{ upstream = "up", model = "m", input_usd_per_mtok = 1.0, output_usd_per_mtok = 3.0 }}]
[teams.default]
budgets = [{{ window = "daily", limit_usd = 1.0 }}]
max_tokens = 2000
""")
    if factor > 1:
        seeded = open_ledger(load_config(str(config_path)).ledger)
        await seeded.start()
        await seeded.learn_price("hermes-4-405b/up:m", factor)
        await seeded.close()
    port = free_port()
    process = start_replica(config_path, port, {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path),
                                                "UP_KEY": "sk-test"})
    try:
        await wait_up(port, process)
        received = ""
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                                    json={"model": "hermes-4-405b", "messages": HELLO, "stream": True}) as response:
                started = time.monotonic()
                async for line in response.content:
                    if line.startswith(b"data: {"):
                        received += line.decode()
                    if time.monotonic() - started > 1.5:  # past a checkpoint (every TTL / 3 = 0.5 s)
                        process.send_signal(signal.SIGKILL)
                        break
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert received.count("\"delta\"") > 50  # tokens were delivered before the kill
    await asyncio.sleep(1.6)  # the hold's TTL passes

    config = load_config(str(config_path))
    ledger = open_ledger(config.ledger)
    await ledger.start()
    try:
        team = config.team("default")
        assert team is not None
        (status,) = await ledger.budget_status(team)  # the next admission, or a purge, bills expired holds
        await ledger.release((await ledger.reserve(team, None, Decimal("0.0001"))).hold)
        rows = await ledger.requests(limit=10)
        assert len(rows) == 1
        row = rows[0]
        assert row.status == "expired" and row.estimated
        # billed from the last checkpoint (at most TTL / 3 behind the kill): some tokens, never more than were sent
        # (each piece sent is two characters, less than a token); how many depends on the machine's load
        assert 0 < row.completion_tokens <= received.count("\"delta\"")
        assert row.cost_usd is not None and row.cost_usd > 0
        configured = (row.prompt_tokens * Decimal(1) + row.completion_tokens * Decimal(3)) / 1_000_000
        assert row.cost_usd == configured * factor
        (status,) = await ledger.budget_status(team)
        assert Decimal(status.reserved_usd) == 0
        assert Decimal(status.spent_usd) == row.cost_usd
    finally:
        await ledger.close()
