"""Per-conversation settings (F9): temperature, max tokens and reasoning, saved with the chat and sent with each
request; the theme remembered across starts."""

from __future__ import annotations

from fake_backend import AppFactory, FakeBackend, wait_for
from test_tui_app import SIZE, chat, connected, idle, notifications, send
from textual.widgets import Input, Switch

from tui.app import HermesChatApp
from tui.screens.chat_settings import ChatSettingsScreen
from tui.settings import ChatParams
from tui.store import Store
from tui.widgets.status import ChatParamsButton, ReasoningSwitch


def shown_params(app: HermesChatApp) -> str | None:
    """What the controls row says about the chat's settings; ``None`` when nothing is shown."""
    button = chat(app).query_one(ChatParamsButton)
    return str(button.content) if button.display else None


async def test_settings_are_saved_with_the_chat_sent_and_shown(make_app: AppFactory, store: Store) -> None:
    fake = FakeBackend()
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: connected(app))
        assert shown_params(app) is None  # nothing set: nothing shown
        await pilot.press("f9")
        assert isinstance(app.screen, ChatSettingsScreen)
        app.screen.query_one("#setting-temperature", Input).value = "0.3"
        app.screen.query_one("#setting-max-tokens", Input).value = "256"
        app.screen.query_one("#setting-reasoning", Switch).value = True
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert not isinstance(app.screen, ChatSettingsScreen)
        assert shown_params(app) == "temp 0.3 · max 256"
        assert chat(app).query_one(ReasoningSwitch).on
        await send(pilot, "first chat")
        await wait_for(pilot, lambda: fake.calls and idle(app))
        call = fake.calls[0]
        assert (call.temperature, call.max_tokens, call.reasoning) == (0.3, 256, True)
        first = chat(app).conversation
        assert first is not None
        saved = store.conversation(first.id)
        assert saved.params == ChatParams(0.3, 256) and saved.reasoning is True

        await pilot.press("ctrl+n")
        await pilot.pause()
        assert shown_params(app) is None
        await pilot.press("ctrl+r")  # this chat without reasoning
        await send(pilot, "second chat")
        await wait_for(pilot, lambda: len(fake.calls) == 2 and idle(app))
        assert (fake.calls[1].temperature, fake.calls[1].max_tokens, fake.calls[1].reasoning) == (None, None, False)

        await chat(app).open_conversation(first.id)
        await pilot.pause()
        assert shown_params(app) == "temp 0.3 · max 256"
        assert chat(app).reasoning_on  # the first chat's switch comes back with it
        await send(pilot, "again")
        await wait_for(pilot, lambda: len(fake.calls) == 3 and idle(app))
        assert (fake.calls[2].temperature, fake.calls[2].max_tokens, fake.calls[2].reasoning) == (0.3, 256, True)


async def test_a_bad_value_is_said_in_the_dialog(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: connected(app))
        await pilot.press("f9")
        dialog = app.screen
        assert isinstance(dialog, ChatSettingsScreen)
        dialog.query_one("#setting-temperature", Input).value = "3"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is dialog
        assert "Temperature must be from 0 to 2" in str(dialog.query_one("#setting-error").content)
        dialog.query_one("#setting-temperature", Input).value = ""
        dialog.query_one("#setting-max-tokens", Input).value = "0"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "at least 1" in str(dialog.query_one("#setting-error").content)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is chat(app) and shown_params(app) is None


async def test_settings_from_the_command_palette_and_the_compact_status(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(60, 20)) as pilot:
        await wait_for(pilot, lambda: connected(app))
        commands = [c.title for c in app.get_system_commands(chat(app))]
        assert "Chat settings" in commands
        chat(app).set_chat_settings(ChatParams(0.7, 1024), reasoning=False)
        await pilot.pause()
        assert shown_params(app) == "t0.7 ≤1,024"
        assert "Chat settings: temp" not in " ".join(notifications(app))


async def test_the_theme_is_remembered(store: Store) -> None:
    app = HermesChatApp(store=store, backend=FakeBackend())
    async with app.run_test(size=SIZE) as pilot:
        app.theme = "nord"
        await pilot.pause()
    again = HermesChatApp(store=store, backend=FakeBackend())
    async with again.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert again.theme == "nord"


async def test_the_settings_dialog_fits_80x24(make_app: AppFactory) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: connected(app))
        await pilot.press("f9")
        await pilot.pause()
        screen = app.screen.region
        for selector in ("#setting-temperature", "#setting-max-tokens", "#setting-reasoning", "#dialog-ok",
                         "#dialog-cancel"):
            widget = app.screen.query_one(selector)
            assert widget.region.height and screen.contains_region(widget.region), selector
        assert str(app.screen.query_one("#setting-reasoning-state").content) == "OFF"
        await pilot.press("tab", "tab", "space")
        assert str(app.screen.query_one("#setting-reasoning-state").content) == "ON"
