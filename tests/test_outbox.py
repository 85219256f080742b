"""Every request is billed even when the ledger is down at settle time (issue 13, item 9): the settle is retried, then
kept in a durable outbox and written once the ledger is back, exactly once.

The failures are simulated by a thin wrapper around a real ledger (SQLite, and PostgreSQL when
``HERMES_TEST_POSTGRES_URL`` is set) whose ``settle`` raises ``LedgerUnavailable`` on demand."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hermes_proxy.app import create_app
from hermes_proxy.appkeys import OUTBOX, current_gateway
from hermes_proxy.config import parse_config
from hermes_proxy.errors import ConfigError, LedgerUnavailable
from hermes_proxy.ledger.base import Hold, RequestRecord
from hermes_proxy.ledger.outbox import (
    Outbox,
    decode_entry,
    encode_entry,
    keep_replaying,
    replay,
    settle_durably,
)
from hermes_proxy.metrics import Metrics
from policies.types import BudgetRule, TeamPolicy
from tests.conftest import build_config
from tests.fake_upstream import Script, make_upstream_app
from tests.proxy_harness import HELLO
from tests.test_ledger_contract import Backend, drop_backend, make_backend

D = Decimal
COST = D("0.000091")
TEAM = TeamPolicy(name="research", budgets=(BudgetRule(window="daily", limit_usd=D(5)),))


class FlakyLedger:
    """A real ledger whose ``settle`` fails on demand: the next ``fail_next`` calls, or every call while ``down``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fail_next = 0
        self.down = False
        self.settle_calls = 0

    async def settle(self, hold: Hold, record: RequestRecord) -> None:
        self.settle_calls += 1
        if self.down or self.fail_next > 0:
            self.fail_next = max(0, self.fail_next - 1)
            raise LedgerUnavailable("database is down (simulated)")
        await self.inner.settle(hold, record)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    made = await make_backend(request.param, tmp_path)
    try:
        yield made
    finally:
        await drop_backend(made)


@pytest.fixture
async def sqlite_backend(tmp_path: Path) -> AsyncIterator[Backend]:
    made = await make_backend("sqlite", tmp_path)
    try:
        yield made
    finally:
        await drop_backend(made)


async def spent(ledger: Any) -> tuple[list[RequestRecord], Decimal]:
    rows = await ledger.requests(limit=1000)
    return rows, sum((r.cost_usd or D(0) for r in rows), D(0))


async def holds(backend: Backend) -> int:
    return int((await backend.query("SELECT count(*) FROM holds"))[0][0])


def record_for(hold: Hold, cost: Decimal = COST, request_id: str = "req_outbox_1") -> RequestRecord:
    return RequestRecord(
        request_id=request_id, started_at=datetime.now(UTC), team=hold.team, key_id=None, key_name=None,
        model="hermes-4-405b", route="primary/Hermes-4-405B", reasoning=True, prompt_tokens=31, completion_tokens=20,
        reasoning_tokens=7, cost_usd=cost, estimated=False, status="ok", latency_ms=812.25, ttft_ms=95.5)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


# --- the file ------------------------------------------------------------------------------------------------------


def test_an_entry_round_trips_decimals_and_datetimes_exactly() -> None:
    zone = timezone(timedelta(hours=5, minutes=30))
    hold = Hold("hold_x", "research", "key_1", D("0.000123000"), datetime(2025, 3, 12, 15, 0, 0, 123456, tzinfo=UTC))
    record = RequestRecord(
        request_id="req_1", started_at=datetime(2025, 3, 12, 20, 1, 2, 999999, tzinfo=zone), team="research",
        key_id="key_1", key_name="ci", model="hermes-4-405b", route="r", reasoning=False, prompt_tokens=1,
        completion_tokens=2, reasoning_tokens=0, cost_usd=D("1E-9"), estimated=True, status="cancelled",
        latency_ms=0.1 + 0.2, ttft_ms=None)
    entry = decode_entry(json.loads(encode_entry(hold, record, datetime(2025, 3, 12, tzinfo=UTC))))
    assert entry.hold == hold and entry.record == record
    assert str(entry.hold.amount_usd) == "0.000123000" and str(entry.record.cost_usd) == "1E-9"
    assert entry.record.started_at.utcoffset() == timedelta(hours=5, minutes=30)
    assert entry.record.latency_ms == 0.1 + 0.2
    unpriced = replace(record, cost_usd=None)
    assert decode_entry(json.loads(encode_entry(hold, unpriced, datetime.now(UTC)))).record.cost_usd is None


