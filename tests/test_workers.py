"""``hermes-proxy serve --workers N``: several processes on one port, sharing the ledger, with one aggregated
``/metrics``, signals reaching every worker, and a worker that dies started again."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hermes_proxy.cli import main
from tests.serve_harness import DEMO_CONFIG, Served

BODY = {"model": "hermes-4-405b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
SHARED_LEDGER = DEMO_CONFIG.replace('url = "memory://"', 'url = "sqlite:///{ledger}"') + """
[teams.default]
budgets = [{{ window = "daily", limit_usd = 100 }}]
"""


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc: a worker started again comes from another thread)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def gone(pids: list[int]) -> bool:
    return all(not Path(f"/proc/{pid}").exists() for pid in pids)


async def start_two(tmp_path: Path, serve: Any) -> tuple[Served, int]:
    (tmp_path / "shared.toml").write_text(SHARED_LEDGER.format(server="", ledger=tmp_path / "ledger.sqlite3"))
    served: Served = await serve("--config", "shared.toml", "--port", "0", "--workers", "2")
    port = int((await served.line_matching(r"listening on http://127\.0\.0\.1:(\d+)/v1 .*2 workers")).group(1))
    return served, port


async def post_many(port: int, count: int) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        async def one() -> dict[str, Any]:
            async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY) as response:
                assert response.status == 200
                return {"cost": Decimal(response.headers["x-hermes-cost-usd"])}

        return await asyncio.gather(*(one() for _ in range(count)))


async def metric_total(port: int, name: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}{{[^}}]*}} (\S+)$", text, re.M))


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads worker processes from /proc")
@pytest.mark.slow
async def test_two_workers_share_one_port_ledger_and_metrics_take_signals_and_come_back(tmp_path: Path,
                                                                                        serve: Any) -> None:
    served, port = await start_two(tmp_path, serve)
    first = children(served.process.pid)
    assert len(first) == 2
    answers = await post_many(port, 40)
    # whichever worker answers the scrape, it counts every worker's requests (each is counted at its settle, just
    # after its answer went out)
    for _ in range(100):
        if await metric_total(port, "hermes_requests_total") == 40:
            break
        await asyncio.sleep(0.05)
    for _ in range(4):
        assert await metric_total(port, "hermes_requests_total") == 40
    assert sum(line.count("listening on") for line in served.stdout) == 1
    # SIGHUP reaches every worker
    served.process.send_signal(signal.SIGHUP)
    for _ in range(100):
        if served.stderr.count("config reloaded") == 2:
            break
        await asyncio.sleep(0.1)
    assert served.stderr.count("config reloaded") == 2
    # a worker that dies is started again, and the port keeps serving
    os.kill(first[0], signal.SIGKILL)
    for _ in range(100):
        now = children(served.process.pid)
        if len(now) == 2 and first[0] not in now:
            break
        await asyncio.sleep(0.1)
    now = children(served.process.pid)
    assert len(now) == 2 and first[0] not in now and first[1] in now
    assert "worker 0" in served.stderr and "starting it again" in served.stderr
    await asyncio.sleep(1)  # the new worker binds the port
    answers += await post_many(port, 10)
    # SIGTERM stops them all, each after its running requests
    code = await served.stop()
    assert code == 0, (code, [line for line in served.stderr.splitlines() if not line.startswith("{")][-20:])
    assert gone(now)
    # every worker billed into the one ledger, exactly what the clients were told
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
        rows, nanos = db.execute("SELECT COUNT(*), SUM(cost_usd) FROM requests").fetchone()
        (total,) = db.execute("SELECT spent_usd FROM team_totals WHERE team = 'default'").fetchone()
    assert rows == 50 and Decimal(nanos) / 10**9 == sum(a["cost"] for a in answers) and total == nanos


@pytest.mark.parametrize(("extra", "ledger", "wanted"), [
    ("", "memory://", "workers need one they share"),
    ("[teams.default]\nrate_limits = { requests_per_minute = 10 }\n", "sqlite:///x.sqlite3", "[rate_limits] url"),
])
def test_workers_are_refused_where_they_would_not_share_what_must_be_shared(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, ledger: str, wanted: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(DEMO_CONFIG.format(server="").replace("memory://", ledger) + extra)
    assert main(["serve", "--config", str(path), "--port", "0", "--workers", "2"]) == 2
    assert wanted in capsys.readouterr().err


def test_auto_is_the_default_and_one_worker_where_several_would_not_share_the_ledger(tmp_path: Path) -> None:
    from hermes_proxy.commands.workers import WorkerCount, workers_wanted
    from hermes_proxy.config import load_config

    path = tmp_path / "c.toml"
    path.write_text(DEMO_CONFIG.format(server=""))  # a memory:// ledger
    assert load_config(str(path)).server.workers == "auto"
    cores = len(os.sched_getaffinity(0))
    one = workers_wanted(None, load_config(str(path)))
    assert one.count == 1 and (cores == 1 or "the ledger is in memory" in (one.why_one or ""))
    path.write_text(DEMO_CONFIG.format(server="").replace("memory://", f"sqlite:///{tmp_path / 'l.sqlite3'}"))
    assert workers_wanted(None, load_config(str(path))) == WorkerCount(cores, "auto")
    path.write_text(DEMO_CONFIG.format(server="workers = 1").replace("memory://", f"sqlite:///{tmp_path / 'l.sqlite3'}"))
    assert workers_wanted(None, load_config(str(path))) == WorkerCount(1)


@pytest.mark.parametrize("value", ["0", "many", "1000"])
def test_the_workers_count_is_validated(tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(DEMO_CONFIG.format(server=""))
    assert main(["serve", "--config", str(path), "--port", "0", "--workers", value]) == 2
    assert "--workers must be" in capsys.readouterr().err


def test_check_config_and_the_start_up_report_say_how_many_workers_and_why(tmp_path: Path) -> None:
    from hermes_proxy.commands.check import workers_line
    from hermes_proxy.config import load_config

    cores = len(os.sched_getaffinity(0))
    path = tmp_path / "c.toml"
    sqlite = f"sqlite:///{tmp_path / 'l.sqlite3'}"
    path.write_text(DEMO_CONFIG.format(server="").replace("memory://", sqlite))
    assert workers_line(load_config(str(path))) == f'{cores} ("auto": one per core)'
    assert workers_line(load_config(str(path)), "3") == "3 (--workers)"
    path.write_text(DEMO_CONFIG.format(server="workers = 2").replace("memory://", sqlite))
    assert workers_line(load_config(str(path))) == "2 (server.workers)"
    path.write_text(DEMO_CONFIG.format(server=""))  # memory://
    line = workers_line(load_config(str(path)))
    assert line == '1 ("auto": one per core)' if cores == 1 else line.startswith('1 ("auto", but the ledger is in memory')


@pytest.mark.slow
async def test_two_workers_share_rate_limits_in_a_sqlite_file(tmp_path: Path, serve: Any) -> None:
    config = SHARED_LEDGER.format(server="", ledger=tmp_path / "ledger.sqlite3") + (
        "rate_limits = { requests_per_minute = 7 }\n"
        f'[rate_limits]\nurl = "sqlite:///{tmp_path / "rate-limits.sqlite3"}"\n')
    (tmp_path / "limited.toml").write_text(config)
    served: Served = await serve("--config", "limited.toml", "--port", "0")  # workers = "auto"
    line = await served.line_matching(r"listening on http://127\.0\.0\.1:(\d+)/v1 (.*)")
    port, cores = int(line.group(1)), len(os.sched_getaffinity(0))
    assert (f"{cores} workers" in line.group(2)) == (cores > 1)
    # a new connection per request: the kernel spreads them over the workers, which count in one file
    statuses = []
    for _ in range(12):
        async with aiohttp.ClientSession() as session, session.post(
                f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY) as response:
            statuses.append(response.status)
            if response.status == 429:
                assert int(response.headers["retry-after"]) >= 1
    assert statuses.count(200) == 7 and statuses.count(429) == 5
