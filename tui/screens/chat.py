"""The chat: conversation list, messages, prompt, reasoning switch and live numbers.

One reply streams at a time, in a worker. The reply itself (streaming, live numbers, stopping, saving) is a
:class:`~tui.reply.Reply`; this screen draws it. Stopping it (Esc / ctrl+c) keeps and saves the partial answer, marked
stopped; the backend bills what arrived. Whatever goes wrong is shown in the conversation and as a notification; the
store is written before the screen is touched, so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from decimal import Decimal
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from tui.backend import (
    BackendError,
    BudgetInfo,
    ChatBackend,
    ContentDelta,
    Finished,
    ModelInfo,
    ReasoningDelta,
    Started,
    StreamEvent,
    error_title,
)
from tui.meter import ReplyMeter
from tui.reply import Reply, ReplyResult
from tui.screens.chat_backend import BackendLink
from tui.settings import NO_PARAMS, ChatSettings
from tui.store import Conversation, Store, StoredMessage
from tui.transcript import cache_note, chat_messages, conversation_title, message_meta
from tui.widgets.conversation import ConversationView, reply_label, stored_label
from tui.widgets.conversation_list import Sidebar
from tui.widgets.header import ChatHeader
from tui.widgets.key_footer import KeyFooter
from tui.widgets.messages import AssistantMessage, UserMessage
from tui.widgets.prompt import PromptInput
from tui.widgets.status import ChatParamsButton, ModelButton, ReasoningSwitch, Totals, UsageBar

FRAME_S = 1 / 10  # streamed text is drawn at most this often (10 frames a second)

STATE_TEXT = {"waiting": "● waiting…", "thinking": "● thinking", "answering": "● answering"}
END_TEXT = {"complete": "done", "stopped": "stopped", "error": "failed"}


class ChatScreen(BackendLink):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop", "Stop", priority=True),
        Binding("ctrl+c", "stop", "Stop", show=False, priority=True),
        Binding("ctrl+r", "toggle_reasoning", "Reasoning"),
        Binding("ctrl+n", "new_chat", "New"),
        Binding("ctrl+o", "open_conversations", "Chats"),
        Binding("ctrl+f", "search", "Search", show=False),
        Binding("ctrl+b", "toggle_sidebar", "Sidebar", show=False),
        Binding("f2", "rename", "Rename"),
        Binding("f3", "pick_model", "Model"),
        Binding("f4", "system_prompt", "System"),
        Binding("f9", "chat_settings", "Settings", show=False),
        Binding("ctrl+s", "export", "Export"),
        Binding("f5", "copy_last_answer", "Copy", show=False),
        Binding("f6", "copy_last_code", "Copy code", show=False, priority=True),
        Binding("ctrl+g", "regenerate", "Regenerate"),
        Binding("ctrl+end", "scroll_conversation('end')", "End", show=False),
        Binding("ctrl+home", "scroll_conversation('home')", "Top", show=False),
        Binding("ctrl+t", "toggle_last_reasoning", "Fold reasoning", show=False),
        Binding("f8", "edit", "Edit", show=False),
        Binding("f1", "help", "Help"),
    ]

    def __init__(self, *, store: Store, settings: ChatSettings, monotonic: Callable[[], float]) -> None:
        super().__init__()
        self.store = store
        self.settings = settings
        self.monotonic = monotonic
        self.backend: ChatBackend | None = None
        self.connection_error: BackendError | None = None
        self.models_error: BackendError | None = None
        self.models: dict[str, ModelInfo] = {}
        self.model_alias: str | None = settings.model
        self.budget: BudgetInfo | None = None
        self.conversation: Conversation | None = None
        self.draft_system_prompt = ""
        self.draft_params = NO_PARAMS
        self.reply: Reply | None = None  # the reply streaming, until its end is drawn
        self._reply_view: AssistantMessage | None = None
        self._reply_worker: Worker[None] | None = None
        self._reply_drawn = False  # the end of the reply is being drawn: Esc no longer stops it
        self._pending_reasoning = ""  # text that arrived and is drawn at the next frame
        self._pending_content = ""
        self._frame_timer: Timer | None = None
        self.last_meter: ReplyMeter | None = None
        self.set_reactive(ChatScreen.reasoning_on, settings.reasoning)

    # --- layout ---------------------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield ChatHeader(id="header")
        with Horizontal(id="body"):
            yield Sidebar(id="sidebar")
            with Vertical(id="main"):
                yield ConversationView(id="conversation")
                with Horizontal(id="controls"):
                    yield ReasoningSwitch(self.reasoning_on, id="reasoning-toggle")
                    yield ModelButton(id="model-button")
                    yield ChatParamsButton(id="chat-params")
                    yield Totals(id="totals")
                yield PromptInput(id="prompt", send_key=self.settings.send_key,
                                  newline_keys=self.settings.newline_keys,
                                  placeholder=f"Message Hermes…   ({self._keys_hint()})")
                yield UsageBar(id="usage")
        yield KeyFooter()

    def compact_changed(self, compact: bool) -> None:
        with suppress(NoMatches):
            self.query_one(ReasoningSwitch).compact = compact
            totals = self.query_one(Totals)
            if totals.compact != compact:
                totals.compact = compact
                self.refresh_usage()
            self.query_one(ChatParamsButton).show(self.chat_params, compact=compact)

    def _keys_hint(self) -> str:
        send = "Enter" if self.settings.send_key == "enter" else self.settings.send_key
        newline = "Shift+Enter" if self.settings.newline_key == "enter" else self.settings.newline_key
        return f"{send} send · {newline} newline · F1 help"

    async def on_mount(self) -> None:
        self.query_one(ConversationView).anchor()
        prompt = self.query_one(PromptInput)
        prompt.set_history(self.store.recent_prompts())
        prompt.focus()
        self.refresh_conversations()
        await self.show_conversation()
        self._show_model()
        self.refresh_usage(state="connecting…")
        self.run_worker(self._connect(), name="connect", group="connect", exit_on_error=False)

    # --- conversations --------------------------------------------------------------------------------------------

    async def show_conversation(self) -> None:
        """Draw the current conversation from the store."""
        conversation = self.conversation
        await self.query_one(ConversationView).show(
            self.store.messages(conversation.id) if conversation else [],
            system_prompt=conversation.system_prompt if conversation else self.draft_system_prompt,
            label=lambda model: stored_label(model, self.models), mode=self.settings.show_reasoning,
            connection_error=self.connection_error)
        self.query_one(ChatHeader).chat_title = conversation.title if conversation else "New chat"

    async def open_conversation(self, conversation_id: int) -> None:
        if self.reply is not None:
            self.notify("A reply is streaming: press Esc to stop it first.", severity="warning")
            return
        try:
            conversation = self.store.conversation(conversation_id)
        except KeyError:
            self.notify("That conversation no longer exists.", severity="warning")
            self.refresh_conversations()
            return
        self.conversation = conversation
        self.last_meter = None
        if conversation.reasoning is not None:
            self.reasoning_on = conversation.reasoning
        self.show_params()
        if conversation.model:
            if not self.models or conversation.model in self.models:
                self.model_alias = conversation.model
            else:
                self.notify(f"Model {conversation.model!r} is not available here; using {self.model_alias!r}.",
                            severity="warning")
        self._show_model()
        await self.show_conversation()
        self.refresh_conversations()
        self.refresh_usage()

    async def new_chat(self) -> None:
        if self.reply is not None:
            self.notify("A reply is streaming: press Esc to stop it first.", severity="warning")
            return
        self.conversation = None
        self.draft_system_prompt = ""
        self.reset_draft_params()  # the reasoning switch stays as it is
        self.show_params()
        self.last_meter = None
        await self.show_conversation()
        self.refresh_conversations()
        self.refresh_usage()
        self.query_one(PromptInput).focus()

    # --- sending and streaming --------------------------------------------------------------------------------------

    @on(PromptInput.Submitted)
    async def _prompt_submitted(self, event: PromptInput.Submitted) -> None:
        event.stop()
        prompt = event.prompt
        try:
            await self.send(event.text)
        finally:
            prompt.keep()  # not sent (or already taken): all stays

    @on(PromptInput.Held)
    def _prompt_held(self, event: PromptInput.Held) -> None:
        event.stop()
        self.notify("A reply is still streaming: your message stays in the prompt (Esc stops the reply).",
                    severity="warning", timeout=3)

    async def send(self, text: str, *, from_prompt: bool = True) -> bool:
        """Send ``text`` as the next user message; ``False`` (and a notification saying why) when it cannot go.

        ``from_prompt``: the text was typed in the prompt, which then loses it (and only it).
        """
        if not text.strip():
            return False
        model = await self._ready_model()
        if model is None:
            return False
        prompt = self.query_one(PromptInput)
        if from_prompt:
            prompt.take(text)  # only what was sent leaves the prompt; what was typed since stays
        prompt.held = True  # until the reply ends, the send key adds a line instead of sending
        text = text.rstrip()

        if self.conversation is None:
            self.conversation = self.store.create_conversation(
                conversation_title(text), model=model, system_prompt=self.draft_system_prompt,
                params=self.draft_params, reasoning=self.reasoning_on)
            self.query_one(ChatHeader).chat_title = self.conversation.title
        user_row = self.store.add_message(self.conversation.id, "user", text)
        prompt.remember(text)
        await self._start_reply(model, UserMessage(text, message_id=user_row.id))
        return True

    async def _ready_model(self) -> str | None:
        """The model to answer with, or ``None`` (and a notification saying why) when nothing can be sent now."""
        if self.reply is not None:
            self.notify("A reply is still streaming: press Esc to stop it first.", severity="warning")
            return None
        if self.backend is None:
            if self.connection_error is not None:
                self.notify(self.connection_error.message, title="Not connected", severity="error")
            else:
                self.notify("Still connecting, try again in a moment.", severity="warning")
            return None
        if self.model_alias is None and not await self._load_models():
            return None  # _load_models said why
        if self.model_alias is None:
            self.notify("The backend offers no model: check the upstreams and models in the config.",
                        severity="error")
        return self.model_alias

    async def _start_reply(self, model: str, question: UserMessage | None) -> None:
        """Stream an answer to the conversation as saved (its last message is the user's); ``question`` is drawn
        first when it is new."""
        assert self.conversation is not None and self.backend is not None
        conversation = self.conversation
        self.query_one(PromptInput).held = True
        messages = chat_messages(conversation.system_prompt, self.store.messages(conversation.id))
        info = self.models.get(model)
        reply = Reply.begin(backend=self.backend, store=self.store, conversation_id=conversation.id,
                            messages=messages, model=model, reasoning=self.reasoning_on, model_info=info,
                            clock=self.monotonic, params=conversation.params)

        view = AssistantMessage(
            label=reply_label(model, info.upstream if info else None, info.simulated if info else False),
            mode=self.settings.show_reasoning, streaming=True, message_id=reply.message_id,
        )
        pane = self.query_one(ConversationView)
        if question is not None:
            await pane.add_turn(question, view)
        else:
            await pane.mount(view)
            pane.anchor()
        self.reply, self._reply_view, self._reply_drawn = reply, view, False
        self.refresh_usage()
        self.refresh_bindings()
        self.refresh_conversations()
        self._reply_worker = self.run_worker(self._stream(reply, view), name="reply", group="reply",
                                             exit_on_error=False)

    # --- regenerate, retry, edit ----------------------------------------------------------------------------------

    def _last_user_message(self) -> StoredMessage | None:
        if self.conversation is None:
            return None
        return next((m for m in reversed(self.store.messages(self.conversation.id)) if m.role == "user"), None)

    async def regenerate(self) -> bool:
        """Answer the last user message again, with the model and reasoning switch as they are now.

        The answer after it (or the failed one, for a retry) is replaced; what it cost stays in the chat's cost.
        """
        question = self._last_user_message()
        if question is None or self.conversation is None:
            self.notify("Nothing to regenerate yet: send a message first.", severity="warning")
            return False
        model = await self._ready_model()
        if model is None:
            return False
        self.store.remove_messages(self.conversation.id, question.id + 1)
        self.last_meter = None
        await self.show_conversation()
        await self._start_reply(model, None)
        return True

    async def edit_message(self, message_id: int, text: str, *, keep_branch: bool) -> bool:
        """Replace the user message ``message_id`` by ``text`` and continue from there: what came after it is
        replaced. With ``keep_branch`` the conversation as it was is first saved as “… (earlier branch)”."""
        if self.conversation is None or not text.strip():
            return False
        if await self._ready_model() is None:
            return False
        conversation = self.conversation
        if keep_branch:
            title = f"{conversation.title} (earlier branch)"
            self.store.copy_conversation(conversation.id, title, billed_from=message_id)
            self.notify(f"The earlier branch is saved as “{title}”.")
        self.store.remove_messages(conversation.id, message_id, keep_cost=not keep_branch)
        self.last_meter = None
        await self.show_conversation()
        return await self.send(text, from_prompt=False)

    async def _stream(self, reply: Reply, view: AssistantMessage) -> None:
        async def draw(event: StreamEvent) -> None:
            await self._draw(reply, view, event)

        result = await reply.run(draw)
        await self._finish_reply(reply, view, result)

    async def _draw(self, reply: Reply, view: AssistantMessage, event: StreamEvent) -> None:
        """Show one event of the reply; the reply has already taken it into account."""
        if isinstance(event, Started):
            view.set_label(reply_label(event.model_label, simulated=event.simulated))
            if event.budget is not None:
                self.budget = event.budget
            if reply.reasoning_overridden:
                self.notify(f"The gateway turned reasoning {'on' if reply.reasoning_applied else 'off'} for this "
                            "reply (team policy).", severity="warning")
        elif isinstance(event, ReasoningDelta):
            self._pending_reasoning += event.text
            self._schedule_frame(reply, view)
            return
        elif isinstance(event, ContentDelta):
            self._pending_content += event.text
            self._schedule_frame(reply, view)
            return
        elif isinstance(event, Finished) and event.budget is not None:
            self.budget = event.budget
        self.refresh_usage()

    def _schedule_frame(self, reply: Reply, view: AssistantMessage) -> None:
        """Draw the text that arrived at most :data:`FRAME_S` later, with whatever else arrives meanwhile.

        Every change of an answer's height makes Textual lay out the whole screen, whose cost grows with the
        conversation: drawing each token as it came made a long chat stream slower than a fresh one.
        """
        if self._frame_timer is None:
            self._frame_timer = self.set_timer(FRAME_S, lambda: self._draw_frame(reply, view))

    async def _draw_frame(self, reply: Reply, view: AssistantMessage) -> None:
        """Draw the text that arrived since the last frame, and the live numbers."""
        if self._frame_timer is not None:
            self._frame_timer.stop()
            self._frame_timer = None
        reasoning, content = self._pending_reasoning, self._pending_content
        self._pending_reasoning = self._pending_content = ""
        if reasoning:
            await view.append_reasoning(reasoning, tokens=reply.meter.reasoning_tokens)
        if content:
            await view.append_content(content)
        if self.reply is reply:
            self.refresh_usage()

    async def _finish_reply(self, reply: Reply, view: AssistantMessage, result: ReplyResult) -> None:
        """Draw how the reply ended (it is saved already)."""
        if self._reply_drawn or reply is not self.reply:
            return
        self._reply_drawn = True  # from here on, Esc no longer stops the reply (see check_action)
        await self._draw_frame(reply, view)  # the text that arrived since the last frame
        stored = result.message
        self.last_meter = reply.meter if stored.completion_tokens is not None else None
        try:
            await view.finish(reasoning_tokens=stored.reasoning_tokens, estimated=stored.estimated,
                              meta=message_meta(stored) + cache_note(reply.saved_usd))
            if not (reply.content or reply.reasoning) and result.failed:
                view.display = False  # nothing arrived: the error note says it all
            if result.error is not None:
                await self.query_one(ConversationView).add_error(result.error)
        except Exception as exc:  # the reply is saved; a failure to draw it must not take the chat down
            self.reply = None
            self._release_prompt()
            if self.is_attached and self.app.is_running:
                self.notify(f"Cannot show the end of the reply: {exc}", severity="error")
            return
        if result.error is not None:
            self.notify(result.error.message, title=f"{error_title(result.error.kind)} · ctrl+g retries",
                        severity="error", timeout=8)
        elif result.status == "stopped":
            self.notify("Reply stopped: what arrived is kept and saved.", timeout=3)
        await self._refresh_budget()
        self.reply = None  # last: until here the reply is still "in progress" (no new send, Esc does nothing)
        self._release_prompt()
        self.refresh_usage(state=END_TEXT[result.status])
        self.refresh_bindings()
        self.refresh_conversations()

    def _release_prompt(self) -> None:
        with suppress(NoMatches):
            self.query_one(PromptInput).held = False

    async def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A reply whose worker was cancelled or failed outside the reply still has its end saved and drawn."""
        reply, view = self.reply, self._reply_view
        if reply is None or view is None or event.worker is not self._reply_worker or self._reply_drawn:
            return
        if event.state in (WorkerState.CANCELLED, WorkerState.ERROR):
            if event.state == WorkerState.CANCELLED:
                result = reply.end("stopped")
            else:
                result = reply.end("error", BackendError(str(event.worker.error), "other"))
            await self._finish_reply(reply, view, result)

    def refresh_usage(self, *, state: str | None = None) -> None:
        reply = self.reply
        if reply is not None:
            meter: ReplyMeter | None = reply.meter
            state = STATE_TEXT[reply.phase]
            chat_cost: Decimal | None = reply.chat_cost
        else:
            meter = self.last_meter
            if state is None:
                if self.connection_error is not None or self.models_error is not None:
                    state = "not connected"
                else:
                    state = "ready" if self.backend is not None else "connecting…"
            chat_cost = self.store.conversation_cost(self.conversation.id) if self.conversation else None
        try:
            usage, totals = self.query_one(UsageBar), self.query_one(Totals)
        except NoMatches:
            return
        usage.show(meter, state=state, live=reply is not None)
        totals.show(chat_cost=chat_cost, budget=self.budget)
        self.history_tokens.forget()  # the conversation may have changed
        if reply is None:
            self.refresh_next_turn()

    # --- actions --------------------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.reply is not None and not self._reply_drawn
        return True

    def action_stop(self) -> None:
        if self.reply is not None and not self._reply_drawn:
            self.reply.stop()

    def action_toggle_reasoning(self) -> None:
        self.reasoning_on = not self.reasoning_on

    def watch_reasoning_on(self, on: bool) -> None:
        """Show the switch; it is saved with the conversation (opening it again brings it back)."""
        with suppress(NoMatches):
            self.query_one(ReasoningSwitch).on = on
        conversation = self.conversation
        if conversation is not None and conversation.reasoning != on:
            self.store.set_reasoning(conversation.id, on)
            self.conversation = replace(conversation, reasoning=on)

    @on(ReasoningSwitch.Pressed)
    def _switch_pressed(self, event: ReasoningSwitch.Pressed) -> None:
        event.stop()
        self.action_toggle_reasoning()

    @on(ModelButton.Pressed)
    def _model_pressed(self, event: ModelButton.Pressed) -> None:
        event.stop()
        self.action_pick_model()

    async def action_new_chat(self) -> None:
        await self.new_chat()
