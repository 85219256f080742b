"""The conversation pane: a saved conversation drawn from the store, new turns, notes, and what can be copied."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widget import AwaitMount, Widget

from tui.backend import BackendError, ModelInfo, error_kind
from tui.settings import ShowReasoning
from tui.store import StoredMessage
from tui.tool_calls import ToolCallBlock, answer_parts, call_line, call_names, tool_result_block
from tui.transcript import message_meta
from tui.widgets.messages import AssistantMessage, NoteMessage, UserMessage, error_note


def reply_label(model: str, upstream: str | None = None, simulated: bool = False) -> str:
    """Who answered: ``Hermes · hermes-4-405b · openrouter``, marked SIMULATED when it was the simulated Hermes."""
    label = f"Hermes · {model}"
    if upstream:
        label += f" · {upstream}"
    if simulated and "simulated" not in label.lower():
        label += " · SIMULATED"
    return label


def stored_label(model: str | None, models: dict[str, ModelInfo]) -> str:
    """The label of a saved answer, with its upstream when the model is still offered."""
    info = models.get(model) if model else None
    if info is None:
        return reply_label(model or "unknown model")
    return reply_label(info.alias, info.upstream, info.simulated)


def welcome_note() -> NoteMessage:
    text = Text.assemble(
        ("Ask Hermes anything.", "bold"), "\n",
        "ctrl+r or the switch below turns reasoning on/off for the next message · "
        "ctrl+o saved chats · ctrl+p every command · F1 keys",
    )
    return NoteMessage(text, classes="welcome")


def system_note(system_prompt: str) -> NoteMessage:
    text = Text.assemble(("System prompt: ", "bold"), system_prompt.strip(), ("  (F4 to edit)", "dim"))
    return NoteMessage(text, classes="system-note")


class ConversationView(VerticalScroll):
    """The messages of the conversation on screen. It follows new text unless the user scrolls up."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, can_focus=True)

    async def show(self, history: Sequence[StoredMessage], *, system_prompt: str, label: Callable[[str | None], str],
                   mode: ShowReasoning, connection_error: BackendError | None = None) -> None:
        """Draw a conversation from its saved messages (a welcome when there are none)."""
        await self.remove_children()
        widgets: list[Widget] = []
        if system_prompt.strip():
            widgets.append(system_note(system_prompt))
        if not history:
            widgets.append(welcome_note())
        names: dict[str, str] = {}
        for message in history:
            if message.role == "user":
                widgets.append(UserMessage(message.content, message_id=message.id))
                continue
            if message.role == "tool":
                widgets.append(tool_result_block(message, names))
                continue
            parts = answer_parts(message.content, message.tool_calls)
            names.update(call_names(parts.calls))
            if message.status != "error" or parts.text or message.reasoning:
                widgets.append(AssistantMessage(
                    label=label(message.model),
                    content=parts.text,
                    reasoning=message.reasoning,
                    reasoning_tokens=message.reasoning_tokens,
                    estimated=message.estimated,
                    meta=message_meta(message),
                    mode=mode,
                    message_id=message.id,
                ))
            if parts.calls:
                widgets.append(ToolCallBlock([call_line(call) for call in parts.calls]))
            if message.status == "error":
                widgets.append(error_note(message.error or "unknown error", error_kind(message.error_kind)))
        if connection_error is not None and not history:
            widgets.append(error_note(connection_error.message, connection_error.kind))
        await self.mount_all(widgets)
        self.anchor()

    async def add_turn(self, question: UserMessage, answer: AssistantMessage) -> None:
        """The user's message and the (streaming) answer under it; the view follows them."""
        for note in self.query(".welcome"):
            await note.remove()
        await self.mount_all([question, answer])
        self.anchor()

    def add_error(self, error: BackendError) -> AwaitMount:
        return self.mount(error_note(error.message, error.kind))

    async def set_system_prompt(self, system_prompt: str) -> None:
        for note in self.query(".system-note"):
            await note.remove()
        if system_prompt.strip():
            await self.mount(system_note(system_prompt), before=0)

    def answers(self) -> list[AssistantMessage]:
        return list(self.query(AssistantMessage))

    def apply_mode(self, mode: ShowReasoning) -> None:
        for answer in self.answers():
            answer.apply_mode(mode)

    def last_answer(self) -> str | None:
        return next((view.content for view in reversed(self.answers()) if view.content), None)

    def last_code_block(self) -> str | None:
        return next((blocks[-1] for view in reversed(self.answers()) if (blocks := view.code_blocks())), None)
