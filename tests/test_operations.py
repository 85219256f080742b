"""Running it for real: metrics, request logs, rate limits, config reload; and three replicas on PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hermes_proxy.app import create_app
from hermes_proxy.appkeys import LEDGER, RUNTIME, current_gateway
from hermes_proxy.config import load_config
from hermes_proxy.reload import reload_config
from tests.conftest import build_config
from tests.fake_upstream import Script, make_upstream_app

SECRET = "sk-upstream-secret-123"
HELLO = [{"role": "user", "content": "a very private prompt about project nightingale"}]
ROOT = Path(__file__).resolve().parent.parent


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    result = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            result[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return result


def total(values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in values.items() if n == name and all((k, w) in ls for k, w in labels.items()))


async def test_metrics_after_mixed_traffic_match_what_was_sent(aiohttp_server: Any, aiohttp_client: Any,
                                                               counter: Any) -> None:
    script = Script(dialect="openrouter")  # reports usage.cost = 0.00012 per request
    server = await aiohttp_server(make_upstream_app(script))
    config = build_config(str(server.make_url("/v1")), "openrouter")
    client = await aiohttp_client(create_app(config, counter=counter))
    for _ in range(3):
        ok = await client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": HELLO})
        assert ok.status == 200
    stream = await client.post("/v1/chat/completions", json={"model": "hermes-4-405b:thinking", "messages": HELLO,
                                                             "stream": True})
    await stream.read()
    bad = await client.post("/v1/chat/completions", json={"model": "nope", "messages": HELLO})
    assert bad.status == 404
    await current_gateway(client.app).settled()
    scrape = await client.get("/metrics")
    assert scrape.status == 200
    values = samples(await scrape.text())
    assert total(values, "hermes_requests_total", team="default", status="ok") == 4
    assert total(values, "hermes_tokens_total", kind="prompt") == 4 * 31
    assert total(values, "hermes_tokens_total", kind="completion") == 4 * 20
    assert total(values, "hermes_cost_usd_total") == pytest.approx(4 * 0.00012)
    assert total(values, "hermes_in_flight_requests") == 0
    assert total(values, "hermes_request_overhead_seconds_count") == 4


async def test_metrics_can_require_the_admin_key(aiohttp_client: Any, counter: Any) -> None:
    config = build_config(None, server={"auth": "none", "metrics_require_admin": True},
                          env={"HERMES_ADMIN_KEY": "admin-secret"})
    client = await aiohttp_client(create_app(config, counter=counter))
    assert (await client.get("/metrics")).status == 401
    allowed = await client.get("/metrics", headers={"Authorization": "Bearer admin-secret"})
    assert allowed.status == 200


async def test_request_logs_carry_the_numbers_and_no_secret_or_prompt(aiohttp_server: Any, aiohttp_client: Any,
                                                                      counter: Any,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    script = Script(dialect="vllm", fail_statuses=[500])
    server = await aiohttp_server(make_upstream_app(script))
    config = build_config(str(server.make_url("/v1")), "vllm", server={"auth": "keys"})
    client = await aiohttp_client(create_app(config, counter=counter))
    plaintext, _ = await client.app[LEDGER].create_key("default", "alice")
    caplog.set_level(logging.INFO)
    headers = {"Authorization": f"Bearer {plaintext}"}
    response = await client.post("/v1/chat/completions", headers=headers,
                                 json={"model": "hermes-4-405b", "messages": HELLO})
    assert response.status == 200
    assert float(response.headers["x-hermes-overhead-ms"]) >= 0
    await client.post("/v1/chat/completions", headers={"Authorization": "Bearer hp-wrong"},
                      json={"model": "hermes-4-405b", "messages": HELLO})
    await current_gateway(client.app).settled()
    lines = [r for r in caplog.records if r.name == "hermes_proxy.requests"]
    assert len(lines) == 2
    fields = lines[0].fields  # type: ignore[attr-defined]
    assert fields["team"] == "default" and fields["key"] == "alice" and fields["status"] == "ok"
    assert fields["prompt_tokens"] == 31 and fields["cost_usd"] == "0.000091"
    assert fields["overhead_ms"] >= 0 and fields["total_ms"] >= fields["overhead_ms"]
    assert lines[1].fields["status"] == "refused"  # type: ignore[attr-defined]
    everything = "\n".join(r.getMessage() + json.dumps(getattr(r, "fields", {}), default=str)
                           for r in caplog.records)
    assert SECRET not in everything and plaintext not in everything and "hp-wrong" not in everything
    assert "nightingale" not in everything


async def test_team_rate_limit_sixth_request_gets_429_with_retry_after(aiohttp_client: Any, counter: Any) -> None:
    config = build_config(None, teams={"default": {"rate_limits": {"requests_per_minute": 5}}})
    client = await aiohttp_client(create_app(config, counter=counter))
    statuses, last = [], None
    for _ in range(6):
        last = await client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": HELLO})
        statuses.append(last.status)
        if last.status == 200:
            assert last.headers["x-ratelimit-limit-requests"] == "5"
    assert statuses == [200] * 5 + [429]
    assert last is not None and int(last.headers["Retry-After"]) >= 1
    error = (await last.json())["error"]
    assert error["code"] == "rate_limit_exceeded" and "default" in error["message"]


async def test_sighup_reload_changes_budgets_for_new_requests_while_a_stream_keeps_flowing(
        tmp_path: Path, aiohttp_server: Any, aiohttp_client: Any, counter: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    script = Script(dialect="vllm", piece=1, answer="y" * 300)
    server = await aiohttp_server(make_upstream_app(script))
    url = str(server.make_url("/v1"))
    path = tmp_path / "hermes.toml"

    def write(limit: str) -> None:
        path.write_text(f"""