async def test_a_torn_last_line_is_skipped_and_the_next_append_starts_a_fresh_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "outbox.jsonl"
    hold = Hold("hold_1", "research", None, D("0.01"), datetime.now(UTC) + timedelta(hours=1))
    outbox = Outbox(path)
    await outbox.append(hold, record_for(hold, request_id="req_a"))
    with path.open("ab") as f:  # a crash in the middle of the next write
        f.write(b'{"v":1,"queued_at":"2025-03-12T00:00:00+00:00","hold":{"id":"ho')
    with caplog.at_level(logging.WARNING, logger="hermes_proxy.ledger.outbox"):
        assert [e.record.request_id for e in await Outbox(path).entries()] == ["req_a"]
    assert "unreadable" in caplog.text
    restarted = Outbox(path)
    await restarted.append(hold, record_for(hold, request_id="req_b"))
    assert [e.record.request_id for e in await restarted.entries()] == ["req_a", "req_b"]
    assert restarted.waiting == 2  # the torn fragment is not counted
    assert await restarted.remove(["req_a"]) == 1  # the rewrite drops the fragment too
    assert path.read_text().count("\n") == 1 and "req_b" in path.read_text()
    assert await restarted.remove(["req_b"]) == 0 and not path.exists()


async def test_an_entry_a_newer_version_wrote_is_kept_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    path.write_text('{"v":2,"record":{"request_id":"req_future"}}\n')
    outbox = Outbox(path)
    assert await outbox.entries() == [] and outbox.waiting == 1
    assert await outbox.remove(["req_other"]) == 1
    assert "req_future" in path.read_text()


# --- settle_durably and replay against a real ledger ---------------------------------------------------------------


async def test_a_settle_that_fails_twice_is_retried_and_written_once(backend: Backend, tmp_path: Path) -> None:
    real = await backend.open()
    ledger = FlakyLedger(real)
    admission = await real.reserve(TEAM, None, D("0.5"))
    assert await holds(backend) == 1
    ledger.fail_next = 2
    sleeps = Sleeps()
    outbox = Outbox(tmp_path / "outbox.jsonl")
    record = record_for(admission.hold)
    assert await settle_durably(ledger, outbox, admission.hold, record, sleep=sleeps) is True
    assert ledger.settle_calls == 3 and sleeps.calls == [0.05, 0.25]
    rows, total = await spent(real)
    assert [r.request_id for r in rows] == [record.request_id] and total == record.cost_usd
    assert await holds(backend) == 0
    assert not outbox.path.exists() and outbox.waiting == 0


async def test_a_settle_that_always_fails_waits_in_the_outbox_and_a_restart_writes_it_exactly_once(
        backend: Backend, tmp_path: Path) -> None:
    path = tmp_path / "state" / "outbox.jsonl"
    real = await backend.open()
    ledger = FlakyLedger(real)
    ledger.down = True
    admission = await real.reserve(TEAM, None, D("0.5"))
    record = record_for(admission.hold, cost=D("0.000123457"))
    assert await settle_durably(ledger, Outbox(path), admission.hold, record, sleep=Sleeps()) is False
    assert ledger.settle_calls == 3
    assert (await spent(real))[0] == [] and await holds(backend) == 1  # still held, nothing spent
    assert len(path.read_text().splitlines()) == 1

    # the process "restarts": a new ledger and a new outbox on the same file; the database is back
    await real.close()
    fresh = await backend.open()
    outbox = Outbox(path)
    assert await replay(fresh, outbox) == 1
    rows, total = await spent(fresh)
    assert [r.request_id for r in rows] == [record.request_id] and total == D("0.000123457")
    assert rows[0].reasoning_tokens == 7 and rows[0].ttft_ms == 95.5
    assert await holds(backend) == 0
    assert not path.exists() and outbox.waiting == 0
    assert await replay(fresh, outbox) == 0  # a second replay has nothing to do
    assert (await spent(fresh))[1] == D("0.000123457")


