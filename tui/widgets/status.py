"""The controls under the conversation: reasoning switch, model button, chat settings and live numbers."""

from __future__ import annotations

from decimal import Decimal

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from hermes_proxy.money import format_usd
from tui.backend import BudgetInfo, format_tokens, format_window
from tui.meter import ReplyMeter
from tui.next_turn import NextTurn
from tui.settings import ChatParams


class ReasoningSwitch(Static):
    """Reasoning on or off for the next message. Click it, or press ctrl+r."""

    ALLOW_SELECT = False
    on: reactive[bool] = reactive(False)

    class Pressed(Message):
        """The switch was clicked."""

    compact: reactive[bool] = reactive(False)  # a narrow terminal: a shorter label

    def __init__(self, on: bool = False, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.set_reactive(ReasoningSwitch.on, on)
        self.tooltip = "Reasoning for the next message (ctrl+r)"

    def on_mount(self) -> None:
        self.watch_on(self.on)

    def watch_on(self, on: bool) -> None:
        self.set_class(on, "-on")
        word = "Think" if self.compact else "Reasoning"
        self.update(f"◉ {word} ON" if on else f"○ {word} OFF")

    def watch_compact(self) -> None:
        self.watch_on(self.on)

    def on_click(self, event: events.Click) -> None:
        event.stop()
        self.post_message(self.Pressed())


class ModelButton(Static):
    """The model and upstream of the next message. Click it, or press F3, to pick another."""

    ALLOW_SELECT = False

    class Pressed(Message):
        """The button was clicked."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("model: …", id=id, markup=False)
        self.tooltip = "Pick the model and upstream (F3)"

    def show(self, alias: str | None, upstream: str | None, simulated: bool) -> None:
        text = f"▾ {alias or 'no model'}"
        if upstream:
            text += f" · {upstream}"
        self.set_class(simulated, "-simulated")
        self.update(text)

    def on_click(self, event: events.Click) -> None:
        event.stop()
        self.post_message(self.Pressed())


class ChatParamsButton(Static):
    """The conversation's settings when any is set (``temp 0.7 · max 512``); click it, or press F9, to change them."""

    ALLOW_SELECT = False

    class Pressed(Message):
        """The button was clicked."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.tooltip = "This conversation's settings (F9)"
        self.display = False

    def show(self, params: ChatParams, *, compact: bool = False) -> None:
        text = params.summary(compact=compact)
        self.update(text)
        self.display = bool(text)

    def on_click(self, event: events.Click) -> None:
        event.stop()
        self.post_message(self.Pressed())


class UsageBar(Horizontal):
    """The reply's live numbers: state, tokens/s, tokens in/out/reasoning, cost of the reply, context used; when no
    reply streams and the prompt holds a message, what sending it would cost (:meth:`show_next`)."""

    def compose(self) -> ComposeResult:
        yield Static("ready", id="usage-state", markup=False)
        yield Static("", id="usage-next", markup=False)
        yield Static("", id="usage-rate", markup=False)
        yield Static("", id="usage-tokens", markup=False)
        yield Static("", id="usage-reply", markup=False)
        yield Static("", id="usage-context", markup=False)

    _parts: list[Part] = []  # noqa: RUF012 - set per instance by show()
    _next: NextTurn | None = None

    def show_next(self, turn: NextTurn | None) -> None:
        """What sending the prompt would cost, after the state (``None``: hidden). Hidden while a reply streams."""
        self._next = None if self.has_class("-live") else turn
        widget = self.query_one("#usage-next", Static)
        widget.set_class(self._next is not None and self._next.over_context, "-over")
        widget.tooltip = self._next.explanation() if self._next is not None else None
        self._fit()

    def show(self, meter: ReplyMeter | None, *, state: str, live: bool = False) -> None:
        self.set_class(live, "-live")
        if live:
            self._next = None  # the live numbers take its place
        if meter is None:
            self._parts = [("#usage-state", (state,)), ("#usage-rate", ("",)), ("#usage-tokens", ("",)),
                           ("#usage-reply", ("",)), ("#usage-context", ("",))]
            self._fit()
            return
        rate = meter.tokens_per_s(live=live)
        approx = "~" if meter.estimated else ""
        prompt = f"in {'~' if meter.prompt_estimated else ''}{format_tokens(meter.prompt_tokens)}"
        out = f"out {approx}{format_tokens(meter.completion_tokens)}"
        tokens = f"{prompt} · {out}"
        longest = tokens
        if meter.reasoning_tokens or meter.reasoning_chars:
            longest += f" ({approx}{format_tokens(meter.reasoning_tokens)} reasoning)"
        cost = f"{'~' if meter.cost_estimated else ''}{format_usd(meter.cost_usd, places=4)}"
        # each part with shorter forms, for a narrow terminal: whole numbers or nothing, never a cut one
        self._parts = [
            ("#usage-state", (state,)),
            ("#usage-reply", (f"reply {cost}", cost)),
            ("#usage-context", (f"ctx {meter.context_pct:.1f}%",)),
            ("#usage-rate", (f"{rate:.1f} tok/s" if rate is not None else "— tok/s", "")),
            ("#usage-tokens", (longest, tokens, out, "")),
        ]
        self._fit()
        self.query_one("#usage-context", Static).tooltip = (
            f"{format_tokens(meter.prompt_tokens + meter.completion_tokens)} of the "
            f"{format_window(meter.context_window)}-token context window")

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        turn: Part = ("#usage-next", self._next.texts() if self._next is not None else ("",))
        _fit(self, [*self._parts[:1], turn, *self._parts[1:]], self.size.width)


class Totals(Horizontal):
    """The conversation's cost so far and the team's remaining budget (warning colour past the soft limit)."""

    def compose(self) -> ComposeResult:
        yield Static("", id="usage-chat", markup=False)
        yield Static("", id="usage-budget", markup=False)

    compact = False  # a narrow terminal: shorter texts

    def show(self, *, chat_cost: Decimal | None, budget: BudgetInfo | None) -> None:
        chat = format_usd(chat_cost, places=4) if chat_cost is not None else ""
        _set(self, "#usage-chat", f"{'' if self.compact else 'chat '}{chat}" if chat else "")
        self.query_one("#usage-chat", Static).tooltip = "The conversation's cost so far"
        widget = self.query_one("#usage-budget", Static)
        exhausted = budget is not None and budget.remaining_usd is not None and budget.remaining_usd <= 0
        short = budget is not None and budget.short_of_reservation
        warning = budget is not None and (budget.warning is not None or short)
        widget.set_class(warning and not exhausted, "-warning")
        widget.set_class(exhausted, "-exhausted")
        if budget is None:
            _set(self, "#usage-budget", "")
            widget.tooltip = None
            return
        if budget.remaining_usd is None:
            text = "no budget limit" if self.compact else "budget: no limit"
        else:
            left = format_usd(max(budget.remaining_usd, Decimal(0)), places=2)
            text = f"{left} left" if self.compact else f"budget {left} left"
        reserve = ""
        if short and budget.reserved_usd is not None:
            # money left, but less than a message holds while it runs: the next one may be refused
            amount = format_usd(budget.reserved_usd, places=2)
            text += f" · msg holds {amount}" if self.compact else f" · a message may reserve {amount}"
            reserve = (f"A message holds up to {amount} of the budget while it runs (its worst case); with less "
                       "left, it may be refused.")
        if exhausted or warning:
            text = "⚠ " + text
        _set(self, "#usage-budget", text)
        team = f"Team {budget.team}: " if budget.team else ""
        widget.tooltip = team + " ".join(p for p in (budget.warning or "remaining budget", reserve) if p)


Part = tuple[str, tuple[str, ...]]  # a selector and its texts, longest first


def _fit(parent: Widget, parts: list[Part], width: int) -> None:
    """Show each part in its longest form that lets all fit in ``width`` columns (two of padding each); shorten the
    last parts first. A part is shown whole or not at all."""
    chosen = [0] * len(parts)

    def total() -> int:
        return sum(len(forms[i]) + 2 for (_, forms), i in zip(parts, chosen, strict=True) if forms[i])

    for index in reversed(range(len(parts))):
        forms = parts[index][1]
        while width > 0 and total() > width and chosen[index] + 1 < len(forms):
            chosen[index] += 1
    for (selector, forms), i in zip(parts, chosen, strict=True):
        _set(parent, selector, forms[i])


def _set(parent: Widget, selector: str, text: str) -> None:
    widget = parent.query_one(selector, Static)
    widget.update(text)
    widget.display = bool(text)