[server]
auth = "none"
[ledger]
url = "memory://"
[[upstreams]]
name = "up"
kind = "vllm"
base_url = "{url}"
[models.hermes-4-405b]
routes = [{{ upstream = "up", model = "m", input_usd_per_mtok = 1.0, output_usd_per_mtok = 3.0 }}]
[teams.default]
budgets = [{{ window = "daily", limit_usd = {limit} }}]
max_tokens = 1000
""")

    write("100")
    client = await aiohttp_client(create_app(load_config(path), counter=counter))
    long_stream = await client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": HELLO,
                                                                  "stream": True})
    assert long_stream.status == 200
    await long_stream.content.readline()

    write("0.000001")  # far below one request's worst case
    caplog.set_level(logging.INFO)
    os.kill(os.getpid(), signal.SIGHUP)
    for _ in range(100):
        if client.app[RUNTIME].reloads:
            break
        await asyncio.sleep(0.02)
    assert client.app[RUNTIME].reloads == 1
    refused = await client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": HELLO})
    assert refused.status == 429 and (await refused.json())["error"]["code"] == "insufficient_quota"
    body = await long_stream.text()
    assert body.rstrip().endswith("data: [DONE]") and body.count('"content"') > 100

    path.write_text("[server\nbroken")
    assert await reload_config(client.app, counter) is False
    assert any("config reload refused" in r.getMessage() for r in caplog.records)
    still = await client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": HELLO})
    assert still.status == 429  # the previous (reloaded) config stays in force


# --- three replicas on one PostgreSQL and one Redis ----------------------------------------------------------------

POSTGRES = os.environ.get("HERMES_TEST_POSTGRES_URL")
REDIS = os.environ.get("HERMES_TEST_REDIS_URL")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    assert POSTGRES is not None
    schema = f"hermes_rep_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(POSTGRES)
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema
    finally:
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()


def start_replica(config: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "hermes_proxy.cli", "serve", "--config", str(config),
                             "--port", str(port), "--workers", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def wait_up(port: int, process: subprocess.Popen[bytes], within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"replica on port {port} exited: {process.stderr.read().decode()[-2000:]}"
                                   if process.stderr else "replica exited")
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"replica on port {port} did not become ready")


@pytest.mark.skipif(not (POSTGRES and REDIS), reason="needs HERMES_TEST_POSTGRES_URL and HERMES_TEST_REDIS_URL")
@pytest.mark.slow
async def test_three_replicas_share_rate_limits_and_budgets(tmp_path: Path, pg_schema: str,
                                                            aiohttp_server: Any) -> None:
    # the upstream bills at most what the proxy reserved (its prompt count is >= 10 tokens, max_tokens is 1000)
    script = Script(dialect="vllm", usage={"prompt_tokens": 10, "completion_tokens": 1000, "total_tokens": 1010})
    upstream = await aiohttp_server(make_upstream_app(script))
    team = f"t{uuid.uuid4().hex[:8]}"  # unique: Redis keys are per team name
    separator = "&" if "?" in POSTGRES else "?"  # type: ignore[operator]
    config = tmp_path / "replicas.toml"
    # each request costs 10 x $1/M + 1000 x $3/M = $0.00301; its worst case (max_tokens 1000) a little more
    config.write_text(f"""
