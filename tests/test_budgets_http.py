"""Budgets as an SDK app and the person paying see them: 429 insufficient_quota, headers, spend, billing of cut streams."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import openai
import pytest

from hermes_proxy.app import create_app
from hermes_proxy.appkeys import LEDGER, current_gateway
from tests.conftest import build_config
from tests.fake_upstream import Script, make_upstream_app

USER = [{"role": "user", "content": "hello"}]
# the fake upstream reports 31 prompt + 20 completion tokens: at $1/$3 per Mtok that is $0.000091 a request
COST = Decimal("0.000091")


async def start(aiohttp_server: Any, aiohttp_client: Any, counter: Any, script: Script | None = None,
                **sections: Any) -> Any:
    script = script or Script(dialect="vllm")
    server = await aiohttp_server(make_upstream_app(script))
    config = build_config(str(server.make_url("/v1")), script.dialect, **sections)
    return await aiohttp_client(create_app(config, counter=counter))


async def settled(client: Any) -> None:
    """Responses go out before the ledger commits: wait for the commits before reading the ledger."""
    await current_gateway(client.app).settled()


def sdk(client: Any, key: str = "x") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=key, max_retries=0)


async def test_concurrent_burst_never_spends_past_the_limit_and_ledger_equals_billed(
        aiohttp_server: Any, aiohttp_client: Any, counter: Any) -> None:
    # worst case per request = prompt x $1/M + 100 x $3/M; limit fits about a dozen of those
    client = await start(aiohttp_server, aiohttp_client, counter,
                         teams={"default": {"budgets": [{"window": "daily", "limit_usd": 0.005}], "max_tokens": 100}})
    api = sdk(client)

    async def one() -> Decimal | str:
        try:
            raw = await api.chat.completions.with_raw_response.create(model="hermes-4-405b", messages=USER)
        except openai.RateLimitError as error:
            assert error.code == "insufficient_quota"
            return "refused"
        return Decimal(raw.headers["x-hermes-cost-usd"])

    results = await asyncio.gather(*(one() for _ in range(200)))
    billed = [r for r in results if isinstance(r, Decimal)]
    assert "refused" in results and billed
    await settled(client)
    rows = await client.app[LEDGER].requests(limit=1000)
    ledger_sum = sum((r.cost_usd for r in rows), Decimal(0))
    assert ledger_sum == sum(billed, Decimal(0)) == COST * len(billed)
    assert ledger_sum <= Decimal("0.005")


async def test_refusal_names_team_window_spent_limit_and_reset(aiohttp_server: Any, aiohttp_client: Any,
                                                               counter: Any) -> None:
    client = await start(aiohttp_server, aiohttp_client, counter,
                         teams={"default": {"budgets": [{"window": "daily", "limit_usd": 0.0001}],
                                            "max_tokens": 10, "timezone": "Europe/Berlin"}})
    first = await sdk(client).chat.completions.with_raw_response.create(model="hermes-4-405b", messages=USER)
    # the fake upstream reports 20 completion tokens although max_tokens is 10: the proxy bills 10 at most
    capped = Decimal(31) / 10**6 + Decimal(10) * 3 / 10**6
    assert Decimal(first.headers["x-hermes-cost-usd"]) == capped
    assert Decimal(first.headers["x-hermes-budget-remaining-usd"]) == Decimal("0.0001") - capped
    with pytest.raises(openai.RateLimitError) as caught:
        await sdk(client).chat.completions.create(model="hermes-4-405b", messages=USER)
    error = caught.value
    assert error.status_code == 429 and error.code == "insufficient_quota"
    for part in ("default", "daily", str(capped), "0.0001"):
        assert part in error.message
    assert "reset" in error.message.lower()


async def test_soft_limit_warning_header(aiohttp_server: Any, aiohttp_client: Any, counter: Any) -> None:
    client = await start(aiohttp_server, aiohttp_client, counter,
                         teams={"default": {"budgets": [{"window": "monthly", "limit_usd": 10,
                                                         "soft_limit_usd": 0.0001}], "max_tokens": 10}})
    first = await sdk(client).chat.completions.with_raw_response.create(model="hermes-4-405b", messages=USER)
    assert "x-hermes-budget-warning" not in first.headers
    await sdk(client).chat.completions.create(model="hermes-4-405b", messages=USER)
    third = await sdk(client).chat.completions.with_raw_response.create(model="hermes-4-405b", messages=USER)
    assert "soft" in third.headers["x-hermes-budget-warning"].lower()


async def test_stream_cut_by_upstream_still_reports_usage_and_cost_and_is_billed(
        aiohttp_server: Any, aiohttp_client: Any, counter: Any) -> None:
    client = await start(aiohttp_server, aiohttp_client, counter, Script(dialect="vllm", die_after=5, piece=4))
    stream = await sdk(client).chat.completions.create(model="hermes-4-405b", messages=USER, stream=True,
                                                       stream_options={"include_usage": True})
    chunks = []
    with pytest.raises(openai.APIError):
        async for chunk in stream:
            chunks.append(chunk)
    await settled(client)
    rows = await client.app[LEDGER].requests()
    assert rows[0].status == "upstream_error" and rows[0].estimated
    assert rows[0].cost_usd is not None and rows[0].cost_usd > 0


async def test_usage_chunk_follows_an_upstream_cut_when_the_client_asked(aiohttp_client: Any, aiohttp_server: Any,
                                                                          counter: Any) -> None:
    client = await start(aiohttp_server, aiohttp_client, counter, Script(dialect="vllm", die_after=5, piece=4))
    response = await client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": USER,
                                                               "stream": True,
                                                               "stream_options": {"include_usage": True}})
    text = await response.text()
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert '"error"' in events[-3] and '"usage"' in events[-2] and events[-1] == "[DONE]"
    usage = json.loads(events[-2])["usage"]
    assert usage["estimated"] is True and usage["cost"] > 0


async def test_client_disconnect_mid_stream_bills_what_was_generated(aiohttp_server: Any, aiohttp_client: Any,
                                                                     counter: Any) -> None:
    client = await start(aiohttp_server, aiohttp_client, counter, Script(dialect="vllm", piece=1, answer="z" * 2000,
                                                                      delay_s=0.005))
    response = await client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": USER,
                                                               "stream": True})
    for _ in range(20):
        await response.content.readline()
    response.close()
    rows: list[Any] = []
    for _ in range(200):
        rows = await client.app[LEDGER].requests()
        if rows:
            break
        await asyncio.sleep(0.02)
    assert rows and rows[0].status == "cancelled"
    assert rows[0].estimated and 0 < rows[0].completion_tokens < 2000
    assert rows[0].cost_usd is not None and rows[0].cost_usd > 0


async def test_spend_endpoint_shows_own_team_only(aiohttp_server: Any, aiohttp_client: Any, counter: Any) -> None:
    client = await start(aiohttp_server, aiohttp_client, counter, server={"auth": "keys"},
                         teams={"red": {}, "blue": {}})
    ledger = client.app[LEDGER]
    red_key, _ = await ledger.create_key("red", "r1")
    blue_key, _ = await ledger.create_key("blue", "b1")
    await sdk(client, red_key).chat.completions.create(model="hermes-4-405b", messages=USER)
    await sdk(client, red_key).chat.completions.create(model="hermes-4-405b", messages=USER)
    await sdk(client, blue_key).chat.completions.create(model="hermes-4-405b", messages=USER)
    await settled(client)
    red = await client.get("/v1/spend", headers={"Authorization": f"Bearer {red_key}"})
    assert red.status == 200
    body = await red.text()
    assert "blue" not in body and "b1" not in body
    data = await red.json()
    assert data["team"] == "red"
    assert Decimal(str(data["total"]["cost_usd"])) == COST * 2
    other = await client.get("/v1/spend?team=blue", headers={"Authorization": f"Bearer {red_key}"})
    assert other.status == 403
    assert "b1" not in await other.text()


async def test_revoked_key_gets_401(aiohttp_server: Any, aiohttp_client: Any, counter: Any) -> None:
    client = await start(aiohttp_server, aiohttp_client, counter, server={"auth": "keys"})
    ledger = client.app[LEDGER]
    key, record = await ledger.create_key("default", "temp")
    await sdk(client, key).chat.completions.create(model="hermes-4-405b", messages=USER)
    await ledger.revoke_key(record.id)
    with pytest.raises(openai.AuthenticationError):
        await sdk(client, key).chat.completions.create(model="hermes-4-405b", messages=USER)
