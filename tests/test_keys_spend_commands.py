"""``hermes-proxy keys …`` and ``hermes-proxy spend …`` against a real config file and a SQLite ledger in tmp_path."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hermes_proxy.commands import keys as keys_command
from hermes_proxy.commands import spend as spend_command
from hermes_proxy.config import load_config
from hermes_proxy.errors import HermesError, InvalidRequest, NotFound
from hermes_proxy.ledger import open_ledger
from hermes_proxy.ledger.base import RequestRecord

D = Decimal


@pytest.fixture(autouse=True)
def _isolate_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(name, str(tmp_path / "home" / name.lower()))
    monkeypatch.delenv("HERMES_PROXY_CONFIG", raising=False)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""
[[upstreams]]
name = "demo"
kind = "demo"

[models.hermes-4-405b]
routes = [{{ upstream = "demo", model = "Hermes-4-405B" }}]

[teams.research]
timezone = "Europe/Berlin"
key_limit_usd = 3
budgets = [{{ window = "daily", limit_usd = 10, soft_limit_usd = 8 }}, {{ window = "total", limit_usd = 100 }}]

[teams.ops]

[ledger]
url = "sqlite:///{tmp_path / 'data' / 'ledger.sqlite3'}"
""")
    return path


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="hermes-proxy")
    parser.add_argument("--config", default=None)  # as the real CLI may: a --config before the subcommand
    commands = parser.add_subparsers(dest="command", required=True)
    keys_command.add_parser(commands)
    spend_command.add_parser(commands)
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


def ledger_db(config_path: Path) -> Path:
    return config_path.parent / "data" / "ledger.sqlite3"


async def _with_ledger(config_path: Path, work: Any) -> Any:
    ledger = open_ledger(load_config(config_path).ledger)
    await ledger.start()
    try:
        return await work(ledger)
    finally:
        await ledger.close()


def with_ledger(config_path: Path, work: Any) -> Any:
    return asyncio.run(_with_ledger(config_path, work))


def bill(config_path: Path, team: str, cost: str | None, *, model: str = "hermes-4-405b",
         at: datetime | None = None, estimated: bool = False, learned_price: bool = False) -> None:
    config = load_config(config_path)
    policy = config.team(team)
    assert policy is not None

    async def work(ledger: Any) -> None:
        admission = await ledger.reserve(policy, None, D("0.5"))
        await ledger.settle(admission.hold, RequestRecord(
            request_id=uuid.uuid4().hex, started_at=at or datetime.now(UTC), team=team, key_id=None, key_name=None,
            model=model, route="demo:Hermes-4-405B", reasoning=False, prompt_tokens=1000, completion_tokens=200,
            reasoning_tokens=50, cost_usd=None if cost is None else D(cost), estimated=estimated, status="ok",
            latency_ms=1.0, ttft_ms=None, learned_price=learned_price))

    with_ledger(config_path, work)


# --- keys --------------------------------------------------------------------------------------------------------------


