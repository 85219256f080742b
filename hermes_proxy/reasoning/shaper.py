"""Output shaping: (reasoning, content) pieces from the splitter -> the delta fields the client asked for."""

from __future__ import annotations

from hermes_proxy.reasoning.decision import REASONING_FORMATS, ReasoningFormat
from hermes_proxy.reasoning.prompts import THINK_CLOSE, THINK_OPEN

__all__ = ["OutputShaper"]


class OutputShaper:
    """Turn (reasoning, content) pieces into the delta fields sent to the client, in the requested format.

    - ``parsed``: ``{"reasoning_content": r, "reasoning": r}`` and/or ``{"content": c}`` (empty fields omitted);
    - ``raw``: everything in ``content``, reasoning re-wrapped as ``<think>\\n`` + reasoning + ``\\n</think>\\n\\n``
      + answer (the close tag goes before the first answer piece, or is sent by :meth:`finish` if reasoning never
      closed);
    - ``hidden``: only the answer.

    Whatever the format, :attr:`reasoning_text` and :attr:`content_text` hold the full texts (for token counting).
    Use :attr:`has_content` / :attr:`has_reasoning` (O(1)) rather than testing those texts on every chunk.
    """

    __slots__ = ("_c", "_closing", "_open", "_r", "format")

    def __init__(self, format: ReasoningFormat = "parsed") -> None:
        if format not in REASONING_FORMATS:
            raise ValueError(f"format must be one of {', '.join(REASONING_FORMATS)}; got {format!r}")
        self.format: ReasoningFormat = format
        self._r: list[str] = []
        self._c: list[str] = []
        self._open = False  # raw: a <think> block is open in the client's content
        self._closing = "\n" + THINK_CLOSE + "\n\n"

    def shape(self, r: str, c: str) -> dict[str, str]:
        """The delta fields for one (reasoning, content) pair; ``{}`` when there is nothing to send."""
        if r:
            self._r.append(r)
        if c:
            self._c.append(c)
        fmt = self.format
        if fmt == "parsed":
            if r:
                if c:
                    return {"reasoning_content": r, "reasoning": r, "content": c}
                return {"reasoning_content": r, "reasoning": r}
            return {"content": c} if c else {}
        if fmt == "hidden":
            return {"content": c} if c else {}
        out = ""
        if r:
            if self._open:
                out = r
            else:
                out = THINK_OPEN + "\n" + r
                self._open = True
        if c:
            if self._open:
                out += self._closing
                self._open = False
            out += c
        return {"content": out} if out else {}

    def finish(self) -> dict[str, str]:
        """End of stream: in ``raw``, close a reasoning block the model never closed."""
        if self._open:
            self._open = False
            return {"content": "\n" + THINK_CLOSE}
        return {}

    @property
    def reasoning_text(self) -> str:
        return _joined(self._r)

    @property
    def content_text(self) -> str:
        return _joined(self._c)

    @property
    def has_reasoning(self) -> bool:
        return bool(self._r)

    @property
    def has_content(self) -> bool:
        return bool(self._c)


def _joined(parts: list[str]) -> str:
    if len(parts) > 1:
        parts[:] = ["".join(parts)]  # join once; later reads reuse it
    return parts[0] if parts else ""

