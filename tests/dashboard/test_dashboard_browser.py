"""The dashboard in a real headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright with
``executable_path``; never a downloaded browser): sign in, read a team's budget and chart, watch a live figure
change, create and revoke a key, download a CSV. Skipped when Chromium or the playwright package is absent.

``HERMES_UPDATE_SCREENSHOTS=1`` also writes the screenshots to docs/screenshots/ (for the README)."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from dashboard_support import ADMIN, bill, write_config

from hermes_proxy.app import create_app
from hermes_proxy.config import Config, load_config
from hermes_proxy.ledger import open_ledger
from hermes_proxy.ledger.base import HoldInfo, Ledger
from hermes_proxy.tokens import TokenCounter

CHROMIUM = Path("/usr/bin/chromium")
playwright_api = pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (/usr/bin/chromium)")
#: as this closed network needs: no background connections to Google's hosts
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
async def ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Config, Ledger]]:
    monkeypatch.setenv("HERMES_ADMIN_KEY", ADMIN)
    config = load_config(write_config(tmp_path))
    made = open_ledger(config.ledger)
    await made.start()
    yield config, made
    await made.close()


async def seed(config: Config, ledger: Ledger) -> None:
    """A month of traffic for two teams, a few keys and models, some estimated and learned-price requests."""
    rng = random.Random(18)
    keys = {team: [(await ledger.create_key(team, name))[1] for name in names]
            for team, names in (("research", ("notebooks", "eval-ci", "alice")), ("ops", ("pager-bot",)))}
    now = datetime.now(UTC)
    bills = []
    for hours_ago in [*range(0, 24), *range(24, 30 * 24, 5)]:
        for team in ("research", "ops"):
            key = rng.choice(keys[team])
            cost = Decimal(rng.randint(5, 400)) / 1000
            bills.append(bill(ledger, config, team, str(cost), key_id=key.id, key_name=key.name,
                              model=rng.choice(("hermes-4-405b", "hermes-4-405b", "hermes-4-70b")),
                              reasoning=rng.random() < 0.4, estimated=rng.random() < 0.05,
                              learned_price=rng.random() < 0.03,
                              started_at=now - timedelta(hours=hours_ago, minutes=rng.randint(0, 59))))
    await asyncio.gather(*bills)


async def shot(page: Any, tmp_path: Path, name: str, **options: Any) -> None:
    path = tmp_path / f"{name}.png"
    await page.screenshot(path=str(path), **options)
    assert path.stat().st_size > 1000
    if os.environ.get("HERMES_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SCREENSHOTS / path.name)


@pytest.mark.slow
async def test_dashboard_in_headless_chromium(aiohttp_server: Any, ledger: tuple[Config, Ledger],
                                              tmp_path: Path, counter: TokenCounter) -> None:
    config, store = ledger
    await seed(config, store)
    server = await aiohttp_server(create_app(config, ledger=store, counter=counter), host="127.0.0.1")
    base = f"http://127.0.0.1:{server.port}"
    problems: list[str] = []
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        try:
            context = await browser.new_context(accept_downloads=True, viewport={"width": 1200, "height": 900},
                                                device_scale_factor=1)
            page = await context.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            await context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base)
                                else problems.append("external: " + route.request.url) or route.abort())

            # sign in: the key goes in a POST body, never the address bar or storage
            await page.goto(base + "/ui")
            assert page.url == base + "/ui/login"
            await page.fill("#key", ADMIN)
            await shot(page, tmp_path, "dashboard-login")
            await page.click("#sign-in")
            await page.wait_for_url(base + "/ui")
            assert ADMIN not in page.url
            assert await page.evaluate("() => JSON.stringify(localStorage) + JSON.stringify(sessionStorage)") == "{}{}"
            assert await page.evaluate("() => document.cookie") == ""  # HttpOnly: invisible to scripts
            assert await page.locator("#teams").get_by_text("research").count() == 1
            await shot(page, tmp_path, "dashboard-overview", full_page=True)

            # a team's budget and chart
            await page.click("#teams >> text=research")
            await page.wait_for_selector("#budgets")
            row = page.locator("#budgets tbody tr").first
            assert "daily" in await row.inner_text() and "$10" in await row.inner_text()
            assert await page.locator("#chart-daily rect.bar").count() == 31
            assert await page.locator("#chart-hourly rect.bar").count() == 48
            assert await page.locator("#by-model").get_by_text("hermes-4-70b").count() == 1

            # live: a request starts elsewhere; the page shows it without reloading
            policy = config.team("research")
            assert policy is not None
            assert await page.inner_text("#in-flight") == "0"
            admission = await store.reserve(policy, None, Decimal("0.42"), info=HoldInfo(
                "req_browser", "notebooks", "hermes-4-405b", "demo", True, datetime.now(UTC)))
            await page.wait_for_function("() => document.querySelector('#in-flight').textContent === '1'",
                                         timeout=12_000)
            await shot(page, tmp_path, "dashboard-team", full_page=True,
                       clip={"x": 0, "y": 0, "width": 1200, "height": 1500})
            await store.release(admission.hold)

            # a CSV download: the spend-by-model table
            async with page.expect_download() as info:
                await page.click('a.export[data-table="spend-model"][data-format="csv"]')
            download = await info.value
            text = await asyncio.to_thread(Path(await download.path()).read_text)
            assert download.suggested_filename == "hermes-spend-model-research.csv"
            assert text.splitlines()[0].startswith("model,requests,prompt_tokens") and "hermes-4-70b" in text

            # keys: create one (shown once), then revoke it
            await page.goto(base + "/ui/keys?team=research")
            await page.select_option("#new-team", "research")
            await page.fill("#new-name", "browser-made")
            await page.fill("#new-limit", "25")
            await page.click("#create-key")
            key_text = (await page.inner_text("#new-key")).strip()
            assert key_text.startswith("hp-") and await store.verify_key(key_text) is not None
            await shot(page, tmp_path, "dashboard-keys", full_page=True, mask=[page.locator("#new-key")])
            await page.click('button[data-key="browser-made"]')
            await page.wait_for_selector("#revoked")
            assert await store.verify_key(key_text) is None
            assert key_text not in await page.content()
        finally:
            await browser.close()
    assert not [m for m in problems if "Content Security Policy" in m or "external" in m], problems
    assert not problems, problems
