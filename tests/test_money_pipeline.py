"""Every cent right, on the pipeline's side: each test compares the money (the ledger, what the client was told in
headers and usage, and the budget) against a fake upstream that misbehaves as real hosts do."""

from __future__ import annotations

import asyncio
import json
import logging
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hermes_proxy.routes as routes
from hermes_proxy.appkeys import LEDGER, current_gateway
from tests.fake_upstream import Script
from tests.proxy_harness import HELLO, Proxy, ProxyFactory

PRICE_IN, PRICE_OUT = Decimal(1) / 10**6, Decimal(3) / 10**6
# the fake upstream reports 31 prompt + 20 completion tokens
COST = 31 * PRICE_IN + 20 * PRICE_OUT


def budget(limit: float, **team: Any) -> dict[str, Any]:
    return {"teams": {"default": {"budgets": [{"window": "daily", "limit_usd": limit}], **team}}}


async def spent(p: Proxy) -> tuple[list[Any], Decimal]:
    await current_gateway(p.client.app).settled()  # type: ignore[arg-type]
    rows = await p.client.app[LEDGER].requests(limit=1000)  # type: ignore[index]
    return rows, sum((r.cost_usd for r in rows), Decimal(0))


async def remaining(p: Proxy) -> Decimal:
    ledger = p.client.app[LEDGER]  # type: ignore[index]
    team = p.config.team("default")
    (status,) = await ledger.budget_status(team)
    return Decimal(status.remaining_usd)


async def stream(p: Proxy, body: dict[str, Any], headers: dict[str, str] | None = None
                 ) -> tuple[list[dict[str, Any]], str, Any]:
    response = await p.client.post("/v1/chat/completions", json={**body, "stream": True,
                                                                 "stream_options": {"include_usage": True}},
                                   headers=headers or {})
    assert response.status == 200, await response.text()
    text = await response.text()
    events = [json.loads(line[6:]) for line in text.splitlines()
              if line.startswith("data: ") and line != "data: [DONE]"]
    return events, text, response


def content_of(events: list[dict[str, Any]]) -> str:
    return "".join((e["choices"][0]["delta"].get("content") or "") for e in events if e.get("choices"))


# --- 1. a client's request id is never the ledger's key -----------------------------------------------------------


async def test_a_reused_request_id_never_makes_a_request_free(proxy: ProxyFactory) -> None:
    p = await proxy(Script(dialect="vllm"), **budget(1.0))
    same = {"x-request-id": "my-trace-1"}

    async def one() -> Decimal:
        response = await p.client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": HELLO,
                                                                     "max_tokens": 100}, headers=same)
        assert response.status == 200
        assert response.headers["x-request-id"] == "my-trace-1"  # echoed for the client's tracing
        return Decimal(response.headers["x-hermes-cost-usd"])

    billed = await asyncio.gather(*(one() for _ in range(5)))
    rows, ledger_total = await spent(p)
    assert len(rows) == 5 and len({r.request_id for r in rows}) == 5
    assert ledger_total == sum(billed) == 5 * COST
    assert await remaining(p) == Decimal("1.0") - 5 * COST


# --- 2. max_tokens is a ceiling ------------------------------------------------------------------------------------


async def test_max_tokens_is_a_ceiling_on_what_is_relayed_and_billed(proxy: ProxyFactory, counter: Any) -> None:
    script = Script(dialect="vllm", answer="lorem ipsum " * 80, piece=6, ignore_max_tokens=True,
                    usage={"prompt_tokens": 31, "completion_tokens": 160, "total_tokens": 191})
    p = await proxy(script, **budget(1.0))
    events, _, _ = await stream(p, {"model": "hermes-4-405b", "messages": HELLO, "max_tokens": 20})
    relayed = content_of(events)
    assert 0 < counter.count_text(relayed) <= 20 and "lorem ipsum" in relayed
    assert [e["choices"][0]["finish_reason"] for e in events if e.get("choices")][-1] == "length"
    usage = events[-1]["usage"]
    assert usage["completion_tokens"] <= 20 and usage["estimated"] is True
    rows, total = await spent(p)
    assert rows[0].completion_tokens == usage["completion_tokens"]
    # the upstream was hung up on before its usage: the prompt is the proxy's own count
    assert rows[0].prompt_tokens == usage["prompt_tokens"]
    assert total == Decimal(str(usage["cost"])) == (usage["prompt_tokens"] * PRICE_IN
                                                    + usage["completion_tokens"] * PRICE_OUT)
    assert await remaining(p) == Decimal("1.0") - total