async def test_a_replay_cut_short_after_writing_counts_the_settle_once(backend: Backend, tmp_path: Path) -> None:
    """The ledger wrote the settle but the process died before the outbox dropped it: the next replay settles it
    again, and the ledger counts it once (a settle is idempotent per request id)."""
    real = await backend.open()
    admission = await real.reserve(TEAM, None, D("0.5"))
    record = record_for(admission.hold)
    outbox = Outbox(tmp_path / "outbox.jsonl")
    await outbox.append(admission.hold, record)
    await real.settle(admission.hold, record)  # written, but still in the outbox
    assert await replay(real, outbox) == 1
    assert await replay(real, outbox) == 0
    rows, total = await spent(real)
    assert len(rows) == 1 and total == record.cost_usd
    status = await real.budget_status(TEAM)
    assert status[0].spent_usd == record.cost_usd


async def test_replay_stops_while_the_ledger_is_down_and_keeps_the_order(
        sqlite_backend: Backend, tmp_path: Path) -> None:
    real = await sqlite_backend.open()
    ledger = FlakyLedger(real)
    outbox = Outbox(tmp_path / "outbox.jsonl")
    admissions = [await real.reserve(TEAM, None, D("0.1")) for _ in range(3)]
    for index, admission in enumerate(admissions):
        await outbox.append(admission.hold, record_for(admission.hold, request_id=f"req_{index}"))
    ledger.down = True
    assert await replay(ledger, outbox) == 0
    assert ledger.settle_calls == 1  # stopped at the first: the store is down
    assert outbox.waiting == 3
    ledger.down = False
    ledger.fail_next = 0
    assert await replay(ledger, outbox) == 3
    assert [r.request_id for r in sorted((await spent(real))[0], key=lambda r: r.request_id)] == [
        "req_0", "req_1", "req_2"]
    assert await holds(sqlite_backend) == 0


async def test_an_append_during_a_replay_is_kept(sqlite_backend: Backend, tmp_path: Path) -> None:
    real = await sqlite_backend.open()
    outbox = Outbox(tmp_path / "outbox.jsonl")
    first = await real.reserve(TEAM, None, D("0.1"))
    second = await real.reserve(TEAM, None, D("0.1"))
    await outbox.append(first.hold, record_for(first.hold, request_id="req_first"))
    entered, release = asyncio.Event(), asyncio.Event()

    class Slow:
        async def settle(self, hold: Hold, record: RequestRecord) -> None:
            entered.set()
            await release.wait()
            await real.settle(hold, record)

    replaying = asyncio.create_task(replay(Slow(), outbox))
    await entered.wait()
    await outbox.append(second.hold, record_for(second.hold, request_id="req_second"))
    release.set()
    assert await replaying == 1
    assert [e.record.request_id for e in await outbox.entries()] == ["req_second"]
    assert await replay(real, outbox) == 1 and not outbox.path.exists()


