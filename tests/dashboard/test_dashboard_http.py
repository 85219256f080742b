"""``/ui`` through the real application on a real SQLite ledger: sign-in, cookie flags, CSP, CSRF, team isolation,
keys through the admin API's code, live figures, and exports equal to the CLI's output."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from dashboard_support import ADMIN, Client, bill, form_token, login, write_config

from hermes_proxy.app import create_app
from hermes_proxy.commands import keys as keys_command
from hermes_proxy.commands import spend as spend_command
from hermes_proxy.config import Config, load_config
from hermes_proxy.dashboard import CSP
from hermes_proxy.dashboard.session import COOKIE
from hermes_proxy.ledger import open_ledger
from hermes_proxy.ledger.base import HoldInfo, Ledger
from hermes_proxy.tokens import TokenCounter


@pytest.fixture
def config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HERMES_ADMIN_KEY", ADMIN)
    return write_config(tmp_path)


@pytest.fixture
def config(config_path: Path) -> Config:
    return load_config(config_path)


@pytest.fixture
async def ledger(config: Config) -> AsyncIterator[Ledger]:
    made = open_ledger(config.ledger)
    await made.start()
    yield made
    await made.close()


@pytest.fixture
def client_for(aiohttp_client: Any, ledger: Ledger, config: Config,
               counter: TokenCounter) -> Callable[..., Awaitable[Client]]:
    async def make(cfg: Config | None = None) -> Client:
        return await aiohttp_client(create_app(cfg or config, ledger=ledger, counter=counter))

    return make


async def admin_client(client_for: Callable[..., Awaitable[Client]]) -> Client:
    client = await client_for()
    response = await login(client, ADMIN)
    assert response.status == 303, await response.text()
    return client


def set_cookie_header(response: Any) -> str:
    return next(v for v in response.headers.getall("Set-Cookie") if v.startswith(COOKIE + "="))


# --- sign-in, cookie, headers ---------------------------------------------------------------------------------------


async def test_signed_out_goes_to_the_login_form_with_a_strict_csp(client_for: Any) -> None:
    client = await client_for()
    response = await client.get("/ui", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/ui/login"
    form = await client.get("/ui/login")
    assert form.headers["Content-Security-Policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP and "http" not in CSP
    assert form.headers["X-Frame-Options"] == "DENY" and form.headers["Cache-Control"] == "no-store"
    html = await form.text()
    assert 'type="password"' in html and "<script>" not in html and "style=" not in html


async def test_admin_login_sets_an_httponly_strict_cookie_and_no_key_anywhere(client_for: Any) -> None:
    client = await client_for()
    response = await login(client, ADMIN)
    assert response.status == 303 and response.headers["Location"] == "/ui"
    raw = set_cookie_header(response)
    morsel = SimpleCookie(raw)[COOKIE]
    assert morsel["httponly"] and morsel["samesite"] == "Strict" and morsel["path"] == "/ui"
    assert not morsel["secure"]  # plain http on loopback: a Secure cookie would never come back
    assert ADMIN not in raw and ADMIN not in response.headers.get("Location", "")
    page = await client.get("/ui")
    assert page.status == 200 and ADMIN not in await page.text()
    assert "research" in await page.text() and page.headers["Content-Security-Policy"] == CSP


async def test_cookie_is_secure_behind_https(client_for: Any) -> None:
    client = await client_for()
    response = await login(client, ADMIN, **{"X-Forwarded-Proto": "https"})
    assert SimpleCookie(set_cookie_header(response))[COOKIE]["secure"]


async def test_wrong_key_and_missing_csrf_are_refused(client_for: Any) -> None:
    client = await client_for()
    bad = await login(client, "hp-not-a-real-key-at-all-0000000000")
    assert bad.status == 401 and "not valid" in await bad.text()
    page = await client.get("/ui/login")
    no_token = await client.post("/ui/login", data={"key": ADMIN}, allow_redirects=False)
    assert no_token.status == 403 and COOKIE not in no_token.cookies
    foreign = await client.post("/ui/login", data={"key": ADMIN, "csrf": form_token(await page.text())},
                                headers={"Origin": "http://evil.example"}, allow_redirects=False)
    assert foreign.status == 403


async def test_forged_or_logged_out_cookie_is_rejected(client_for: Any) -> None:
    client = await admin_client(client_for)
    token = client.session.cookie_jar.filter_cookies(client.make_url("/ui"))[COOKIE].value
    payload, _ = token.split(".")
    forged = await client.get("/ui", cookies={COOKIE: payload + ".AAAA"}, allow_redirects=False)
    assert forged.status == 303
    html = await (await client.get("/ui")).text()
    out = await client.post("/ui/logout", data={"csrf": form_token(html)}, allow_redirects=False)
    assert out.status == 303
    again = await client.get("/ui", cookies={COOKIE: token}, allow_redirects=False)
    assert again.status == 303 and again.headers["Location"] == "/ui/login"


async def test_dashboard_off_is_404(client_for: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERMES_ADMIN_KEY", ADMIN)
    (tmp_path / "off").mkdir()
    off = load_config(write_config(tmp_path / "off", dashboard=False))
    client = await client_for(off)
    assert (await client.get("/ui")).status == 404


# --- team isolation -------------------------------------------------------------------------------------------------


async def test_team_key_sees_its_own_team_only(client_for: Any, ledger: Ledger, config: Config) -> None:
    plaintext, record = await ledger.create_key("research", "alice")
    await ledger.create_key("ops", "ops-bot")
    await bill(ledger, config, "ops", "5.5", model="ops-secret-model")
    client = await client_for()
    response = await login(client, plaintext)
    assert response.status == 303 and response.headers["Location"] == "/ui/team?team=research"
    assert (await client.get("/ui", allow_redirects=False)).headers["Location"] == "/ui/team?team=research"
    own = await client.get("/ui/team?team=research")
    assert own.status == 200 and plaintext not in await own.text()
    other = await client.get("/ui/team?team=ops")
    assert other.status == 403 and "ops-secret-model" not in await other.text()
    assert (await client.get("/ui/live?team=ops")).status == 403
    assert (await client.get("/ui/export/spend-model.csv?team=ops")).status == 403
    assert (await client.get("/ui/export/keys.json?team=ops")).status == 403
    assert (await client.get("/ui/team?team=nobody")).status == 404
    mine = await client.get("/ui/export/spend-model.csv")  # no team: the session's own
    assert "ops-secret-model" not in await mine.text()
    keys = await (await client.get("/ui/keys?team=ops")).text()
    assert "alice" in keys and "ops-bot" not in keys and 'id="create-key"' not in keys
    create = await client.post("/ui/keys", data={"team": "research", "csrf": form_token(keys)})
    assert create.status == 403 and len(await ledger.list_keys("research")) == 1
    await ledger.revoke_key(record.id)  # a revoked key ends its session at once
    assert (await client.get("/ui/team?team=research", allow_redirects=False)).status == 303


# --- keys -----------------------------------------------------------------------------------------------------------


async def test_create_and_revoke_a_key_with_csrf_and_audit(client_for: Any, ledger: Ledger,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    client = await admin_client(client_for)
    page = await client.get("/ui/keys?team=research")
    token = form_token(await page.text())
    refused = await client.post("/ui/keys", data={"team": "research", "name": "ci"})
    assert refused.status == 403 and await ledger.list_keys("research") == []
    foreign = await client.post("/ui/keys", data={"team": "research", "name": "ci", "csrf": token},
                                headers={"Origin": "http://evil.example"})
    assert foreign.status == 403 and await ledger.list_keys("research") == []
    with caplog.at_level(logging.INFO, logger="hermes_proxy.audit"):
        created = await client.post("/ui/keys", data={"team": "research", "name": "ci", "limit_usd": "2.5",
                                                      "csrf": token})
    assert created.status == 201 and created.headers["Cache-Control"] == "no-store"
    html = await created.text()
    plaintext = html.split('id="new-key">', 1)[1].split("<", 1)[0]
    record = await ledger.verify_key(plaintext)
    assert record is not None and record.name == "ci" and record.limit_usd == Decimal("2.5")
    assert plaintext not in await (await client.get("/ui/keys?team=research")).text()  # shown once
    entry = next(r for r in caplog.records if r.name == "hermes_proxy.audit")
    assert entry.fields["via"] == "dashboard" and entry.fields["key_id"] == record.id  # type: ignore[attr-defined]
    duplicate = await client.post("/ui/keys", data={"team": "research", "name": "ci", "csrf": token})
    assert duplicate.status == 400 and "already has a live key" in await duplicate.text()
    bad_limit = await client.post("/ui/keys", data={"team": "research", "limit_usd": "-1", "csrf": token})
    assert bad_limit.status == 400 and "must not be negative" in await bad_limit.text()
    no_csrf = await client.post("/ui/keys/revoke", data={"key_id": record.id})
    assert no_csrf.status == 403 and await ledger.verify_key(plaintext) is not None
    revoked = await client.post("/ui/keys/revoke", data={"key_id": record.id, "csrf": token})
    assert revoked.status == 200 and 'id="revoked"' in await revoked.text()
    assert await ledger.verify_key(plaintext) is None


# --- pages and live -------------------------------------------------------------------------------------------------


async def test_team_page_shows_budgets_chart_breakdowns_and_marks(client_for: Any, ledger: Ledger,
                                                                  config: Config) -> None:
    _, key = await ledger.create_key("research", "alice")
    await bill(ledger, config, "research", "1.25", key_id=key.id, key_name="alice", reasoning=True)
    await bill(ledger, config, "research", "0.75", model="hermes-4-70b", estimated=True)
    await bill(ledger, config, "research", "2.5", learned_price=True,
               started_at=datetime.now(UTC) - timedelta(days=3))
    client = await admin_client(client_for)
    response = await client.get("/ui/team?team=research")
    html = await response.text()
    assert response.status == 200
    assert 'id="budgets"' in html and "daily" in html and "monthly" in html and "$10" in html
    assert 'id="chart-hourly"' in html and 'id="chart-daily"' in html and html.count('class="bar"') >= 48
    for table in ("by-model", "by-key", "by-reasoning", "top-requests"):
        assert f'id="{table}"' in html
    assert "hermes-4-70b" in html and "alice" in html and "estimated" in html and "learned price" in html
    assert "$4.50" in html  # the period's spend, from the roll-up
    live = await client.get("/ui/live?team=research")
    body = await live.json()
    assert body["in_flight"] == 0 and body["spent:daily"] == "$2.00"
    policy = config.team("research")
    assert policy is not None
    await ledger.reserve(policy, None, Decimal("0.5"),
                         info=HoldInfo("req_live", None, "hermes-4-405b", "demo", False, datetime.now(UTC)))
    body = await (await client.get("/ui/live?team=research")).json()
    assert body["in_flight"] == 1 and body["reserved"] == "$0.50"
    overview = await (await client.get("/ui/live")).json()
    assert overview["in_flight:research"] == 1


# --- exports equal the CLI's ----------------------------------------------------------------------------------------


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="hermes-proxy")
    commands = parser.add_subparsers(dest="command", required=True)
    keys_command.add_parser(commands)
    spend_command.add_parser(commands)
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


@pytest.mark.parametrize("by", ["model", "key", "reasoning", "day", "team"])
@pytest.mark.parametrize("fmt", ["csv", "json"])
async def test_spend_exports_equal_the_cli(by: str, fmt: str, client_for: Any, ledger: Ledger, config: Config,
                                          config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, key = await ledger.create_key("research", "alice")
    await bill(ledger, config, "research", "1.25", key_id=key.id, key_name="alice", reasoning=True)
    await bill(ledger, config, "research", "0.000123", model="hermes-4-70b", estimated=True)
    await bill(ledger, config, "ops", "3")
    client = await admin_client(client_for)
    for team in ("research", None):
        params = {"since": "2020-01-01", "until": "2100-01-01", **({"team": team} if team else {})}
        response = await client.get(f"/ui/export/spend-{by}.{fmt}", params=params)
        assert response.status == 200
        assert "attachment" in response.headers["Content-Disposition"]
        argv = ["spend", "--config", str(config_path), "--by", by, "--since", "2020-01-01", "--until", "2100-01-01",
                "--format", fmt, *(["--team", team] if team else [])]
        capsys.readouterr()
        assert await asyncio.to_thread(cli, *argv) == 0
        assert await response.text() == capsys.readouterr().out


async def test_keys_export_equals_the_cli(client_for: Any, ledger: Ledger, config_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    await ledger.create_key("research", "alice")
    await ledger.create_key("ops", "bot")
    client = await admin_client(client_for)
    capsys.readouterr()
    assert await asyncio.to_thread(cli, "keys", "list", "--config", str(config_path), "--format", "json") == 0
    assert await (await client.get("/ui/export/keys.json")).text() == capsys.readouterr().out
    csv_text = await (await client.get("/ui/export/keys.csv?team=ops")).text()
    assert csv_text.splitlines()[0].startswith("id,team,name") and "alice" not in csv_text


@pytest.mark.parametrize("table", ["budgets", "requests", "hourly", "daily"])
async def test_other_tables_export(table: str, client_for: Any, ledger: Ledger, config: Config) -> None:
    await bill(ledger, config, "research", "1.5")
    client = await admin_client(client_for)
    document = json.loads(await (await client.get(f"/ui/export/{table}.json?team=research")).text())
    csv_text = await (await client.get(f"/ui/export/{table}.csv?team=research")).text()
    assert len(csv_text.splitlines()) >= 2
    if table != "budgets":
        assert "1.50" in csv_text and document["data"]
    assert (await client.get(f"/ui/export/{table}.xml?team=research")).status == 404


async def test_exports_and_live_need_a_session(client_for: Any) -> None:
    client = await client_for()
    assert (await client.get("/ui/export/spend-team.csv")).status == 401
    assert (await client.get("/ui/live")).status == 401