async def test_a_burst_against_an_upstream_that_ignores_max_tokens_stays_within_the_budget(
        proxy: ProxyFactory) -> None:
    script = Script(dialect="vllm", answer="lorem ipsum " * 80, piece=6, ignore_max_tokens=True,
                    usage={"prompt_tokens": 5, "completion_tokens": 160, "total_tokens": 165})
    limit = Decimal("0.0015")  # about 20 requests' worst case at max_tokens 20
    p = await proxy(script, **budget(float(limit)))

    async def one() -> Decimal | None:
        response = await p.client.post("/v1/chat/completions", json={
            "model": "hermes-4-405b", "messages": HELLO, "max_tokens": 20, "stream": True,
            "stream_options": {"include_usage": True}})
        if response.status == 429:
            return None
        text = await response.text()
        usage = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")][-1]["usage"]
        return Decimal(str(usage["cost"]))

    billed = [b for b in await asyncio.gather(*(one() for _ in range(100))) if b is not None]
    _, total = await spent(p)
    assert 0 < len(billed) < 100
    assert total == sum(billed) <= limit
    assert await remaining(p) == limit - total


# --- 4. the follow-up call of a reasoning budget is reserved for ---------------------------------------------------


async def test_a_reasoning_budget_reserves_for_its_follow_up_call(proxy: ProxyFactory) -> None:
    script = Script(dialect="nous", reasoning_text="Thinking hard. " * 60, piece=8)
    p = await proxy(script, **budget(1.0))
    body = {"model": "hermes-4-405b:thinking", "messages": HELLO, "max_tokens": 300}
    plain = await p.client.post("/v1/chat/completions", json=body)
    budgeted = await p.client.post("/v1/chat/completions", json={**body, "max_reasoning_tokens": 40})
    assert plain.status == budgeted.status == 200
    assert len(script.requests) == 3  # the budgeted request asked twice
    reserved_plain = Decimal(plain.headers["x-hermes-reserved-usd"])
    reserved = Decimal(budgeted.headers["x-hermes-reserved-usd"])
    cost = Decimal(budgeted.headers["x-hermes-cost-usd"])
    assert reserved > reserved_plain  # the second call's prompt is held too
    rows, _ = await spent(p)
    (row,) = [r for r in rows if r.request_id == budgeted.headers["x-hermes-request-id"]]
    assert row.cost_usd == cost <= reserved
    assert row.prompt_tokens > 2 * 31 - 1  # both calls' prompts are billed


# --- 3. OpenRouter BYOK ----------------------------------------------------------------------------------------------


async def test_openrouter_byok_bills_the_fee_and_the_providers_charge(proxy: ProxyFactory) -> None:
    script = Script(dialect="openrouter", openrouter_cost=0.00002,
                    usage_extra={"is_byok": True, "cost_details": {"upstream_inference_cost": 0.0005}})
    p = await proxy(script, **budget(1.0))
    response = await p.client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": HELLO})
    billed = Decimal(response.headers["x-hermes-cost-usd"])
    assert billed == Decimal("0.00052")
    _, total = await spent(p)
    assert total == billed and await remaining(p) == Decimal(1) - billed


# --- 8. an exception after the first byte ----------------------------------------------------------------------------