def test_keys_create_prints_the_key_once(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("keys", "create", "--team", "research", "--name", "ci", "--limit-usd", "2.5",
               "--config", str(config_path)) == 0
    out, err = capsys.readouterr()
    plaintext = out.strip()
    assert plaintext.startswith("hp-") and "\n" not in plaintext
    assert "team 'research'" in err and "spend limit $2.50" in err and "store it" in err
    record = with_ledger(config_path, lambda ledger: ledger.verify_key(plaintext))
    assert record is not None and record.name == "ci" and record.limit_usd == D("2.5")

    # the plaintext is never shown again
    assert cli("keys", "list", "--config", str(config_path)) == 0
    listing, _ = capsys.readouterr()
    assert plaintext not in listing and plaintext[:10] in listing and "ci" in listing and "$2.50" in listing


def test_keys_json_list_and_revoke(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli("--config", str(config_path), "keys", "create", "--team", "ops", "--format", "json")
    created = json.loads(capsys.readouterr().out)
    assert created["team"] == "ops" and created["key"].startswith("hp-") and created["limit_usd"] is None
    cli("--config", str(config_path), "keys", "create", "--team", "research")
    err = capsys.readouterr().err
    assert "spend limit $3.00" in err  # the team's key_limit_usd
    cli("keys", "list", "--team", "ops", "--format", "json", "--config", str(config_path))
    listed = json.loads(capsys.readouterr().out)["data"]
    assert [k["id"] for k in listed] == [created["id"]]

    assert cli("keys", "revoke", created["id"], "--config", str(config_path)) == 0
    assert "revoked" in capsys.readouterr().out
    assert with_ledger(config_path, lambda ledger: ledger.verify_key(created["key"])) is None
    cli("keys", "list", "--config", str(config_path))
    assert "revoked" in capsys.readouterr().out
    with pytest.raises(NotFound, match="no key"):
        cli("keys", "revoke", "nobody", "--config", str(config_path))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--team", "nobody"], "unknown team 'nobody' (configured teams: ops, research)"),
        (["--team", "research", "--limit-usd", "-5"], "--limit-usd must not be negative"),
        (["--team", "research", "--limit-usd", "five"], "--limit-usd must be a number of USD"),
        (["--team", "research", "--limit-usd", "inf"], "finite"),
        (["--team", "research", "--name", "no spaces please"], "key name"),
    ],
)
def test_bad_key_input_is_a_clear_error_and_writes_nothing(config_path: Path, argv: list[str], message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        cli("keys", "create", *argv, "--config", str(config_path))
    assert message in str(caught.value)
    assert not ledger_db(config_path).exists()  # the ledger was never even opened


def test_unknown_team_in_list_and_revoke(config_path: Path) -> None:
    for argv in (["keys", "list", "--team", "nobody"], ["keys", "revoke", "x", "--team", "nobody"]):
        with pytest.raises(HermesError, match="unknown team"):
            cli(*argv, "--config", str(config_path))


# --- spend -------------------------------------------------------------------------------------------------------------


def test_spend_table_with_budgets(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bill(config_path, "research", "1.25")
    bill(config_path, "research", None)
    bill(config_path, "ops", "4")
    assert cli("spend", "--config", str(config_path)) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["TEAM", "REQUESTS"]
    assert lines[1].split()[:2] == ["ops", "1"] and "$4.00" in lines[1]
    assert lines[2].split()[:2] == ["research", "2"] and "$1.25" in lines[2]
    assert lines[3].split()[0] == "total" and "$5.25" in lines[3]

    cli("spend", "--team", "research", "--config", str(config_path))
    out = capsys.readouterr().out
    assert "ops" not in out
    assert "budget  daily" in out and "remaining $8.75" in out and "Europe/Berlin" in out


def test_spend_csv_and_json(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bill(config_path, "research", "0.000123", model="hermes-4-405b")
    bill(config_path, "research", "2", model="hermes-4-70b")
    bill(config_path, "research", None, model="hermes-4-70b")
    cli("spend", "--team", "research", "--by", "model", "--format", "csv", "--config", str(config_path))
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["model"], r["cost_usd"], r["unknown_cost_requests"]) for r in rows] == [
        ("hermes-4-70b", "2.00", "1"), ("hermes-4-405b", "0.000123", "0")]
    assert rows[0]["prompt_tokens"] == "2000" and rows[0]["reasoning_tokens"] == "100"

    cli("spend", "--team", "research", "--by", "day", "--format", "json", "--since", "7d", "--config",
        str(config_path))
    body = json.loads(capsys.readouterr().out)
    assert body["by"] == "day" and body["timezone"] == "Europe/Berlin"
    assert body["total"]["cost_usd"] == "2.000123" and body["total"]["requests"] == 3
    assert [b["window"] for b in body["budgets"]] == ["daily", "total"]

    cli("spend", "--since", "2000-01-01", "--until", "2000-02-01", "--config", str(config_path))
    assert capsys.readouterr().out.startswith("no requests since 2000-01-01 00:00 until 2000-02-01 00:00")


def test_spend_counts_estimated_and_learned_price_requests(config_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    bill(config_path, "research", "0.25", estimated=True)
    bill(config_path, "research", "1.5", learned_price=True)
    bill(config_path, "research", "0.75", estimated=True, learned_price=True)
    bill(config_path, "research", "2")
    cli("spend", "--team", "research", "--format", "csv", "--config", str(config_path))
    (row,) = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert (row["requests"], row["cost_usd"], row["estimated_requests"], row["estimated_cost_usd"],
            row["learned_price_requests"], row["learned_price_cost_usd"]) == ("4", "4.50", "2", "1.00", "2", "2.25")
    cli("spend", "--team", "research", "--format", "json", "--config", str(config_path))
    total = json.loads(capsys.readouterr().out)["total"]
    assert (total["estimated_requests"], total["estimated_cost_usd"]) == (2, "1.00")
    assert (total["learned_price_requests"], total["learned_price_cost_usd"]) == (2, "2.25")
    cli("spend", "--team", "research", "--config", str(config_path))
    lines = capsys.readouterr().out.splitlines()
    assert "ESTIMATED*" in lines[0] and "LEARNED PRICE*" in lines[0]
    assert "2 ($1.00)" in lines[1] and "2 ($2.25)" in lines[1]
    assert any(line.startswith("* requests") for line in lines)


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--team", "nobody"], "unknown team"), (["--since", "last week"], "--since: cannot read time"),
     (["--timezone", "Mars/Olympus"], "unknown time zone")],
)
def test_spend_bad_input(config_path: Path, argv: list[str], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        cli("spend", *argv, "--config", str(config_path))
