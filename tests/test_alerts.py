"""Budget alerts end to end: real requests through the proxy (fake upstream), a local webhook receiver counting what
it gets, the outbox in a real SQLite file or PostgreSQL shared by replicas and across a restart."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web

from hermes_proxy.appkeys import ALERTS, METRICS, current_gateway
from hermes_proxy.commands.check import describe
from hermes_proxy.config import parse_config
from hermes_proxy.errors import ConfigError
from hermes_proxy.pricing import resolve_prices
from tests.databases import database_url
from tests.fake_upstream import Script
from tests.proxy_harness import Proxy, ProxyFactory

USER = [{"role": "user", "content": "hello"}]
#: upstream usage per request: $1/M in, $3/M out, 20 completion tokens ($0.00006): costs $0.005, $0.003, $0.002
STEPS = [4940, 2940, 1940]


@dataclass
class Receiver:
    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0
    attempts: int = 0

    def events(self) -> list[tuple[str, Any]]:
        return sorted((b.get("event", "slack"), b.get("threshold_percent")) for b in self.bodies)

    async def wait_for(self, count: int, *, settle_s: float = 0.4) -> None:
        """Until ``count`` deliveries arrived (or 10 s), then a little longer, to see any duplicate."""
        for _ in range(200):
            if len(self.bodies) >= count:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(settle_s)


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    state = Receiver(url="")

    async def hook(request: web.Request) -> web.Response:
        state.attempts += 1
        if state.fail_next > 0:
            state.fail_next -= 1
            return web.Response(status=503)
        state.bodies.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app)
    state.url = str(server.make_url("/hook"))
    return state


def _teams(url: str, **alert: Any) -> dict[str, Any]:
    return {"default": {"budgets": [{"window": "daily", "limit_usd": 0.01, "soft_limit_usd": 0.006}],
                        "max_tokens": 100,
                        "alerts": {"url": url, "at_percent": [50, 80, 100], "retry_backoff_s": 0.05, **alert}}}


async def _ask(p: Proxy, script: Script, prompt_tokens: int) -> None:
    script.usage = {"prompt_tokens": prompt_tokens, "completion_tokens": 20, "total_tokens": prompt_tokens + 20}
    await p.sdk().chat.completions.create(model="hermes-4-405b", messages=USER)  # type: ignore[arg-type]
    await current_gateway(p.client.app).settled()  # type: ignore[arg-type]


async def _refused(p: Proxy) -> None:
    with pytest.raises(openai.RateLimitError):
        await p.sdk().chat.completions.create(model="hermes-4-405b", messages=USER)  # type: ignore[arg-type]
    await current_gateway(p.client.app).settled()  # type: ignore[arg-type]


ALL = [("budget_threshold", 50), ("budget_threshold", 80), ("budget_threshold", 100), ("hard_limit", None),
       ("soft_limit", None)]


async def test_thresholds_soft_and_hard_limit_are_each_sent_once(proxy: ProxyFactory, receiver: Receiver) -> None:
    script = Script()
    p = await proxy(script, teams=_teams(receiver.url))
    await _ask(p, script, STEPS[0])
    await receiver.wait_for(1)
    assert receiver.events() == [("budget_threshold", 50)]
    body = receiver.bodies[0]
    assert body["team"] == "default" and body["window"] == "daily" and body["spent_usd"] == "0.005"
    assert body["limit_usd"] == "0.01" and body["percent"] == 50.0 and body["window_start"] and body["at"]
    await _ask(p, script, STEPS[1])
    await _ask(p, script, STEPS[2])
    for _ in range(3):
        await _refused(p)
    await receiver.wait_for(5)
    assert receiver.events() == ALL
    hard = next(b for b in receiver.bodies if b["event"] == "hard_limit")
    assert hard["spent_usd"] == "0.01" and hard["percent"] == 100.0
    text = p.client.app[METRICS].render()[0].decode()  # type: ignore[index]
    assert 'hermes_budget_alerts_total{result="sent",team="default"} 5.0' in text
    rows = await p.client.app[ALERTS].store.rows()  # type: ignore[union-attr,index]
    assert len(rows) == 5 and all(r.sent_at is not None for r in rows)


async def test_a_failing_receiver_gets_the_alert_once_after_retries(proxy: ProxyFactory, receiver: Receiver) -> None:
    receiver.fail_next = 2
    script = Script()
    p = await proxy(script, teams=_teams(receiver.url))
    await _ask(p, script, STEPS[0])
    await receiver.wait_for(1)
    assert receiver.events() == [("budget_threshold", 50)] and receiver.attempts == 3
    text = p.client.app[METRICS].render()[0].decode()  # type: ignore[index]
    assert 'hermes_budget_alerts_total{result="failed",team="default"} 2.0' in text
    rows = await p.client.app[ALERTS].store.rows()  # type: ignore[union-attr,index]
    assert [r.attempts for r in rows] == [3]


async def test_slack_format_body(proxy: ProxyFactory, receiver: Receiver) -> None:
    script = Script()
    p = await proxy(script, teams=_teams(receiver.url, format="slack"))
    await _ask(p, script, STEPS[0])
    await receiver.wait_for(1)
    assert len(receiver.bodies) == 1 and list(receiver.bodies[0]) == ["text"]
    text = receiver.bodies[0]["text"]
    assert "default" in text and "50%" in text and "daily" in text and "$0.005" in text


async def test_a_price_rise_is_alerted_once(proxy: ProxyFactory, receiver: Receiver) -> None:
    # OpenRouter reports $0.00012 for a request the configured price puts at $0.000091
    script = Script(dialect="openrouter")
    p = await proxy(script, teams={"default": {"alerts": {"url": receiver.url, "retry_backoff_s": 0.05}}})
    for _ in range(3):
        await p.sdk().chat.completions.create(model="hermes-4-405b", messages=USER)  # type: ignore[arg-type]
        await current_gateway(p.client.app).settled()  # type: ignore[arg-type]
    await receiver.wait_for(1)
    assert [b["event"] for b in receiver.bodies] == ["price_rise"]
    assert receiver.bodies[0]["route"].startswith("hermes-4-405b/") and float(receiver.bodies[0]["factor"]) > 1.3


# --- replicas and restarts on one database ---------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
async def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """One database for the replicas of a test: a SQLite file, or a PostgreSQL schema of its own."""
    async with database_url(request.param, tmp_path) as url:
        yield url


async def test_two_replicas_never_send_a_duplicate(proxy: ProxyFactory, receiver: Receiver,
                                                   ledger_url: str) -> None:
    script = Script()
    first = await proxy(script, teams=_teams(receiver.url), ledger={"url": ledger_url})
    second = await proxy(config=first.config)
    # both replicas see every crossing (each settles on the shared ledger), and both senders poll the one outbox
    for index, prompt in enumerate(STEPS):
        replica = (first, second)[index % 2]
        await _ask(replica, script, prompt)
        await current_gateway((second, first)[index % 2].client.app).settled()  # type: ignore[arg-type]
    await _refused(second)
    await _refused(first)
    await receiver.wait_for(5, settle_s=0.6)
    assert receiver.events() == ALL
    assert receiver.attempts == 5


async def test_a_restart_sends_what_was_pending_and_nothing_twice(proxy: ProxyFactory, receiver: Receiver,
                                                                  ledger_url: str) -> None:
    script = Script()
    # a retry waits 0.3 s, then 0.6 s: the first replica stops while two alerts wait for their retry
    before = await proxy(script, teams=_teams(receiver.url, retry_backoff_s=0.3), ledger={"url": ledger_url})
    await _ask(before, script, STEPS[0])
    await receiver.wait_for(1)
    receiver.fail_next = 1_000  # down: the next alerts wait in the outbox
    await _ask(before, script, STEPS[1])
    for _ in range(100):
        if receiver.attempts >= 3:  # the 80 % and soft-limit alerts were tried once each, and failed
            break
        await asyncio.sleep(0.05)
    await before.client.close()
    receiver.fail_next = 0
    after = await proxy(config=before.config)
    await receiver.wait_for(3)
    assert receiver.events() == [("budget_threshold", 50), ("budget_threshold", 80), ("soft_limit", None)]
    rows = await after.client.app[ALERTS].store.rows()  # type: ignore[union-attr,index]
    assert len(rows) == 3 and all(r.sent_at is not None for r in rows)


# --- configuration -----------------------------------------------------------------------------------------------


def _config(alerts: Any) -> Any:
    return parse_config({"upstreams": [{"name": "demo", "kind": "demo"}],
                         "models": {"m": {"routes": [{"upstream": "demo", "model": "m"}]}},
                         "teams": {"ops": {"budgets": [{"window": "daily", "limit_usd": 5, "soft_limit_usd": 4}],
                                           "alerts": alerts}}}, env={})


@pytest.mark.parametrize(("alerts", "key"), [
    ({"format": "json"}, "teams.ops.alerts.url"),
    ({"url": "ftp://x"}, "teams.ops.alerts.url"),
    ({"url": "http://127.0.0.1:9/h", "format": "xml"}, "teams.ops.alerts.format"),
    ({"url": "http://127.0.0.1:9/h", "at_percent": [50, 150]}, "teams.ops.alerts.at_percent"),
    ({"url": "http://127.0.0.1:9/h", "at_percent": "50"}, "teams.ops.alerts.at_percent"),
    ({"url": "http://127.0.0.1:9/h", "colour": "red"}, "teams.ops.alerts.colour"),
    ({"url": "http://127.0.0.1:9/h", "timeout_s": 0}, "teams.ops.alerts.timeout_s"),
    ([{"url": "http://127.0.0.1:9/a"}, {"url": "http://127.0.0.1:9/b", "format": "teams"}],
     "teams.ops.alerts[1].format"),
    ([{"url": "http://127.0.0.1:9/a"}, "x"], "teams.ops.alerts[1]"),
    ([], "teams.ops.alerts"),
    ("http://127.0.0.1:9/a", "teams.ops.alerts"),
])
def test_config_errors_name_the_key(alerts: Any, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(alerts)
    assert caught.value.key == key


def test_alerts_config_and_check_config(counter: Any) -> None:
    config = _config([{"url": "http://127.0.0.1:9/a"}, {"url": "http://127.0.0.1:9/b", "format": "slack",
                                                        "at_percent": [90, 25]}])
    team = config.team("ops")
    assert team is not None
    assert [(a.format, a.at_percent) for a in team.alerts] == [("json", (50, 80, 100)), ("slack", (25, 90))]
    text = describe(config, counter, resolve_prices(config))
    assert "alerts: json http://127.0.0.1:9/a at 50/80/100%" in text
    assert "slack http://127.0.0.1:9/b at 25/90%" in text


def test_the_json_body_has_every_field() -> None:
    from hermes_proxy.alerts import render
    from policies.types import AlertRule

    payload = {"event": "soft_limit", "team": "ops", "window": "daily", "spent_usd": "4.5", "limit_usd": "5",
               "percent": 90.0, "window_start": "2026-01-01T00:00:00+00:00", "at": "2026-01-01T10:00:00+00:00"}
    assert json.loads(render(AlertRule(url="http://127.0.0.1:9/"), payload)) == payload
    slack = json.loads(render(AlertRule(url="http://127.0.0.1:9/", format="slack"), payload))
    assert list(slack) == ["text"] and "soft limit" in slack["text"] and "ops" in slack["text"]
