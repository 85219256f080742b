"""The response cache through the real openai SDK against the real app: hits replay the answer without calling the
upstream, are billed as configured (the ledger, the headers and the spend report agree), never cross teams, and are
shared by replicas on one ledger database."""

from __future__ import annotations

import os
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from hermes_proxy.appkeys import CACHE_STORE, LEDGER, current_gateway
from tests.fake_upstream import ANSWER, Script
from tests.proxy_harness import Proxy, ProxyFactory

USER = [{"role": "user", "content": "What is the capital of France?"}]
#: the fake upstream's usage (31 prompt, 20 completion) at $1 in / $3 out per Mtok
FIRST_COST = Decimal("0.000091")
CACHED_TEAM = {"default": {"cache": True}}


async def ask(proxy: Proxy, *, stream: bool, key: str = "anything", headers: dict[str, str] | None = None,
              **body: Any) -> tuple[str, dict[str, str], Any]:
    """The answer's text, the response headers and the usage the client saw."""
    client = proxy.sdk(key)
    args: dict[str, Any] = {"model": "hermes-4-405b", "messages": USER, "temperature": 0, **body}
    if stream:
        raw = await client.chat.completions.with_raw_response.create(
            **args, stream=True, stream_options={"include_usage": True}, extra_headers=headers or {})
        text, usage = "", None
        async for chunk in raw.parse():
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            if chunk.usage is not None:
                usage = chunk.usage
        return text, dict(raw.headers), usage
    raw = await client.chat.completions.with_raw_response.create(**args, extra_headers=headers or {})
    completion = raw.parse()
    return completion.choices[0].message.content or "", dict(raw.headers), completion.usage


