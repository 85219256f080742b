"""Saved conversations: SQLite in the user's data dir (``chats.sqlite3``), path injectable for tests.

The schema grows through migrations, each a named function recorded in ``_migrations`` once applied (as in
simonw/llm). Writes are a few rows per message on a local file, so the store is plain synchronous ``sqlite3``.

An assistant message is written when its reply starts (status ``streaming``) and updated when it ends (``complete``,
``stopped`` or ``error``), so a crash mid-reply leaves a visible, interrupted message instead of nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import platformdirs

from tui.settings import NO_PARAMS, ChatParams

Role = Literal["user", "assistant", "tool"]
MessageStatus = Literal["complete", "streaming", "stopped", "error"]
Clock = Callable[[], datetime]

DB_FILENAME = "chats.sqlite3"


def default_db_path() -> Path:
    return Path(platformdirs.user_data_dir("hermes-proxy", appauthor=False)) / DB_FILENAME


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --- migrations: append only; each runs once, in order, inside a transaction ------------------------------------------


def m001_conversations_and_messages(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            title TEXT NOT NULL,
            model TEXT,
            system_prompt TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content TEXT NOT NULL DEFAULT '',
            reasoning TEXT NOT NULL DEFAULT '',
            model TEXT,
            reasoning_on INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'complete',
            error TEXT,
            error_kind TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            reasoning_tokens INTEGER,
            cost_usd TEXT,
            estimated INTEGER NOT NULL DEFAULT 0,
            finish_reason TEXT,
            created_at TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX messages_by_conversation ON messages (conversation_id, id)")
    db.execute("CREATE INDEX conversations_by_update ON conversations (updated_at)")


def m002_settings(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


def m003_replaced_cost(db: sqlite3.Connection) -> None:
    """What answers replaced by a regenerate, a retry or an edit had cost: still part of the conversation's cost."""
    db.execute("ALTER TABLE conversations ADD COLUMN replaced_cost_usd TEXT NOT NULL DEFAULT '0'")


def m004_tool_messages(db: sqlite3.Connection) -> None:
    """Tool calls and their results, as a conversation with tools holds them: an assistant message's ``tool_calls``
    (JSON, OpenAI's list) and ``tool`` messages answering one call (``tool_call_id``). SQLite cannot change a CHECK
    constraint in place, so the table is rebuilt (rows and ids kept)."""
    db.execute(
        """
        CREATE TABLE messages_new (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'tool')),
            content TEXT NOT NULL DEFAULT '',
            reasoning TEXT NOT NULL DEFAULT '',
            model TEXT,
            reasoning_on INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'complete',
            error TEXT,
            error_kind TEXT,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            reasoning_tokens INTEGER,
            cost_usd TEXT,
            estimated INTEGER NOT NULL DEFAULT 0,
            finish_reason TEXT,
            created_at TEXT NOT NULL,
            tool_calls TEXT,
            tool_call_id TEXT
        )
        """
    )
    columns = ("id, conversation_id, role, content, reasoning, model, reasoning_on, status, error, error_kind, "
               "prompt_tokens, completion_tokens, reasoning_tokens, cost_usd, estimated, finish_reason, created_at")
    db.execute(f"INSERT INTO messages_new ({columns}) SELECT {columns} FROM messages")
    db.execute("DROP TABLE messages")
    db.execute("ALTER TABLE messages_new RENAME TO messages")
    db.execute("CREATE INDEX messages_by_conversation ON messages (conversation_id, id)")


def m005_conversation_settings(db: sqlite3.Connection) -> None:
    """Per-conversation settings sent with each request: temperature, max tokens, the reasoning switch (NULL: unset,
    the default)."""
    for column in ("temperature REAL", "max_tokens INTEGER", "reasoning INTEGER"):
        db.execute(f"ALTER TABLE conversations ADD COLUMN {column}")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    m001_conversations_and_messages, m002_settings, m003_replaced_cost, m004_tool_messages,
    m005_conversation_settings)