[server]
auth = "none"
[ledger]
url = "{POSTGRES}{separator}search_path={pg_schema}"
[rate_limits]
url = "{REDIS}"
[chat]
team = "{team}"
[[upstreams]]
name = "up"
kind = "vllm"
base_url = "{upstream.make_url('/v1')}"
[models.hermes-4-405b]
routes = [{{ upstream = "up", model = "m", input_usd_per_mtok = 1.0, output_usd_per_mtok = 3.0 }}]
[teams.{team}]
rate_limits = {{ requests_per_minute = 5 }}
budgets = [{{ window = "daily", limit_usd = 0.015 }}]
max_tokens = 1000
""")
    ports = [free_port() for _ in range(3)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [start_replica(config, port, env) for port in ports]
    try:
        for port, process in zip(ports, processes, strict=True):
            await wait_up(port, process)
        statuses, codes = [], []
        # four full requests fill most of the budget; the fifth is refused by the budget (and gives its rate-limit
        # slot back); a small one still fits the budget and is the fifth admitted; the next is over the rate limit
        max_tokens = [1000, 1000, 1000, 1000, 1000, 100, 100]
        async with aiohttp.ClientSession() as session:
            for index, limit in enumerate(max_tokens):
                port = ports[index % 3]
                async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                                        json={"model": "hermes-4-405b", "messages": HELLO,
                                              "max_tokens": limit}) as response:
                    statuses.append(response.status)
                    body = await response.json()
                    codes.append(body.get("error", {}).get("code"))
                    if response.status == 429 and codes[-1] == "rate_limit_exceeded":
                        assert int(response.headers["Retry-After"]) >= 1
        assert statuses[:4] == [200] * 4
        assert codes[4] == "insufficient_quota"  # $0.015 fits 4 worst-case reservations of a little over $0.003
        assert statuses[5] == 200
        assert codes[6] == "rate_limit_exceeded"  # 5 admitted in the minute, across the three replicas
        conn = await asyncpg.connect(POSTGRES, server_settings={"search_path": pg_schema})
        try:
            # replicas answer before their ledger commit lands: wait (bounded) for every admitted request's row
            for _ in range(100):
                rows = await conn.fetchval("SELECT COUNT(*) FROM requests WHERE team = $1", team)
                if rows >= statuses.count(200):
                    break
                await asyncio.sleep(0.05)
            spent = await conn.fetchval("SELECT COALESCE(SUM(cost_usd), 0) FROM requests WHERE team = $1", team)
        finally:
            await conn.close()
        # the upstream reports 1000 completion tokens whatever max_tokens says: the small request is billed 100
        assert Decimal(spent) == Decimal("0.00301") * 4 + Decimal("0.00031") <= Decimal("0.015")
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.slow
async def test_sigterm_lets_a_running_stream_finish_then_exits(tmp_path: Path) -> None:
    config = tmp_path / "demo.toml"
    config.write_text("""
[server]
auth = "none"
shutdown_timeout_s = 20
[ledger]
url = "sqlite:///%s"
[[upstreams]]
name = "demo"
kind = "demo"
first_token_s = 0
tokens_per_s = 60
[models.hermes-4-405b]
routes = [{ upstream = "demo", model = "Hermes-4-405B", input_usd_per_mtok = 1.0, output_usd_per_mtok = 3.0 }]
""" % (tmp_path / "ledger.sqlite3"))
    port = free_port()
    process = start_replica(config, port, {**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        await wait_up(port, process)
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                                    json={"model": "hermes-4-405b", "messages": HELLO, "stream": True}) as response:
                await response.content.readline()
                process.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.3)
                with pytest.raises(aiohttp.ClientConnectionError):
                    async with aiohttp.ClientSession() as other:
                        await other.get(f"http://127.0.0.1:{port}/healthz")
                body = (await response.read()).decode()
        assert body.rstrip().endswith("data: [DONE]")
        assert await asyncio.to_thread(process.wait, 20) == 0
    finally:
        if process.poll() is None:
            process.kill()
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
        assert db.execute("SELECT status FROM requests").fetchall() == [("ok",)]