async def spend_total(proxy: Proxy, key: str = "anything") -> dict[str, Any]:
    await current_gateway(proxy.client.app).settled()  # type: ignore[arg-type]
    response = await proxy.client.get("/v1/spend", headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200
    body = await response.json()
    return body["total"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("stream", [False, True])
async def test_a_repeated_deterministic_request_is_answered_from_the_cache_for_free(proxy: ProxyFactory,
                                                                                    stream: bool) -> None:
    script = Script()
    app = await proxy(script, teams=CACHED_TEAM)
    first_text, first_headers, first_usage = await ask(app, stream=stream)
    assert first_usage.completion_tokens == 20
    assert first_headers["x-hermes-cache"] == "miss"
    second_text, second_headers, second_usage = await ask(app, stream=stream)

    assert len(script.requests) == 1  # the second answer never reached the upstream
    assert second_text == first_text == ANSWER
    assert second_headers["x-hermes-cache"] == "hit"
    assert Decimal(second_headers["x-hermes-cache-saved-usd"]) == FIRST_COST
    assert int(second_headers["x-hermes-cache-age"]) >= 0
    assert (second_usage.prompt_tokens, second_usage.completion_tokens) == (31, 20)
    if not stream:
        assert Decimal(first_headers["x-hermes-cost-usd"]) == FIRST_COST
        assert Decimal(second_headers["x-hermes-cost-usd"]) == 0

    rows = sorted(await app.rows(), key=lambda r: r.started_at)
    assert [r.status for r in rows] == ["ok", "cached"]
    assert rows[0].cost_usd == FIRST_COST and rows[1].cost_usd == 0
    assert rows[1].prompt_tokens == 31 and rows[1].completion_tokens == 20
    total = await spend_total(app)
    assert total["requests"] == 2 and total["cached_requests"] == 1
    assert Decimal(total["cost_usd"]) == FIRST_COST
    assert Decimal(total["saved_usd"]) == FIRST_COST
    metrics = await (await app.client.get("/metrics")).text()
    assert 'hermes_cache_lookups_total{result="hit",team="default"} 1.0' in metrics
    assert 'hermes_cache_lookups_total{result="miss",team="default"} 1.0' in metrics
    assert 'hermes_cache_saved_usd_total{team="default"} 9.1e-05' in metrics


async def test_a_hit_costs_the_configured_fraction_and_the_budget_sees_it(proxy: ProxyFactory) -> None:
    script = Script()
    app = await proxy(script, teams={"default": {"cache": True,
                                                 "budgets": [{"window": "daily", "limit_usd": 1}]}},
                      cache={"hit_cost_fraction": 0.25})
    await ask(app, stream=False)
    _, headers, _ = await ask(app, stream=False)
    assert headers["x-hermes-cache"] == "hit"
    quarter = FIRST_COST / 4
    assert Decimal(headers["x-hermes-cost-usd"]) == quarter
    assert Decimal(headers["x-hermes-cache-saved-usd"]) == FIRST_COST - quarter
    assert Decimal(headers["x-hermes-budget-remaining-usd"]) == 1 - FIRST_COST - quarter
    total = await spend_total(app)
    assert Decimal(total["cost_usd"]) == FIRST_COST + quarter
    assert Decimal(total["saved_usd"]) == FIRST_COST - quarter
    (status,) = await app.client.app[LEDGER].budget_status(app.config.teams[0])  # type: ignore[index]
    assert status.spent_usd == FIRST_COST + quarter and status.reserved_usd == 0


@pytest.mark.parametrize("stream", [False, True])
async def test_a_host_that_bills_above_the_configured_price_is_what_a_hit_saves_and_a_fraction_of_it(
        proxy: ProxyFactory, stream: bool) -> None:
    # OpenRouter reports its own cost ($0.00012), above the route's configured price ($0.000091): that is what the
    # answer cost, so it is what a hit saves, and what the hit's fraction is taken of
    script = Script(dialect="openrouter", openrouter_cost=0.00012)
    app = await proxy(script, teams={"default": {"cache": True, "budgets": [{"window": "daily", "limit_usd": 1}]}},
                      cache={"hit_cost_fraction": 0.5})
    billed = Decimal("0.00012")
    await ask(app, stream=stream)
    await current_gateway(app.client.app).settled()  # type: ignore[arg-type]
    _, headers, usage = await ask(app, stream=stream)
    assert headers["x-hermes-cache"] == "hit" and len(script.requests) == 1
    assert Decimal(headers["x-hermes-cache-saved-usd"]) == billed / 2
    assert Decimal(str(usage.cost)) == billed / 2  # type: ignore[attr-defined]
    rows = sorted(await app.rows(), key=lambda r: r.started_at)
    assert [(r.status, r.cost_usd) for r in rows] == [("ok", billed), ("cached", billed / 2)]
    total = await spend_total(app)
    assert Decimal(total["cost_usd"]) == billed * 3 / 2 and Decimal(total["saved_usd"]) == billed / 2
    (status,) = await app.client.app[LEDGER].budget_status(app.config.teams[0])  # type: ignore[index]
    assert status.spent_usd == billed * 3 / 2 and status.reserved_usd == 0


async def test_only_deterministic_requests_by_default_and_the_header_decides(proxy: ProxyFactory) -> None:
    script = Script()
    app = await proxy(script, teams=CACHED_TEAM)
    # temperature left to the default (0.6): not cached unless asked
    for _ in range(2):
        _, headers, _ = await ask(app, stream=False, temperature=None)
        assert "x-hermes-cache" not in headers
    assert len(script.requests) == 2
    for _ in range(2):
        await ask(app, stream=False, temperature=0.9, headers={"x-hermes-cache": "on"})
    assert len(script.requests) == 3
    # a seed makes it deterministic; "off" (header or body field) skips the cache
    await ask(app, stream=False, temperature=0.9, seed=7)
    _, headers, _ = await ask(app, stream=False, temperature=0.9, seed=7)
    assert headers["x-hermes-cache"] == "hit" and len(script.requests) == 4
    _, headers, _ = await ask(app, stream=False, temperature=0.9, seed=7, headers={"x-hermes-cache": "off"})
    assert "x-hermes-cache" not in headers and len(script.requests) == 5
    _, headers, _ = await ask(app, stream=False, temperature=0.9, seed=7, extra_body={"cache": "off"})
    assert len(script.requests) == 6
    assert "cache" not in script.requests[-1]  # the extension is the proxy's: never forwarded


async def test_refresh_replaces_the_kept_answer(proxy: ProxyFactory) -> None:
    script = Script()
    app = await proxy(script, teams=CACHED_TEAM)
    await ask(app, stream=False)
    script.answer = "A newer answer."
    text, headers, _ = await ask(app, stream=True, headers={"x-hermes-cache": "refresh"})
    assert headers["x-hermes-cache"] == "refresh" and text == "A newer answer."
    await current_gateway(app.client.app).settled()  # type: ignore[arg-type]
    text, headers, _ = await ask(app, stream=False)
    assert headers["x-hermes-cache"] == "hit" and text == "A newer answer."
    assert len(script.requests) == 2


async def test_what_changes_the_answer_changes_the_key(proxy: ProxyFactory) -> None:
    script = Script()
    app = await proxy(script, teams=CACHED_TEAM)
    variants: list[dict[str, Any]] = [
        {}, {"max_tokens": 50}, {"stop": ["\n"]}, {"top_p": 0.5},
        {"messages": [{"role": "system", "content": "Be brief."}, *USER]},
        {"response_format": {"type": "json_object"}},
        {"extra_headers": {"x-hermes-reasoning": "on"}},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]},
    ]
    for variant in variants:
        headers = variant.pop("extra_headers", None)
        await ask(app, stream=False, headers=headers, **variant)
    assert len(script.requests) == len(variants)  # every one a miss
    await current_gateway(app.client.app).settled()  # type: ignore[arg-type]
    _, headers, _ = await ask(app, stream=True, stop=["\n"])  # ...and each is kept under its own key
    assert headers["x-hermes-cache"] == "hit" and len(script.requests) == len(variants)


