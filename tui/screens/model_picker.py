"""Pick the model (and so the upstream that serves it) for the conversation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from hermes_proxy.money import format_usd
from tui.backend import ModelInfo, format_window


def describe_model(model: ModelInfo) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(model.alias, style="bold")
    if model.upstream:
        text.append(f"  via {model.upstream}")
    if model.simulated and "simulated" not in model.upstream.lower():
        text.append("  SIMULATED", style="bold yellow")
    text.append("\n")
    prices = "price unknown"
    if model.input_usd_per_mtok is not None and model.output_usd_per_mtok is not None:
        prices = (f"{format_usd(model.input_usd_per_mtok, places=2)} in / "
                  f"{format_usd(model.output_usd_per_mtok, places=2)} out per million tokens")
    text.append(f"{format_window(model.context_window)} context · {prices}", style="dim")
    return text


class ModelPickerScreen(ModalScreen[str | None]):
    """Dismisses with the chosen alias, or ``None``."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, models: Sequence[ModelInfo], current: str | None) -> None:
        super().__init__(classes="dialog-screen")
        self.models = list(models)
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="model-picker"):
            yield Static("Model and upstream", classes="dialog-title")
            if not self.models:
                yield Static("No models yet: the chat is not connected. Press Escape.", classes="dialog-help")
            yield OptionList(*[Option(describe_model(m), id=m.alias) for m in self.models], id="model-list")
            yield Static("enter choose · esc cancel", classes="dialog-help")

    def on_mount(self) -> None:
        options = self.query_one("#model-list", OptionList)
        options.focus()
        for index, model in enumerate(self.models):
            if model.alias == self.current:
                options.highlighted = index

    @on(OptionList.OptionSelected, "#model-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
