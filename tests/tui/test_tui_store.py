"""The chat database: migrations, conversations, messages, search, settings; and the transcript built from it."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from fake_backend import FIXED_NOW

from tui.store import MIGRATIONS, Store, StoreError, default_db_path
from tui.transcript import chat_messages, to_markdown


def test_migrations_are_named_functions_recorded_once(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "chats.sqlite3"
    store = Store.open(path)
    names = [m.__name__ for m in MIGRATIONS]
    assert store.applied_migrations() == names
    assert store.migrate() == []
    store.close()
    reopened = Store.open(path)
    assert reopened.applied_migrations() == names
    reopened.close()


def test_default_path_is_in_the_user_data_dir(tmp_path: Path) -> None:
    assert default_db_path() == tmp_path / "xdg_data_home" / "hermes-proxy" / "chats.sqlite3"


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "chats.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the chat database"):
        Store.open(path)


def test_conversations_messages_and_costs(store: Store) -> None:
    conversation = store.create_conversation("First", model="hermes-4-405b", system_prompt="Be brief.")
    assert conversation.created_at == FIXED_NOW
    store.add_message(conversation.id, "user", "hi")
    row = store.add_message(conversation.id, "assistant", "", model="hermes-4-405b", reasoning_on=True,
                            status="streaming")
    assert row.status == "streaming" and row.reasoning_on
    done = store.finish_message(row.id, content="Hello!", reasoning="greet", status="complete", prompt_tokens=10,
                                completion_tokens=5, reasoning_tokens=2, cost_usd=Decimal("0.000025"))
    assert (done.content, done.reasoning, done.cost_usd, done.model) == ("Hello!", "greet", Decimal("0.000025"),
                                                                         "hermes-4-405b")
    second = store.create_conversation("Second")
    failed = store.add_message(second.id, "assistant", "", status="streaming")
    store.finish_message(failed.id, content="", reasoning="", status="error", error="refused", error_kind="budget")
    (summary_2, summary_1) = store.conversations()
    assert (summary_1.title, summary_1.message_count, summary_1.cost_usd) == ("First", 2, Decimal("0.000025"))
    assert summary_2.cost_usd == Decimal(0)
    assert store.conversation_cost(conversation.id) == Decimal("0.000025")

    store.rename_conversation(conversation.id, "Renamed")
    store.set_system_prompt(conversation.id, "Be long.")
    store.set_model(conversation.id, "hermes-4-70b")
    assert store.conversation(conversation.id).title == "Renamed"
    assert store.conversation(conversation.id).system_prompt == "Be long."
    assert store.conversation(conversation.id).model == "hermes-4-70b"

    store.delete_conversation(conversation.id)
    with pytest.raises(KeyError):
        store.conversation(conversation.id)
    assert store.messages(conversation.id) == []  # cascaded
    with pytest.raises(KeyError):
        store.rename_conversation(conversation.id, "gone")


def test_search_is_case_insensitive_and_literal(store: Store) -> None:
    a = store.create_conversation("Pasta")
    store.add_message(a.id, "user", "50% off_sale")
    store.create_conversation("Other")
    assert [c.title for c in store.conversations("pAsTa")] == ["Pasta"]
    assert [c.title for c in store.conversations("50%")] == ["Pasta"]
    assert [c.title for c in store.conversations("0% o")] == ["Pasta"]
    assert [c.title for c in store.conversations("off_s")] == ["Pasta"]
    assert [c.title for c in store.conversations("o%f")] == []
    assert len(store.conversations("  ")) == 2


def test_settings(store: Store) -> None:
    assert store.setting("show_reasoning") is None
    store.set_setting("show_reasoning", "never")
    store.set_setting("show_reasoning", "always")
    assert store.setting("show_reasoning") == "always"


def test_foreign_keys_are_enforced(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        store.add_message(999, "user", "orphan")


def test_chat_messages_leave_reasoning_and_failed_turns_out(store: Store) -> None:
    conversation = store.create_conversation("T", system_prompt="Sys")
    store.add_message(conversation.id, "user", "q1")
    a1 = store.add_message(conversation.id, "assistant", "", status="streaming")
    store.finish_message(a1.id, content="a1", reasoning="THOUGHT", status="complete")
    store.add_message(conversation.id, "user", "q2")
    a2 = store.add_message(conversation.id, "assistant", "", status="streaming")
    store.finish_message(a2.id, content="", reasoning="", status="error", error="refused", error_kind="budget")
    store.add_message(conversation.id, "user", "q3")
    messages = chat_messages("Sys", store.messages(conversation.id))
    assert messages == [{"role": "system", "content": "Sys"}, {"role": "user", "content": "q1"},
                        {"role": "assistant", "content": "a1"},  # q2 failed: neither it nor its answer
                        {"role": "user", "content": "q3"}]
    assert chat_messages("  ", [])[:1] == []


def test_markdown_export(store: Store) -> None:
    conversation = store.create_conversation("Export me", model="hermes-4-405b", system_prompt="Be brief.")
    store.add_message(conversation.id, "user", "Why?")
    a = store.add_message(conversation.id, "assistant", "", model="hermes-4-405b", status="streaming")
    store.finish_message(a.id, content="Because.", reasoning="Think.", status="stopped", prompt_tokens=3,
                         completion_tokens=4, reasoning_tokens=2, cost_usd=Decimal("0.0123"), estimated=True)
    b = store.add_message(conversation.id, "assistant", "", status="streaming")
    store.finish_message(b.id, content="", reasoning="", status="error", error="Budget refused", error_kind="budget")
    text = to_markdown(store.conversation(conversation.id), store.messages(conversation.id))
    assert text == (
        "# Export me\n\n- Model: hermes-4-405b\n- Started: 2025-08-26 09:30 UTC\n- Cost: $0.0123\n\n"
        "## System prompt\n\nBe brief.\n\n## You\n\nWhy?\n\n## Hermes (hermes-4-405b)\n\n"
        "<details><summary>Reasoning (2 tokens)</summary>\n\nThink.\n\n</details>\n\nBecause.\n\n"
        "*(stopped by the user)*\n\n<sub>in ~3 · out ~4 (~2 reasoning) · ~$0.0123</sub>\n\n"
        "## Hermes\n\n> **Error:** Budget refused\n"
    )


def test_removed_messages_keep_their_cost_unless_their_branch_was_copied(store: Store) -> None:
    conversation = store.create_conversation("t")
    store.add_message(conversation.id, "user", "q1")
    a1 = store.add_message(conversation.id, "assistant", "", status="streaming")
    store.finish_message(a1.id, content="a1", reasoning="", status="complete", cost_usd=Decimal("0.5"))
    q2 = store.add_message(conversation.id, "user", "q2")
    a2 = store.add_message(conversation.id, "assistant", "", status="streaming")
    store.finish_message(a2.id, content="a2", reasoning="", status="complete", cost_usd=Decimal("0.25"))
    copy = store.copy_conversation(conversation.id, "t (earlier branch)", billed_from=q2.id)
    assert [m.content for m in store.messages(copy.id)] == ["q1", "a1", "q2", "a2"]
    assert store.conversation_cost(copy.id) == Decimal("0.25")
    assert store.remove_messages(conversation.id, q2.id, keep_cost=False) == 2
    assert store.conversation_cost(conversation.id) == Decimal("0.5")
    assert store.remove_messages(conversation.id, a1.id) == 1
    assert [m.content for m in store.messages(conversation.id)] == ["q1"]
    assert store.conversation_cost(conversation.id) == Decimal("0.5")
    assert {c.title: c.cost_usd for c in store.conversations()} == {"t": Decimal("0.5"),
                                                                   "t (earlier branch)": Decimal("0.25")}


def test_recent_prompts_are_distinct_oldest_first(store: Store) -> None:
    one, two = store.create_conversation("1"), store.create_conversation("2")
    for conversation, text in ((one, "a"), (two, "b"), (one, "a"), (two, "c")):
        store.add_message(conversation.id, "user", text)
    store.add_message(one.id, "assistant", "not a prompt")
    assert store.recent_prompts() == ["b", "a", "c"]
    assert store.recent_prompts(limit=2) == ["a", "c"]


def test_conversation_settings_are_saved_and_copied_with_a_branch(tmp_path: Path) -> None:
    from tui.settings import ChatParams

    store = Store.open(tmp_path / "chats.sqlite3")
    assert "m005_conversation_settings" in store.applied_migrations()
    plain = store.create_conversation("plain")
    assert plain.params == ChatParams() and plain.reasoning is None
    chat = store.create_conversation("tuned", params=ChatParams(0.2, 100), reasoning=True)
    store.set_params(chat.id, ChatParams(None, 300))
    store.set_reasoning(chat.id, False)
    saved = store.conversation(chat.id)
    assert saved.params == ChatParams(None, 300) and saved.reasoning is False
    question = store.add_message(chat.id, "user", "hi")
    branch = store.copy_conversation(chat.id, "tuned (earlier branch)", billed_from=question.id)
    assert branch.params == ChatParams(None, 300) and branch.reasoning is False
    store.close()