async def test_a_record_the_ledger_refuses_is_not_retried_nor_kept(sqlite_backend: Backend, tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    real = await sqlite_backend.open()
    ledger = FlakyLedger(real)
    admission = await real.reserve(TEAM, None, D("0.1"))
    bad = replace(record_for(admission.hold), status="exploded")
    outbox = Outbox(tmp_path / "outbox.jsonl")
    with caplog.at_level(logging.ERROR, logger="hermes_proxy.ledger.outbox"):
        assert await settle_durably(ledger, outbox, admission.hold, bad, sleep=Sleeps()) is False
    assert ledger.settle_calls == 1 and not outbox.path.exists()
    assert "exploded" in caplog.text  # the record is in the log in full


async def test_without_an_outbox_a_failed_settle_is_logged_and_never_raises(
        sqlite_backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    real = await sqlite_backend.open()
    ledger = FlakyLedger(real)
    ledger.down = True
    admission = await real.reserve(TEAM, None, D("0.1"))
    with caplog.at_level(logging.ERROR, logger="hermes_proxy.ledger.outbox"):
        assert await settle_durably(ledger, None, admission.hold, record_for(admission.hold), attempts=2,
                                    sleep=Sleeps()) is False
    assert ledger.settle_calls == 2 and "no outbox" in caplog.text


async def test_a_cancelled_settle_is_kept_in_the_outbox(sqlite_backend: Backend, tmp_path: Path) -> None:
    real = await sqlite_backend.open()
    admission = await real.reserve(TEAM, None, D("0.1"))
    outbox = Outbox(tmp_path / "outbox.jsonl")

    class Hangs:
        async def settle(self, hold: Hold, record: RequestRecord) -> None:
            await asyncio.Event().wait()

    task = asyncio.create_task(settle_durably(Hangs(), outbox, admission.hold, record_for(admission.hold)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await replay(real, outbox) == 1
    assert len((await spent(real))[0]) == 1


async def test_the_replayer_idles_while_empty_and_writes_what_is_appended(
        sqlite_backend: Backend, tmp_path: Path) -> None:
    real = await sqlite_backend.open()
    ledger = FlakyLedger(real)
    seen: list[int] = []
    outbox = Outbox(tmp_path / "outbox.jsonl", on_waiting=seen.append)
    replayer = asyncio.create_task(keep_replaying(ledger, outbox, every_s=0.01))
    try:
        await asyncio.sleep(0.05)
        assert ledger.settle_calls == 0  # nothing to do: it waits for an append
        admission = await real.reserve(TEAM, None, D("0.1"))
        ledger.down = True
        await outbox.append(admission.hold, record_for(admission.hold))
        await asyncio.sleep(0.1)
        assert ledger.settle_calls >= 2 and outbox.waiting == 1  # tried again and again while down
        ledger.down = False
        for _ in range(200):
            if not outbox.waiting:
                break
            await asyncio.sleep(0.01)
        assert outbox.waiting == 0 and len((await spent(real))[0]) == 1
        assert seen[-1] == 0 and 1 in seen
    finally:
        replayer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await replayer


# --- config and metrics --------------------------------------------------------------------------------------------


def _ledger(section: dict[str, Any], source: Path | None = None) -> Any:
    data = {"upstreams": [{"name": "demo", "kind": "demo"}],
            "models": {"m": {"routes": [{"upstream": "demo", "model": "x"}]}}, "ledger": section}
    return parse_config(data, env={}, source=source).ledger


def test_the_outbox_config_keys(isolated_state: Path, tmp_path: Path) -> None:
    assert _ledger({"url": "memory://"}).outbox_path is None
    default = _ledger({"url": "sqlite:////srv/ledger.sqlite3"})
    assert default.outbox_path.parent == isolated_state / "data" / "hermes-proxy"
    assert default.outbox_path.name.startswith("outbox-") and default.outbox_path.suffix == ".jsonl"
    assert default.outbox_replay_s == 10
    other = _ledger({"url": "sqlite:////srv/other.sqlite3"})
    assert other.outbox_path != default.outbox_path  # one outbox per ledger
    one = _ledger({"url": "postgresql://hermes:old@db:5432/hermes"}).outbox_path
    assert _ledger({"url": "postgresql://hermes:new@db:5432/hermes"}).outbox_path == one  # a new password: same file
    relative = _ledger({"url": "sqlite:////srv/l.sqlite3", "outbox_path": "state/outbox.jsonl",
                        "outbox_replay_s": 2.5}, source=tmp_path / "hermes.toml")
    assert relative.outbox_path == tmp_path / "state" / "outbox.jsonl" and relative.outbox_replay_s == 2.5


@pytest.mark.parametrize(("section", "key"), [
    ({"url": "sqlite:////x.db", "outbox_replay_s": 0}, "ledger.outbox_replay_s"),
    ({"url": "sqlite:////x.db", "outbox_replay_s": "often"}, "ledger.outbox_replay_s"),
    ({"url": "sqlite:////x.db", "outbox_path": 3}, "ledger.outbox_path"),
    ({"url": "sqlite:////x.db", "outbox_path": ""}, "ledger.outbox_path"),
    ({"url": "memory://", "outbox_path": "/tmp/o.jsonl"}, "ledger.outbox_path"),
])
def test_outbox_config_errors_name_the_key(section: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        _ledger(section)
    assert key in str(info.value)


def test_an_outbox_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ledger\.outbox_path"):
        _ledger({"url": "sqlite:////x.db", "outbox_path": str(tmp_path)})


def test_the_waiting_gauge() -> None:
    metrics = Metrics()
    metrics.set_settles_waiting(3)
    assert b"hermes_settles_waiting 3.0" in metrics.render()[0]


# --- end to end: the real app, a fake upstream, the database down during the settle --------------------------------


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


async def _stream(client: Any) -> tuple[str, dict[str, Any]]:
    response = await client.post("/v1/chat/completions", json={
        "model": "hermes-4-405b", "messages": HELLO, "max_tokens": 100, "stream": True,
        "stream_options": {"include_usage": True}})
    assert response.status == 200, await response.text()
    events = [json.loads(line[6:]) for line in (await response.text()).splitlines()
              if line.startswith("data: {")]
    content = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))
    return content, events[-1]["usage"]


async def _until(condition: Any, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("recovery", ["replayer", "restart"])
async def test_a_streamed_request_is_billed_when_the_database_comes_back(
        backend: Backend, recovery: str, aiohttp_server: Any, aiohttp_client: Any, counter: Any) -> None:
    script = Script(dialect="vllm")
    upstream = await aiohttp_server(make_upstream_app(script))
    config = build_config(str(upstream.make_url("/v1")),
                          ledger={"url": backend.url, "outbox_replay_s": 0.05},
                          server={"auth": "none", "metrics": True},
                          teams={"default": {"budgets": [{"window": "daily", "limit_usd": 1.0}]}})
    assert config.ledger.outbox_path is not None
    real = await backend.open()
    ledger = FlakyLedger(real)
    ledger.down = True
    client = await aiohttp_client(create_app(config, ledger=ledger, counter=counter, sleep=_no_sleep))

    content, usage = await _stream(client)
    assert content == "Hello! How can I help you today?"  # the client gets its whole answer
    told = D(str(usage["cost"]))
    assert told > 0 and usage["prompt_tokens"] == 31 and usage["completion_tokens"] == 20
    await current_gateway(client.app).settled()
    assert ledger.settle_calls == 3
    assert (await spent(real))[0] == [] and await holds(backend) == 1  # nothing recorded yet; still held
    outbox = client.app[OUTBOX]
    assert outbox is not None and outbox.waiting == 1
    assert b"hermes_settles_waiting 1.0" in await (await client.get("/metrics")).read()

    if recovery == "restart":
        await client.close()  # the process stops with the database still down
        assert len(config.ledger.outbox_path.read_text().splitlines()) == 1
        ledger.down = False
        client = await aiohttp_client(create_app(config, ledger=ledger, counter=counter, sleep=_no_sleep))
    else:
        ledger.down = False  # the database is back: the replayer writes it on its next round

    async def recorded() -> bool:
        return len((await spent(real))[0]) == 1 and client.app[OUTBOX].waiting == 0

    await _until(recorded)
    rows, total = await spent(real)
    assert total == told  # the ledger has exactly what the client was told
    assert rows[0].prompt_tokens == 31 and rows[0].completion_tokens == 20
    assert await holds(backend) == 0
    assert not config.ledger.outbox_path.exists()
    assert b"hermes_settles_waiting 0.0" in await (await client.get("/metrics")).read()
    assert await replay(real, Outbox(config.ledger.outbox_path)) == 0  # exactly once
    assert (await spent(real))[1] == told