# --- records ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Conversation:
    id: int
    title: str
    model: str | None
    system_prompt: str
    created_at: datetime
    updated_at: datetime
    params: ChatParams = NO_PARAMS  # temperature and max tokens sent with each request
    reasoning: bool | None = None  # the reasoning switch as last set in this conversation


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    id: int
    title: str
    model: str | None
    updated_at: datetime
    message_count: int
    cost_usd: Decimal


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    conversation_id: int
    role: Role
    content: str
    reasoning: str
    model: str | None
    reasoning_on: bool
    status: MessageStatus
    error: str | None
    error_kind: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    reasoning_tokens: int | None
    cost_usd: Decimal | None
    estimated: bool
    finish_reason: str | None
    created_at: datetime
    #: an assistant message's tool calls (OpenAI ``tool_calls`` entries); a ``tool`` message's call id
    tool_calls: tuple[dict[str, Any], ...] = ()
    tool_call_id: str | None = None


class StoreError(Exception):
    """The chat database cannot be opened or used."""


class Store:
    """Conversations and their messages. Use :meth:`open`; close with :meth:`close`."""

    def __init__(self, db: sqlite3.Connection, *, path: Path | None, now: Clock = _utcnow) -> None:
        self._db = db
        self.path = path
        self._now = now

    @classmethod
    def open(cls, path: str | Path | None = None, *, now: Clock = _utcnow) -> Store:
        """Open (creating if needed) the database at ``path``, default :func:`default_db_path`; ``":memory:"`` works."""
        target: Path | None
        if path == ":memory:":
            target = None
        else:
            target = Path(path) if path is not None else default_db_path()
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create {target.parent}: {exc.strerror}") from None
        try:
            db = sqlite3.connect(str(target) if target else ":memory:", isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA foreign_keys = ON")
            if target is not None:
                db.execute("PRAGMA journal_mode = WAL")
            store = cls(db, path=target, now=now)
            store.migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the chat database {target}: {exc}") from None
        return store

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def migrate(self) -> list[str]:
        """Apply the migrations not yet recorded; returns their names."""
        self._db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        done = {row["name"] for row in self._db.execute("SELECT name FROM _migrations")}
        applied: list[str] = []
        for migration in MIGRATIONS:
            if migration.__name__ in done:
                continue
            with self._transaction() as db:
                migration(db)
                db.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                           (migration.__name__, self._stamp()))
            applied.append(migration.__name__)
        return applied

    def applied_migrations(self) -> list[str]:
        return [row["name"] for row in self._db.execute("SELECT name FROM _migrations ORDER BY rowid")]

    def _stamp(self) -> str:
        return self._now().astimezone(UTC).isoformat()

    # --- conversations --------------------------------------------------------------------------------------------

    def create_conversation(self, title: str, *, model: str | None = None, system_prompt: str = "",
                            params: ChatParams = NO_PARAMS, reasoning: bool | None = None) -> Conversation:
        stamp = self._stamp()
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO conversations (title, model, system_prompt, created_at, updated_at, temperature,"
                " max_tokens, reasoning) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (title, model, system_prompt, stamp, stamp, params.temperature, params.max_tokens,
                 None if reasoning is None else int(reasoning)),
            )
        assert cursor.lastrowid is not None
        return self.conversation(cursor.lastrowid)

    def conversation(self, conversation_id: int) -> Conversation:
        row = self._db.execute("SELECT * FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
        if row is None:
            raise KeyError(conversation_id)
        return Conversation(
            id=row["id"], title=row["title"], model=row["model"], system_prompt=row["system_prompt"],
            created_at=_parse_time(row["created_at"]), updated_at=_parse_time(row["updated_at"]),
            params=ChatParams(row["temperature"], row["max_tokens"]),
            reasoning=None if row["reasoning"] is None else bool(row["reasoning"]),
        )

    def conversations(self, search: str | None = None, *, limit: int = 500) -> list[ConversationSummary]:
        """Most recent first; ``search`` matches titles and message text, case-insensitively."""
        sql = (
            "SELECT c.id, c.title, c.model, c.updated_at,"
            " (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count,"
            " (SELECT GROUP_CONCAT(m.cost_usd, ' ') FROM messages m"
            "   WHERE m.conversation_id = c.id AND m.cost_usd IS NOT NULL) AS costs,"
            " c.replaced_cost_usd"
            " FROM conversations c"
        )
        params: list[object] = []
        if search and search.strip():
            pattern = "%" + _escape_like(search.strip()) + "%"
            sql += (
                " WHERE c.title LIKE ? ESCAPE '\\' OR c.id IN"
                " (SELECT conversation_id FROM messages WHERE content LIKE ? ESCAPE '\\')"
            )
            params += [pattern, pattern]
        sql += " ORDER BY c.updated_at DESC, c.id DESC LIMIT ?"
        params.append(limit)
        return [
            ConversationSummary(
                id=row["id"], title=row["title"], model=row["model"], updated_at=_parse_time(row["updated_at"]),
                message_count=row["message_count"],
                cost_usd=sum((Decimal(c) for c in (row["costs"] or "").split()), Decimal(row["replaced_cost_usd"])),
            )
            for row in self._db.execute(sql, params)
        ]

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        self._update_conversation(conversation_id, "title", title)

    def set_system_prompt(self, conversation_id: int, system_prompt: str) -> None:
        self._update_conversation(conversation_id, "system_prompt", system_prompt)

    def set_model(self, conversation_id: int, model: str | None) -> None:
        self._update_conversation(conversation_id, "model", model)

    def set_params(self, conversation_id: int, params: ChatParams) -> None:
        self._update_conversation(conversation_id, "temperature", params.temperature)
        self._update_conversation(conversation_id, "max_tokens", params.max_tokens)

    def set_reasoning(self, conversation_id: int, on: bool) -> None:
        self._update_conversation(conversation_id, "reasoning", int(on))

    def _update_conversation(self, conversation_id: int, column: str, value: object) -> None:
        assert column in ("title", "system_prompt", "model", "temperature", "max_tokens", "reasoning")
        with self._transaction() as db:
            cursor = db.execute(f"UPDATE conversations SET {column} = ?, updated_at = ? WHERE id = ?",
                                (value, self._stamp(), conversation_id))
        if cursor.rowcount == 0:
            raise KeyError(conversation_id)

    def delete_conversation(self, conversation_id: int) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def conversation_cost(self, conversation_id: int) -> Decimal:
        """What the conversation cost: its messages, and the answers that were replaced in it."""
        rows = self._db.execute(
            "SELECT cost_usd FROM messages WHERE conversation_id = ? AND cost_usd IS NOT NULL", (conversation_id,)
        )
        row = self._db.execute("SELECT replaced_cost_usd FROM conversations WHERE id = ?",
                               (conversation_id,)).fetchone()
        replaced = Decimal(row["replaced_cost_usd"]) if row is not None else Decimal(0)
        return sum((Decimal(row["cost_usd"]) for row in rows), replaced)

    def copy_conversation(self, conversation_id: int, title: str, *, billed_from: int) -> Conversation:
        """A new conversation with the same settings and messages, titled ``title``.

        The cost of the messages before ``billed_from`` (a message id) stays with the original only: in the copy those
        messages keep their text and tokens but no cost, so that nothing is counted twice.
        """
        stamp = self._stamp()
        columns = ("role, content, reasoning, model, reasoning_on, status, error, error_kind, prompt_tokens,"
                   " completion_tokens, reasoning_tokens, estimated, finish_reason, created_at, tool_calls, tool_call_id")
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO conversations (title, model, system_prompt, created_at, updated_at, temperature,"
                " max_tokens, reasoning) SELECT ?, model, system_prompt, created_at, ?, temperature, max_tokens,"
                " reasoning FROM conversations WHERE id = ?",
                (title, stamp, conversation_id),
            )
            if cursor.rowcount == 0:
                raise KeyError(conversation_id)
            copy_id = cursor.lastrowid
            db.execute(
                f"INSERT INTO messages (conversation_id, {columns}, cost_usd)"
                f" SELECT ?, {columns}, CASE WHEN id >= ? THEN cost_usd END FROM messages"
                " WHERE conversation_id = ? ORDER BY id",
                (copy_id, billed_from, conversation_id),
            )
        assert copy_id is not None
        return self.conversation(copy_id)

    def remove_messages(self, conversation_id: int, from_id: int, *, keep_cost: bool = True) -> int:
        """Delete the messages from ``from_id`` on (a regenerate, a retry, an edit); returns how many went.

        With ``keep_cost`` (the default) what they cost stays in the conversation's cost: it was spent. Without it
        (their branch was copied to another conversation, which counts it) it goes with them.
        """
        with self._transaction() as db:
            rows = db.execute("SELECT cost_usd FROM messages WHERE conversation_id = ? AND id >= ?",
                              (conversation_id, from_id)).fetchall()
            if keep_cost:
                removed = sum((Decimal(r["cost_usd"]) for r in rows if r["cost_usd"] is not None), Decimal(0))
                if removed:
                    row = db.execute("SELECT replaced_cost_usd FROM conversations WHERE id = ?",
                                     (conversation_id,)).fetchone()
                    db.execute("UPDATE conversations SET replaced_cost_usd = ? WHERE id = ?",
                               (str(Decimal(row["replaced_cost_usd"]) + removed), conversation_id))
            db.execute("DELETE FROM messages WHERE conversation_id = ? AND id >= ?", (conversation_id, from_id))
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (self._stamp(), conversation_id))
        return len(rows)

    def recent_prompts(self, limit: int = 500) -> list[str]:
        """The user's latest distinct prompts over every conversation, oldest first (for the prompt history)."""
        rows = self._db.execute(
            "SELECT content FROM messages WHERE role = 'user' AND content != ''"
            " GROUP BY content ORDER BY MAX(id) DESC LIMIT ?", (limit,))
        return [row["content"] for row in rows][::-1]

    # --- messages -------------------------------------------------------------------------------------------------

    def add_message(self, conversation_id: int, role: Role, content: str, *, model: str | None = None,
                    reasoning_on: bool = False, status: MessageStatus = "complete",
                    tool_calls: Sequence[Mapping[str, Any]] | None = None,
                    tool_call_id: str | None = None) -> StoredMessage:
        stamp = self._stamp()
        calls = json.dumps([dict(c) for c in tool_calls], ensure_ascii=False) if tool_calls else None
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO messages (conversation_id, role, content, model, reasoning_on, status, created_at,"
                " tool_calls, tool_call_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, role, content, model, int(reasoning_on), status, stamp, calls, tool_call_id),
            )
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (stamp, conversation_id))
        assert cursor.lastrowid is not None
        return self.message(cursor.lastrowid)

    def finish_message(self, message_id: int, *, content: str, reasoning: str, status: MessageStatus,
                       prompt_tokens: int | None = None, completion_tokens: int | None = None,
                       reasoning_tokens: int | None = None, cost_usd: Decimal | None = None, estimated: bool = False,
                       finish_reason: str | None = None, error: str | None = None,
                       error_kind: str | None = None, model: str | None = None) -> StoredMessage:
        """Record how an assistant message ended."""
        with self._transaction() as db:
            db.execute(
                "UPDATE messages SET content = ?, reasoning = ?, status = ?, prompt_tokens = ?, completion_tokens = ?,"
                " reasoning_tokens = ?, cost_usd = ?, estimated = ?, finish_reason = ?, error = ?, error_kind = ?,"
                " model = COALESCE(?, model) WHERE id = ?",
                (content, reasoning, status, prompt_tokens, completion_tokens, reasoning_tokens,
                 None if cost_usd is None else str(cost_usd), int(estimated), finish_reason, error, error_kind,
                 model, message_id),
            )
        return self.message(message_id)

    def message(self, message_id: int) -> StoredMessage:
        row = self._db.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise KeyError(message_id)
        return _message(row)

    def messages(self, conversation_id: int) -> list[StoredMessage]:
        rows = self._db.execute("SELECT * FROM messages WHERE conversation_id = ? ORDER BY id", (conversation_id,))
        return [_message(row) for row in rows]

    # --- settings -------------------------------------------------------------------------------------------------

    def setting(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_setting(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO settings (key, value) VALUES (?, ?)"
                       " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))


def _message(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        id=row["id"], conversation_id=row["conversation_id"], role=row["role"], content=row["content"],
        reasoning=row["reasoning"], model=row["model"], reasoning_on=bool(row["reasoning_on"]),
        status=row["status"], error=row["error"], error_kind=row["error_kind"],
        prompt_tokens=row["prompt_tokens"], completion_tokens=row["completion_tokens"],
        reasoning_tokens=row["reasoning_tokens"],
        cost_usd=None if row["cost_usd"] is None else Decimal(row["cost_usd"]),
        estimated=bool(row["estimated"]), finish_reason=row["finish_reason"],
        created_at=_parse_time(row["created_at"]),
        tool_calls=_tool_calls(row["tool_calls"]), tool_call_id=row["tool_call_id"],
    )


def _tool_calls(raw: str | None) -> tuple[dict[str, Any], ...]:
    if not raw:
        return ()
    try:
        calls = json.loads(raw)
    except ValueError:
        return ()
    return tuple(c for c in calls if isinstance(c, dict)) if isinstance(calls, list) else ()


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
