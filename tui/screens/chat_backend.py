"""The chat screen's link to its backend: connecting behind the first screen, the models, the budget.

:class:`BackendLink` sits between :class:`~tui.screens.chat_actions.ChatActions` and
:class:`~tui.screens.chat.ChatScreen`. Whatever fails is said (in the conversation too) and the chat keeps running.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tui.backend import BackendError, BudgetInfo, ChatBackend, ModelInfo, error_title, unexpected_error
from tui.screens.chat_actions import ChatActions
from tui.widgets.conversation import ConversationView
from tui.widgets.header import ChatHeader
from tui.widgets.status import ModelButton

if TYPE_CHECKING:
    from tui.app import HermesChatApp


class BackendLink(ChatActions):
    """Connecting, the models and the budget (see the module docstring)."""

    # provided by the chat screen
    backend: ChatBackend | None
    connection_error: BackendError | None
    models_error: BackendError | None
    budget: BudgetInfo | None

    @property
    def chat_app(self) -> HermesChatApp:
        return self.app  # type: ignore[return-value]

    def refresh_usage(self, *, state: str | None = None) -> None:
        raise NotImplementedError

    # --- connecting -----------------------------------------------------------------------------------------------

    async def _connect(self) -> None:
        header = self.query_one(ChatHeader)
        try:
            backend = await self.chat_app.open_backend()
        except BackendError as exc:
            self._connection_failed(exc)
            return
        except Exception as exc:  # the backend could not be built at all: say so, keep the saved chats usable
            self._connection_failed(unexpected_error(exc))
            return
        self.backend = backend
        header.backend_label = backend.label
        await self._load_models()
        await self._refresh_budget()
        self.refresh_usage()
        if backend.simulated:
            self.notify("Answers come from the simulated Hermes on the demo upstream, not a real model. "
                        "Configure an upstream key for real answers.", title="Simulated", severity="warning",
                        timeout=6)

    async def _load_models(self) -> bool:
        """List the backend's models; on failure say why (in the conversation too) and keep going."""
        assert self.backend is not None
        try:
            models = await self.backend.models()
        except Exception as exc:
            error = unexpected_error(exc)
            self.models_error = error
            self.notify(f"Cannot list the models: {error.message}", title=error_title(error.kind), severity="error",
                        timeout=8)
            self._show_model()
            return False
        self.models_error = None
        self.models = {m.alias: m for m in models}
        if self.model_alias not in self.models and models:
            if self.model_alias is not None:
                self.notify(f"Model {self.model_alias!r} is not available here; using {models[0].alias!r}.",
                            severity="warning")
            self.model_alias = models[0].alias
        self._show_model()
        return True

    def _connection_failed(self, error: BackendError) -> None:
        self.connection_error = error
        self.query_one(ChatHeader).backend_label = "not connected"
        self.refresh_usage(state="not connected")
        self.query_one(ConversationView).add_error(error)
        self.notify(error.message, title=f"Cannot start the chat: {error_title(error.kind)}", severity="error",
                    timeout=10)

    async def _refresh_budget(self) -> None:
        if self.backend is None:
            return
        try:
            budget = await self.backend.budget()
        except Exception:  # the budget is informative; a failure to read it must not disturb the chat
            return
        if budget is not None:
            self.budget = budget

    # --- model ----------------------------------------------------------------------------------------------------

    @property
    def model_info(self) -> ModelInfo | None:
        return self.models.get(self.model_alias) if self.model_alias else None

    def _show_model(self) -> None:
        info = self.model_info
        simulated = bool(info.simulated) if info else bool(self.backend and self.backend.simulated)
        self.query_one(ModelButton).show(self.model_alias, info.upstream if info else None, simulated)
        self.query_one(ChatHeader).simulated = simulated or bool(self.backend and self.backend.simulated)

    def set_model(self, alias: str) -> None:
        self.model_alias = alias
        if self.conversation is not None:
            self.store.set_model(self.conversation.id, alias)
            self.conversation = self.store.conversation(self.conversation.id)
        self._show_model()
        self.refresh_next_turn()  # another model: other prices and context window
