"""Admin endpoints and ``GET /v1/spend``, through a real aiohttp app on a real (in-memory SQLite) ledger."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hermes_proxy.app import create_app
from hermes_proxy.config import Config, parse_config
from hermes_proxy.ledger import open_ledger
from hermes_proxy.ledger.base import Ledger, RequestRecord
from hermes_proxy.tokens import TokenCounter

D = Decimal
ADMIN = "admin-secret-for-tests"
Client = TestClient  # type: ignore[type-arg]


@pytest.fixture(autouse=True)
def _isolate_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(name, str(tmp_path / "home" / name.lower()))
    monkeypatch.delenv("HERMES_PROXY_CONFIG", raising=False)


def make_config(*, admin: bool = True, auth: str = "keys") -> Config:
    data: dict[str, Any] = {
        "server": {"auth": auth},
        "upstreams": [{"name": "demo", "kind": "demo"}],
        "models": {"hermes-4-405b": {"routes": [{"upstream": "demo", "model": "Hermes-4-405B"}]}},
        "teams": {
            "research": {"timezone": "Europe/Berlin",
                         "budgets": [{"window": "daily", "limit_usd": 10, "soft_limit_usd": 8}]},
            "ops": {},
        },
        "ledger": {"url": "memory://"},
        "chat": {"team": "research"},
    }
    return parse_config(data, env={"HERMES_ADMIN_KEY": ADMIN} if admin else {})


@pytest.fixture
async def ledger() -> AsyncIterator[Ledger]:
    made = open_ledger(make_config().ledger)
    await made.start()
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
def client_for(aiohttp_client: Any, ledger: Ledger, counter: TokenCounter) -> Callable[..., Awaitable[Client]]:
    async def make(config: Config | None = None) -> Client:
        # the real application, with the test's ledger (and the session's token counter) injected
        return await aiohttp_client(create_app(config or make_config(), ledger=ledger, counter=counter))

    return make


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def bill(ledger: Ledger, config: Config, team: str, cost: str, *, key_id: str | None = None,
               model: str = "hermes-4-405b") -> None:
    policy = config.team(team)
    assert policy is not None
    admission = await ledger.reserve(policy, None, D("1"))
    await ledger.settle(admission.hold, RequestRecord(
        request_id=uuid.uuid4().hex, started_at=datetime.now(UTC), team=team, key_id=key_id, key_name=None,
        model=model, route="demo:Hermes-4-405B", reasoning=False, prompt_tokens=1, completion_tokens=2,
        reasoning_tokens=0, cost_usd=D(cost), estimated=False, status="ok", latency_ms=1.0, ttft_ms=None))


# --- admin keys --------------------------------------------------------------------------------------------------------


async def test_admin_routes_do_not_exist_without_an_admin_key(client_for: Any) -> None:
    client = await client_for(make_config(admin=False))
    for method, path in (("GET", "/admin/keys"), ("POST", "/admin/keys"), ("DELETE", "/admin/keys/x"),
                         ("GET", "/admin/spend")):
        response = await client.request(method, path, headers=auth("anything"))
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"


async def test_admin_key_is_required(client_for: Any) -> None:
    client = await client_for()
    for headers in ({}, auth("wrong"), auth(ADMIN + "x"), {"Authorization": f"Basic {ADMIN}"}):
        response = await client.get("/admin/keys", headers=headers)
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "invalid_api_key"


async def test_create_list_revoke_over_http(client_for: Any, ledger: Ledger) -> None:
    client = await client_for()
    response = await client.post("/admin/keys", json={"team": "research", "name": "ci", "limit_usd": "2.5"},
                                 headers=auth(ADMIN))
    assert response.status == 201
    created = await response.json()
    plaintext = created["key"]
    assert plaintext.startswith("hp-") and created["limit_usd"] == "2.50" and created["team"] == "research"
    assert (await ledger.verify_key(plaintext)) is not None

    await client.post("/admin/keys", json={"team": "ops"}, headers=auth(ADMIN))
    listed = await (await client.get("/admin/keys", params={"team": "research"}, headers=auth(ADMIN))).json()
    assert [k["name"] for k in listed["data"]] == ["ci"]
    assert plaintext not in str(listed) and "hash" not in str(listed)
    everything = await (await client.get("/admin/keys", headers=auth(ADMIN))).json()
    assert {k["team"] for k in everything["data"]} == {"research", "ops"}

    response = await client.delete("/admin/keys/ci", params={"team": "research"}, headers=auth(ADMIN))
    assert response.status == 200 and (await response.json())["revoked_at"] is not None
    assert await ledger.verify_key(plaintext) is None
    response = await client.get("/v1/spend", headers=auth(plaintext))
    assert response.status == 401  # revoked -> 401
    response = await client.delete("/admin/keys/ci", headers=auth(ADMIN))
    assert response.status == 404


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"team": "nobody"}, "unknown team 'nobody' (configured teams: ops, research)"),
        ({}, "a team is required"),
        ({"team": "research", "limit_usd": -1}, "must not be negative"),
        ({"team": "research", "limit_usd": "lots"}, "must be a number of USD"),
        ({"team": "research", "limit_usd": True}, "must be a number of USD"),
        ({"team": "research", "name": "has space"}, "key name"),
        ({"team": "research", "colour": "red"}, "unknown field"),
        (["research"], "JSON object"),
    ],
)
async def test_bad_key_requests_write_nothing(client_for: Any, ledger: Ledger, body: Any, fragment: str) -> None:
    client = await client_for()
    response = await client.post("/admin/keys", json=body, headers=auth(ADMIN))
    assert response.status == 400
    assert fragment in (await response.json())["error"]["message"]
    assert await ledger.list_keys() == []


async def test_not_json_is_a_400(client_for: Any) -> None:
    client = await client_for()
    response = await client.post("/admin/keys", data=b"{nope", headers=auth(ADMIN))
    assert response.status == 400


# --- spend -------------------------------------------------------------------------------------------------------------


async def test_a_team_key_sees_only_its_own_team(client_for: Any, ledger: Ledger) -> None:
    config = make_config()
    client = await client_for(config)
    research_key, research = await ledger.create_key("research", "ci")
    ops_key, _ = await ledger.create_key("ops", "bot", D("20"))
    await bill(ledger, config, "research", "0.25", key_id=research.id)
    await bill(ledger, config, "ops", "7")

    response = await client.get("/v1/spend", headers=auth(research_key))
    assert response.status == 200
    body = await response.json()
    assert body["team"] == "research" and body["timezone"] == "Europe/Berlin"
    assert [(r["group"], r["cost_usd"]) for r in body["data"]] == [("research", "0.25")]
    assert body["total"]["cost_usd"] == "0.25"
    for row in (body["data"][0], body["total"]):  # how many requests are estimates or at a learned price, and cost
        assert (row["estimated_requests"], row["estimated_cost_usd"]) == (0, "0.00")
        assert (row["learned_price_requests"], row["learned_price_cost_usd"]) == (0, "0.00")
    (daily,) = body["budgets"]
    assert daily["window"] == "daily" and daily["spent_usd"] == "0.25" and daily["remaining_usd"] == "9.75"

    by_key = await (await client.get("/v1/spend", params={"by": "key"}, headers=auth(research_key))).json()
    assert [r["group"] for r in by_key["data"]] == ["ci"]
    assert "bot" not in str(by_key) and "ops" not in str(by_key)

    response = await client.get("/v1/spend", params={"team": "ops"}, headers=auth(research_key))
    assert response.status == 403
    ops_body = await (await client.get("/v1/spend", headers=auth(ops_key))).json()
    assert ops_body["total"]["cost_usd"] == "7.00"
    (key_limit,) = ops_body["budgets"]  # ops has no team budget; the key's own limit shows
    assert key_limit["window"] == "key" and key_limit["limit_usd"] == "20.00" and key_limit["resets_at"] is None

    for headers in ({}, auth("hp-not-a-real-key-at-all-000000")):
        assert (await client.get("/v1/spend", headers=headers)).status == 401


async def test_admin_sees_any_team(client_for: Any, ledger: Ledger) -> None:
    config = make_config()
    client = await client_for(config)
    await bill(ledger, config, "research", "1.5")
    await bill(ledger, config, "ops", "0.5", model="hermes-4-70b")
    everyone = await (await client.get("/v1/spend", headers=auth(ADMIN))).json()
    assert {r["group"]: r["cost_usd"] for r in everyone["data"]} == {"research": "1.50", "ops": "0.50"}
    assert everyone["team"] is None and "budgets" not in everyone
    ops = await (await client.get("/admin/spend", params={"team": "ops", "by": "model"}, headers=auth(ADMIN))).json()
    assert [(r["group"], r["requests"]) for r in ops["data"]] == [("hermes-4-70b", 1)]
    dated = await (await client.get("/admin/spend", params={"since": "2000-01-01", "until": "2000-01-02"},
                                    headers=auth(ADMIN))).json()
    assert dated["data"] == [] and dated["since"].startswith("2000-01-01")


@pytest.mark.parametrize(("params", "param"), [({"by": "colour"}, "by"), ({"since": "yesterday-ish"}, "since"),
                                               ({"until": "2025-13-45"}, "until")])
async def test_bad_spend_queries(client_for: Any, params: dict[str, str], param: str) -> None:
    client = await client_for()
    response = await client.get("/admin/spend", params=params, headers=auth(ADMIN))
    assert response.status == 400
    assert (await response.json())["error"]["param"] == param


async def test_auth_off_means_the_chat_team(client_for: Any, ledger: Ledger) -> None:
    config = make_config(auth="none", admin=False)
    client = await client_for(config)
    await bill(ledger, config, "research", "0.1")
    await bill(ledger, config, "ops", "0.2")
    body = await (await client.get("/v1/spend")).json()
    assert body["team"] == "research" and body["total"]["cost_usd"] == "0.10"
    assert (await client.get("/v1/spend", params={"team": "ops"})).status == 403
