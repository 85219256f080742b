"""The key hints at the bottom of the chat, in one widget.

Textual's ``Footer`` is a widget per key, all rebuilt on every focus move and every ``refresh_bindings()`` (several times
a second while a reply streams), and every one of them is restyled whenever the screen's classes change. This footer
draws the same hints (the first binding of each action, dimmed when disabled, the command palette's key on the right)
as one line of text, redrawn only when what it shows changes. A click on a hint presses its key, as in Textual's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widget import Widget


@dataclass(frozen=True)
class Hint:
    key: str
    shown_as: str
    description: str
    enabled: bool


@dataclass(frozen=True)
class Hints:
    left: tuple[Hint, ...]
    palette: Hint | None


def hints_of(screen: Screen[object]) -> Hints:
    app = screen.app
    bindings = screen.active_bindings
    palette_key = app.COMMAND_PALETTE_BINDING if app.ENABLE_COMMAND_PALETTE else None
    seen_actions: set[str] = set()
    left: list[Hint] = []
    for key, (_node, binding, enabled, _tooltip) in bindings.items():
        if not binding.show or key == palette_key or binding.action in seen_actions:
            continue
        seen_actions.add(binding.action)
        left.append(Hint(binding.key, app.get_key_display(binding), binding.description, enabled))
    palette = None
    if palette_key is not None and palette_key in bindings:
        _node, binding, enabled, _tooltip = bindings[palette_key]
        palette = Hint(binding.key, app.get_key_display(binding), binding.description, enabled)
    return Hints(tuple(left), palette)


class KeyFooter(Widget):
    """One line of key hints; see the module's docstring."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {"footer-key--key", "footer-key--description"}
    DEFAULT_CSS = """
    KeyFooter {
        dock: bottom;
        height: 1;
        text-wrap: nowrap;
        color: $footer-foreground;
        background: $footer-background;
        & > .footer-key--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        & > .footer-key--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._hints = Hints((), None)
        self._spans: list[tuple[int, int, Hint]] = []  # x from, x to, the hint drawn there (for clicks)

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        hints = hints_of(screen)
        if hints != self._hints:
            self._hints = hints
            self.refresh()

    @property
    def hints(self) -> Hints:
        return self._hints

    def render(self) -> Text:
        key_style = self.get_component_rich_style("footer-key--key")
        description_style = self.get_component_rich_style("footer-key--description")
        dim = Style(dim=True)

        def draw(line: Text, spans: list[tuple[int, int, Hint]], hint: Hint, key_padding: str = " ") -> None:
            start = line.cell_len
            extra = Style() if hint.enabled else dim
            line.append(f"{key_padding}{hint.shown_as} ", key_style + extra)
            if hint.description:
                line.append(f"{hint.description} ", description_style + extra)
            spans.append((start, line.cell_len, hint))

        left, left_spans = Text(no_wrap=True, overflow="crop"), list[tuple[int, int, Hint]]()
        for hint in self._hints.left:
            draw(left, left_spans, hint)
        right, right_spans = Text(no_wrap=True), list[tuple[int, int, Hint]]()
        if self._hints.palette is not None:  # flush right behind a bar, as Textual's footer draws it
            right.append("▏")
            draw(right, right_spans, self._hints.palette, key_padding="")
            right.right_crop(1)
        width = self.size.width
        room = max(0, width - right.cell_len)
        if left.cell_len > room:  # the palette's key stays; the hints on the left are cut at the edge
            left.truncate(room)
        left.pad_right(room - left.cell_len)
        self._spans = [(start, min(end, room), hint) for start, end, hint in left_spans if start < room]
        self._spans += [(room + start, room + end, hint) for start, end, hint in right_spans]
        return left + right

    def on_click(self, event: events.Click) -> None:
        for start, end, hint in self._spans:
            if start <= event.x < end:
                event.stop()
                if hint.enabled:
                    self.app.simulate_key(hint.key)
                else:
                    self.app.bell()
                return
