"""Shared by the dashboard tests: a config file with a SQLite ledger, billed requests, and signing in as a browser
does (read the form's CSRF token, post it with the pre-login cookie)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from hermes_proxy.config import Config
from hermes_proxy.ledger.base import Ledger, RequestRecord

ADMIN = "admin-secret-for-dashboard-tests"
Client = TestClient  # type: ignore[type-arg]


def write_config(tmp_path: Path, *, dashboard: bool = True, auth: str = "keys") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""
[server]
auth = "{auth}"
dashboard = {"true" if dashboard else "false"}

[[upstreams]]
name = "demo"
kind = "demo"
first_token_s = 0
tokens_per_s = 0

[models.hermes-4-405b]
routes = [{{ upstream = "demo", model = "Hermes-4-405B", input_usd_per_mtok = 1.0, output_usd_per_mtok = 3.0 }}]

[teams.research]
timezone = "Europe/Berlin"
budgets = [{{ window = "daily", limit_usd = 10, soft_limit_usd = 8 }}, {{ window = "monthly", limit_usd = 100 }}]

[teams.ops]

[ledger]
url = "sqlite:///{tmp_path / 'ledger.sqlite3'}"
""")
    return path


async def bill(ledger: Ledger, config: Config, team: str, cost: str, *, key_id: str | None = None,
               key_name: str | None = None, model: str = "hermes-4-405b", reasoning: bool = False,
               estimated: bool = False, learned_price: bool = False, started_at: datetime | None = None) -> str:
    policy = config.team(team)
    assert policy is not None
    admission = await ledger.reserve(policy, None, Decimal("0.01"))
    request_id = f"req_{uuid.uuid4().hex}"
    await ledger.settle(admission.hold, RequestRecord(
        request_id=request_id, started_at=started_at or datetime.now(UTC), team=team, key_id=key_id,
        key_name=key_name, model=model, route="demo:Hermes-4-405B", reasoning=reasoning, prompt_tokens=100,
        completion_tokens=200, reasoning_tokens=50 if reasoning else 0, cost_usd=Decimal(cost), estimated=estimated,
        status="ok", latency_ms=12.0, ttft_ms=3.0, learned_price=learned_price))
    return request_id


def form_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


async def login(client: Client, key: str, **headers: str) -> Any:
    page = await client.get("/ui/login")
    assert page.status == 200
    return await client.post("/ui/login", data={"key": key, "csrf": form_token(await page.text())},
                             allow_redirects=False, headers=headers)
