"""Snapshots of the main screens (fixed clock, no timing numbers). Update with ``pytest --snapshot-update``."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from fake_backend import BudgetInfo, FakeBackend, Script, fixed_clock, wait_for
from textual.pilot import Pilot

from tui.app import HermesChatApp
from tui.settings import ChatSettings
from tui.store import Store
from tui.widgets.prompt import PromptInput

SIZE = (120, 40)
ANSWER = (
    "Recursion is a function calling itself on a **smaller** input until a base case.\n\n",
    "```python\ndef factorial(n: int) -> int:\n    return 1 if n <= 1 else n * factorial(n - 1)\n```\n\n",
    "1. Find the base case.\n2. Shrink the problem.\n",
)


def seed(store: Store) -> None:
    older = store.create_conversation("Kubernetes networking basics", model="hermes-4-405b")
    store.add_message(older.id, "user", "How do pods talk to each other?")
    store.create_conversation("Pasta recipes for a weeknight")


def make(store: Store, fake: FakeBackend, **settings: object) -> HermesChatApp:
    return HermesChatApp(store=store, backend=fake, settings=ChatSettings(**settings),  # type: ignore[arg-type]
                         monotonic=fixed_clock)


def steady(app: HermesChatApp) -> None:
    """No blinking cursor: a screenshot taken a moment later must look the same."""
    app.chat_screen.query_one(PromptInput).cursor_blink = False


def sending(text: str, fake: FakeBackend) -> Callable[[Pilot[None]], object]:
    async def run_before(pilot: Pilot[None]) -> None:
        app: HermesChatApp = pilot.app  # type: ignore[assignment]
        screen = app.chat_screen
        await wait_for(pilot, lambda: screen.models)
        steady(app)
        await screen.send(text)
        await wait_for(pilot, lambda: fake.calls and screen.reply is None)
        await pilot.pause()
        app.clear_notifications()
        await pilot.pause()

    return run_before


async def _connected(pilot: Pilot[None]) -> None:
    app: HermesChatApp = pilot.app  # type: ignore[assignment]
    await wait_for(pilot, lambda: app.chat_screen.models)
    steady(app)
    app.clear_notifications()
    await pilot.pause()


def test_new_chat_screen(snap_compare: Callable[..., bool], store: Store) -> None:
    seed(store)
    app = make(store, FakeBackend())
    assert snap_compare(app, terminal_size=SIZE, run_before=_connected)


def test_answer_with_collapsed_reasoning_and_live_numbers(snap_compare: Callable[..., bool], store: Store) -> None:
    seed(store)
    warning = BudgetInfo(Decimal("0.42"), "team default is past 80% of its daily budget", "default")
    fake = FakeBackend(scripts=(Script(reasoning=("The user wants recursion explained.",), content=ANSWER,
                                       reasoning_tokens=9, prompt_tokens=31, cost_usd=Decimal("0.0003")),),
                       budget_info=warning)
    app = make(store, fake, reasoning=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=sending("Explain recursion with an example", fake))


def test_budget_refused(snap_compare: Callable[..., bool], store: Store) -> None:
    fake = FakeBackend(scripts=(Script(fail="budget", fail_message="team 'default' is over its daily budget "
                                                                  "($5.00 of $5.00 spent)"),),
                       budget_info=BudgetInfo(Decimal("0"), "over budget", "default"))
    app = make(store, fake)
    assert snap_compare(app, terminal_size=SIZE, run_before=sending("One more question", fake))


def _simulated_chat() -> FakeBackend:
    from tui.backend import ModelInfo

    demo = ModelInfo("hermes-4-405b", 131072, Decimal("1.0"), Decimal("3.0"), simulated=True,
                     upstream="demo (simulated)")
    return FakeBackend(scripts=(Script(reasoning=("The user wants recursion explained.",), content=ANSWER[:1],
                                       reasoning_tokens=9, prompt_tokens=1234, cost_usd=Decimal("0.0123")),),
                       budget_info=BudgetInfo(Decimal("1234.56"), "past 80% of the daily budget", "default"),
                       simulated=True, model_list=(demo,), label="in-process · demo (SIMULATED) · team default")


def test_80x24(snap_compare: Callable[..., bool], store: Store) -> None:
    fake = _simulated_chat()
    app = make(store, fake, reasoning=True)
    assert snap_compare(app, terminal_size=(80, 24), run_before=sending("Explain recursion with an example", fake))


def test_60x20(snap_compare: Callable[..., bool], store: Store) -> None:
    fake = _simulated_chat()
    app = make(store, fake, reasoning=True)
    assert snap_compare(app, terminal_size=(60, 20), run_before=sending("Explain recursion with an example", fake))