async def test_a_failure_after_the_headers_ends_the_stream_cleanly_and_settles(
        proxy: ProxyFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    real = routes._delta
    calls = 0

    def breaks_on_the_third_piece(piece: Any, first: bool) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("a bug in the relay")
        return real(piece, first)

    monkeypatch.setattr(routes, "_delta", breaks_on_the_third_piece)
    p = await proxy(Script(dialect="vllm", piece=2), **budget(1.0))
    events, text, _ = await stream(p, {"model": "hermes-4-405b", "messages": HELLO})
    assert "HTTP/1.1" not in text and text.rstrip().endswith("data: [DONE]")
    assert any("error" in e for e in events)
    rows, total = await spent(p)
    assert rows[0].status == "error" and rows[0].cost_usd > 0
    assert await remaining(p) == Decimal(1) - total  # the hold is gone: only the cost stays


# --- 10. a client that stops a stream is routine ------------------------------------------------------------------


async def test_a_client_that_stops_a_stream_is_billed_and_logged_as_cancelled_at_info(
        proxy: ProxyFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    p = await proxy(Script(dialect="vllm", piece=1, answer="x" * 300, delay_s=0.005), **budget(1.0))
    response = await p.client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": HELLO,
                                                                 "stream": True})
    await response.content.readline()
    await response.content.readline()
    response.close()
    await asyncio.sleep(0.2)
    rows, total = await spent(p)
    assert rows[0].status == "cancelled" and rows[0].cost_usd > 0
    assert await remaining(p) == Decimal(1) - total
    loud = [r for r in caplog.records if r.name.startswith("hermes_proxy") and r.levelno >= logging.WARNING]
    assert not loud, [r.getMessage() for r in loud]
    assert any(getattr(r, "fields", {}).get("status") == "cancelled" for r in caplog.records)


# --- 9. a reservation the caller left during -----------------------------------------------------------------------


async def test_a_caller_that_leaves_while_the_ledger_reserves_leaves_no_hold(counter: Any) -> None:
    from hermes_proxy.ledger import open_ledger
    from hermes_proxy.pipeline import Gateway, Principal
    from hermes_proxy.pricing import resolve_prices
    from hermes_proxy.upstreams import build_upstream
    from tests.conftest import build_config

    config = build_config(None, teams={"default": {"budgets": [{"window": "daily", "limit_usd": 1.0}],
                                                   "max_tokens": 100}})
    real = open_ledger(config.ledger)
    await real.start()
    committed = asyncio.Event()

    class SlowLedger:
        """Commits the reservation, then answers late (a PostgreSQL round trip as the client leaves)."""

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        async def reserve(self, *args: Any, **kwargs: Any) -> Any:
            admission = await real.reserve(*args, **kwargs)
            committed.set()
            await asyncio.sleep(0.2)
            return admission

    upstreams = {u.name: build_upstream(u, counter=counter) for u in config.upstreams}
    gateway = Gateway(config, upstreams=upstreams, ledger=SlowLedger(),  # type: ignore[arg-type]
                      counter=counter, prices=resolve_prices(config))
    team = config.team("default")
    assert team is not None
    call = gateway.chat({"model": "hermes-4-405b", "messages": HELLO}, Principal(team=team))
    entering = asyncio.ensure_future(call.__aenter__())
    await committed.wait()
    (status,) = await real.budget_status(team)
    assert Decimal(status.reserved_usd) > 0  # the hold is in the ledger...
    entering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await entering
    await asyncio.sleep(0.3)
    await gateway.settled()
    (status,) = await real.budget_status(team)
    assert Decimal(status.reserved_usd) == 0 and Decimal(status.remaining_usd) == Decimal(1)  # ...and is gone
    await gateway.aclose()
    await real.close()


# --- 3. prices an upstream reports above the configured one are learned ------------------------------------------


