"""A saved conversation with tool calls: the store keeps them (a migration from a database without them), the chat
shows them as compact ``→ call`` / ``← result`` blocks, and the markdown export reads well."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fake_backend import FIXED_NOW, AppFactory, FakeBackend, wait_for
from textual.widgets import OptionList

from tui.app import HermesChatApp
from tui.screens.chat import ChatScreen
from tui.store import MIGRATIONS, Store
from tui.tool_calls import ToolCallBlock, answer_parts, call_line, result_line
from tui.transcript import to_markdown
from tui.widgets.messages import AssistantMessage

CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
LONG_RESULT = '{"temp_c": 18, "sky": "clear", "forecast": "' + "sunny " * 40 + '"}'


def _saved(store: Store) -> int:
    conversation = store.create_conversation("Weather", model="hermes-4-70b")
    store.add_message(conversation.id, "user", "Weather in Oslo?")
    store.add_message(conversation.id, "assistant", "Let me check.", model="hermes-4-70b", tool_calls=[CALL])
    store.add_message(conversation.id, "tool", LONG_RESULT, tool_call_id="call_1")
    raw = 'Tomorrow too:\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo", "days": 2}}\n</tool_call>'
    store.add_message(conversation.id, "assistant", raw, model="hermes-4-70b")
    store.add_message(conversation.id, "tool", '{"name": "get_weather", "content": {"temp_c": 20}}')
    store.add_message(conversation.id, "assistant", "18 °C and clear, 20 °C tomorrow.", model="hermes-4-70b")
    return conversation.id


def test_the_store_keeps_tool_calls_and_tool_messages(store: Store) -> None:
    conversation_id = _saved(store)
    messages = store.messages(conversation_id)
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant", "tool", "assistant"]
    assert messages[1].tool_calls == (CALL,) and messages[1].tool_call_id is None
    assert messages[2].tool_call_id == "call_1" and messages[2].tool_calls == ()
    assert messages[0].tool_calls == ()


def test_the_migration_keeps_a_database_written_without_tool_columns(tmp_path: Path) -> None:
    path = tmp_path / "chats.sqlite3"
    old = [m for m in MIGRATIONS if m.__name__ != "m004_tool_messages"]
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for migration in old:
        migration(db)
        db.execute("INSERT INTO _migrations VALUES (?, ?)", (migration.__name__, FIXED_NOW.isoformat()))
    db.execute("INSERT INTO conversations (id, title, created_at, updated_at) VALUES (1, 't', ?, ?)",
               (FIXED_NOW.isoformat(), FIXED_NOW.isoformat()))
    db.execute("INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES (7, 1, 'user', 'hi', ?)",
               (FIXED_NOW.isoformat(),))
    db.close()
    store = Store.open(path, now=lambda: FIXED_NOW)
    assert store.applied_migrations()[-1] == "m004_tool_messages"
    [kept] = store.messages(1)
    assert (kept.id, kept.role, kept.content, kept.tool_calls) == (7, "user", "hi", ())
    store.add_message(1, "tool", "{}", tool_call_id="x")
    store.delete_conversation(1)  # the foreign key still cascades
    assert store.messages(1) == []
    store.close()


def test_lines_and_raw_hermes_calls() -> None:
    assert call_line(CALL) == '→ get_weather(city="Oslo")'
    line = result_line("get_weather", LONG_RESULT)
    assert line.startswith('← get_weather: {"temp_c": 18') and line.endswith("…") and len(line) < 140
    parts = answer_parts('Sure.\n<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>', None)
    assert parts.text == "Sure." and [call_line(c) for c in parts.calls] == ["→ f(a=1)"]
    assert answer_parts("a <tool_call> that is not one", None).calls == ()


def test_markdown_export_shows_calls_and_results(store: Store) -> None:
    conversation_id = _saved(store)
    text = to_markdown(store.conversation(conversation_id), store.messages(conversation_id))
    assert 'Let me check.\n\n- `→ get_weather(city="Oslo")`\n' in text
    assert "**← get_weather**\n\n```json\n" + LONG_RESULT + "\n```" in text   # whole in the export
    assert "<tool_call>" not in text
    assert 'Tomorrow too:\n\n- `→ get_weather(city="Oslo", days=2)`' in text


async def test_a_loaded_conversation_shows_tool_blocks(make_app: AppFactory, store: Store) -> None:
    conversation_id = _saved(store)
    app: HermesChatApp = make_app(FakeBackend())
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        await wait_for(pilot, lambda: screen.query_one("#conversation-list", OptionList).option_count == 1)
        await screen.open_conversation(conversation_id)
        await pilot.pause()
        blocks = list(screen.query(ToolCallBlock))
        assert [b.lines for b in blocks] == [
            ('→ get_weather(city="Oslo")',),
            (result_line("get_weather", LONG_RESULT),),
            ('→ get_weather(city="Oslo", days=2)',),
            ('← get_weather: {"name": "get_weather", "content": {"temp_c": 20}}',),
        ]
        assert [b.has_class("-result") for b in blocks] == [False, True, False, True]
        answers = [view.content for view in screen.query(AssistantMessage)]
        assert answers == ["Let me check.", "Tomorrow too:", "18 °C and clear, 20 °C tomorrow."]
        assert all(block.region.height >= 1 for block in blocks)