async def test_teams_never_share_an_answer_and_a_team_without_the_cache_keeps_nothing(proxy: ProxyFactory) -> None:
    script = Script()
    app = await proxy(script, server={"auth": "keys"},
                      teams={"red": {"cache": True}, "blue": {"cache": True}, "grey": {}})
    ledger = app.client.app[LEDGER]  # type: ignore[index]
    red, _ = await ledger.create_key("red", "r")
    blue, _ = await ledger.create_key("blue", "b")
    grey, _ = await ledger.create_key("grey", "g")
    await ask(app, stream=False, key=red)
    await current_gateway(app.client.app).settled()  # type: ignore[arg-type]
    _, headers, _ = await ask(app, stream=False, key=blue)
    assert headers["x-hermes-cache"] == "miss" and len(script.requests) == 2
    for _ in range(2):
        _, headers, _ = await ask(app, stream=False, key=grey, headers={"x-hermes-cache": "on"})
        assert "x-hermes-cache" not in headers
    assert len(script.requests) == 4
    assert (await spend_total(app, grey))["cached_requests"] == 0


async def test_errors_and_cut_answers_are_not_kept(proxy: ProxyFactory) -> None:
    script = Script(fail_statuses=[500, 500])
    app = await proxy(script, teams=CACHED_TEAM)
    with pytest.raises(openai.APIError):
        await ask(app, stream=False)
    script.die_after = 2  # the stream breaks after two pieces of the answer
    with pytest.raises(openai.APIError):
        await ask(app, stream=True)
    await current_gateway(app.client.app).settled()  # type: ignore[arg-type]
    script.die_after = None
    _, headers, _ = await ask(app, stream=False)
    assert headers["x-hermes-cache"] == "miss"
    _, headers, _ = await ask(app, stream=True)
    assert headers["x-hermes-cache"] == "hit"
    statuses = sorted(r.status for r in await app.rows())
    assert statuses == ["cached", "ok", "upstream_error", "upstream_error"]


async def test_a_bad_cache_value_is_a_clear_400(proxy: ProxyFactory) -> None:
    app = await proxy(Script(), teams=CACHED_TEAM)
    with pytest.raises(openai.BadRequestError) as refused:
        await ask(app, stream=False, headers={"x-hermes-cache": "sometimes"})
    assert refused.value.body["param"] == "x-hermes-cache"  # type: ignore[index]
    assert "on, off or refresh" in refused.value.message
    with pytest.raises(openai.BadRequestError) as refused:
        await ask(app, stream=False, extra_body={"cache": True})
    assert refused.value.body["param"] == "cache"  # type: ignore[index]


@pytest.mark.parametrize("where", ["ledger", pytest.param("redis", marks=pytest.mark.skipif(
    not os.environ.get("HERMES_TEST_REDIS_URL"), reason="HERMES_TEST_REDIS_URL is not set"))])
async def test_replicas_on_one_ledger_share_the_cache(proxy: ProxyFactory, tmp_path: Path, where: str) -> None:
    script = Script()
    team = f"team-{uuid.uuid4().hex[:8]}"  # Redis is shared by the whole test run: a team of this test's own
    sections: dict[str, Any] = {"teams": {team: {"cache": True}},
                                "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.sqlite3'}"}}
    if where == "redis":
        sections["cache"] = {"url": os.environ["HERMES_TEST_REDIS_URL"], "ttl_s": 60}
    first = await proxy(script, **sections)
    second = await proxy(script, **sections)
    await ask(first, stream=False)
    await current_gateway(first.client.app).settled()  # type: ignore[arg-type]
    text, headers, _ = await ask(second, stream=True)
    assert headers["x-hermes-cache"] == "hit" and text == ANSWER
    assert len(script.requests) == 1
    total = await spend_total(second)
    assert total["requests"] == 2 and Decimal(total["saved_usd"]) == FIRST_COST
    assert (await first.client.app[CACHE_STORE].clear(team)) == 1  # type: ignore[index, union-attr]