async def test_a_price_above_the_configured_one_is_learned_and_reserved_for(proxy: ProxyFactory) -> None:
    # configured $1/$3 per Mtok; OpenRouter bills 31 + 20 tokens at five times that
    script = Script(dialect="openrouter", openrouter_cost=float(COST * 5))
    limit = Decimal("0.02")
    p = await proxy(script, **budget(float(limit), max_tokens=100))
    body = {"model": "hermes-4-405b", "messages": HELLO}
    first = await p.client.post("/v1/chat/completions", json=body)
    assert Decimal(first.headers["x-hermes-cost-usd"]) == COST * 5  # the request that reveals it overshoots by its own
    reserved_before = Decimal(first.headers["x-hermes-reserved-usd"])
    await current_gateway(p.client.app).settled()  # type: ignore[arg-type]
    second = await p.client.post("/v1/chat/completions", json=body)
    assert Decimal(second.headers["x-hermes-reserved-usd"]) == pytest.approx(reserved_before * 5, rel=Decimal("0.01"))
    ledger = p.client.app[LEDGER]  # type: ignore[index]
    (factor,) = (await ledger.price_factors()).values()
    assert factor == pytest.approx(Decimal(5), rel=Decimal("0.001"))
    rows, _ = await spent(p)
    assert all(r.learned_price for r in rows)
    metrics = await (await p.client.get("/metrics")).text()
    assert 'hermes_route_price_factor{route="hermes-4-405b/primary:Hermes-4-405B"} 5' in metrics

    # from now on a burst never spends past the budget, although every request costs five times its price
    async def one() -> Decimal | None:
        response = await p.client.post("/v1/chat/completions", json=body)
        return Decimal(response.headers["x-hermes-cost-usd"]) if response.status == 200 else None

    billed = [b for b in await asyncio.gather(*(one() for _ in range(60))) if b is not None]
    rows, total = await spent(p)
    assert 0 < len(billed) < 60
    assert total <= limit and total == sum((r.cost_usd for r in rows), Decimal(0))
    assert await remaining(p) == limit - total


# --- 6. a stream longer than the reservation TTL keeps its hold ---------------------------------------------------


async def test_a_stream_that_outlives_the_reservation_ttl_keeps_its_hold(proxy: ProxyFactory) -> None:
    script = Script(dialect="vllm", piece=1, answer="y" * 150, delay_s=0.01)  # about 1.5 s
    p = await proxy(script, ledger={"url": "memory://", "reservation_ttl_s": 0.4}, **budget(1.0, max_tokens=200))
    response = await p.client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": HELLO,
                                                                 "stream": True})
    reserved = Decimal(response.headers["x-hermes-reserved-usd"])
    await asyncio.sleep(1.0)  # well past the TTL, still streaming
    ledger = p.client.app[LEDGER]  # type: ignore[index]
    (status,) = await ledger.budget_status(p.config.team("default"))
    assert Decimal(status.reserved_usd) == reserved  # still held
    await response.text()
    rows, total = await spent(p)
    assert [r.status for r in rows] == ["ok"]  # billed once, not also as an expired hold
    assert await remaining(p) == Decimal(1) - total


# --- issue 19: a team's prompt limit -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["refuse", "warn"])
async def test_a_prompt_over_the_teams_limit_is_refused_or_warned_with_the_numbers(proxy: ProxyFactory,
                                                                                   mode: str) -> None:
    script = Script(dialect="vllm")
    p = await proxy(script, **budget(1.0, max_prompt_tokens=50, prompt_limit=mode))
    long = [{"role": "user", "content": "tell me about this document: " + "lorem ipsum dolor " * 40}]
    response = await p.client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": long})
    short = await p.client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": HELLO})
    assert short.status == 200 and "x-hermes-prompt-warning" not in short.headers
    if mode == "refuse":
        assert response.status == 400
        error = (await response.json())["error"]
        assert error["code"] == "prompt_limit_exceeded" and "allows 50" in error["message"]
        assert len(script.requests) == 1  # never sent upstream, never billed
        rows, _ = await spent(p)
        assert len(rows) == 1
    else:
        assert response.status == 200
        assert "allows 50" in response.headers["x-hermes-prompt-warning"]
        assert len(script.requests) == 2


# --- counting what was relayed ----------------------------------------------------------------------------------


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(alphabet="ab cd,.!?12 \n'é中", max_size=12), max_size=40))
def test_a_running_count_of_pieces_equals_counting_the_whole_text(counter: Any, pieces: list[str]) -> None:
    from hermes_proxy.pipeline.outcome import RunningCount

    running = RunningCount(counter)
    for piece in pieces:
        running.add(piece)
    assert running.tokens == counter.count_text("".join(pieces))


async def test_a_stream_cut_inside_words_is_neither_capped_nor_estimated(proxy: ProxyFactory, counter: Any) -> None:
    # "word " pieces: counted one by one they would be ~2 tokens each and hit max_tokens at about 60 % of the answer
    script = Script(dialect="vllm", answer="word " * 400, piece=5,
                    usage={"prompt_tokens": 31, "completion_tokens": 400, "total_tokens": 431})
    p = await proxy(script, **budget(1.0, max_tokens=500))
    events, _, _ = await stream(p, {"model": "hermes-4-405b", "messages": HELLO})
    assert content_of(events).strip() == ("word " * 400).strip()
    usage = events[-1]["usage"]
    assert usage["completion_tokens"] == 400 and "estimated" not in usage
    rows, _ = await spent(p)
    assert not rows[0].estimated and rows[0].completion_tokens == 400


async def test_a_first_wave_on_a_route_of_unknown_price_cannot_overshoot_the_budget(proxy: ProxyFactory) -> None:
    # 60 requests at once against a budget that fits about 14 at the configured price; OpenRouter bills 5x that
    script = Script(dialect="openrouter", openrouter_cost=float(COST * 5), delay_s=0.002)
    limit = Decimal("0.005")
    p = await proxy(script, **budget(float(limit), max_tokens=100))

    async def one() -> Decimal | None:
        response = await p.client.post("/v1/chat/completions", json={"model": "hermes-4-405b", "messages": HELLO})
        return Decimal(response.headers["x-hermes-cost-usd"]) if response.status == 200 else None

    billed = [b for b in await asyncio.gather(*(one() for _ in range(60))) if b is not None]
    _, total = await spent(p)
    assert total == sum(billed) == len(billed) * COST * 5
    first_reservation = 31 * PRICE_IN + 100 * PRICE_OUT  # what the revealing request held, about
    # only the request that revealed the price passed its reservation, by its own difference
    assert total <= limit + (COST * 5 - first_reservation) + Decimal("0.000001")
    assert await remaining(p) == limit - total


async def test_a_route_confirmed_at_its_configured_price_serves_concurrently(proxy: ProxyFactory) -> None:
    script = Script(dialect="openrouter", openrouter_cost=float(COST))
    p = await proxy(script, **budget(1.0, max_tokens=100))
    responses = await asyncio.gather(*(p.client.post("/v1/chat/completions", json={
        "model": "hermes-4-405b", "messages": HELLO}) for _ in range(20)))
    assert [r.status for r in responses] == [200] * 20
    ledger = p.client.app[LEDGER]  # type: ignore[index]
    assert list((await ledger.price_factors()).values()) == [Decimal(1)]  # known, as configured
    rows, total = await spent(p)
    assert total == 20 * COST and not any(r.learned_price for r in rows)


async def test_a_route_that_never_reports_its_price_is_not_probed_forever() -> None:
    from hermes_proxy.pipeline.probe import PriceProbes

    class Ledger:
        async def price_factors(self) -> dict[str, Decimal]:
            return {}

    probes = PriceProbes(wait_s=1.0)
    ledger: Any = Ledger()
    for _ in range(3):  # three probes end without a price (an error, BYOK without the provider's charge)
        assert await probes.enter("m/openrouter:x", ledger) is True
        probes.done("m/openrouter:x", known=False)
    # then requests go ahead unprobed, at once, instead of one by one
    results = await asyncio.wait_for(asyncio.gather(*(probes.enter("m/openrouter:x", ledger) for _ in range(5))), 0.5)
    assert results == [False] * 5
    # a probe that finds the price out ends the probing for good
    assert await probes.enter("m/openrouter:y", ledger) is True
    probes.done("m/openrouter:y", known=True)
    assert probes.is_known("m/openrouter:y") and await probes.enter("m/openrouter:y", ledger) is False
