"""The streaming ``<think>`` splitter: model text in, (reasoning, content) pieces out, for any chunking of the stream.

Pure and upstream-neutral: which mode an upstream needs (see :class:`ThinkSplitter`) is its dialect's choice.
"""

from __future__ import annotations

from typing import Literal

from hermes_proxy.reasoning.prompts import THINK_CLOSE, THINK_OPEN

__all__ = ["ThinkSplitter"]

_OPEN_LEN = len(THINK_OPEN)
_CLOSE_LEN = len(THINK_CLOSE)

# what to do with output that does not open with <think>
_AS_CONTENT = 0  # it is content (expect_reasoning=False)
_HOLD_UNTIL_CLOSE = 1  # hold it: reasoning if a </think> follows, else content (expect_reasoning=True)
_AS_REASONING = 2  # it is reasoning until </think> (expect_reasoning=True, unclosed="reasoning")

# splitter states
_START = 0  # deciding whether the output opens with <think> (holding leading whitespace + a partial "<think>")
_REASONING = 1  # inside <think>, looking for </think>
_ANSWER_LEAD = 2  # after </think>: dropping the answer's leading whitespace
_PASS = 3  # everything is content, as is
_HOLD = 4  # expect_reasoning, no <think>: holding everything until </think> or end of stream
_DONE = 5


class ThinkSplitter:
    """Split a model's streamed text into (reasoning, content) pieces, for any chunking of the stream.

    Rules (the test suite checks them against a regex on the whole text):

    - ``<think>`` opens reasoning only at the very start of the output, after optional whitespace. Text up to
      ``</think>`` is reasoning, with its surrounding whitespace trimmed (the ``\\n`` after ``<think>`` and the
      whitespace before ``</think>``): the concatenated reasoning pieces equal ``inner.strip()``.
    - After ``</think>`` everything is content, its leading whitespace dropped; a later ``<think>`` or ``</think>`` is
      plain content.
    - A stream ending inside the reasoning (``max_tokens``) is all reasoning, no content.
    - Output that does not open with ``<think>`` is all content, unchanged (leading whitespace included). Only what is
      needed to decide is held back: leading whitespace plus at most ``len("<think>") - 1`` characters.

    Output that does not open with ``<think>`` although the model may be reasoning (a template that prefills
    ``<think>`` in the generation prompt, or a host that drops the opening tag: ``…reasoning…</think>answer``):

    - ``expect_reasoning=True``: a ``</think>`` that closes a block never opened means everything before it was
      reasoning (trimmed as above) and everything after it is content (leading whitespace dropped). Until that tag
      arrives nothing can be decided, so the text is *held back*, not streamed (``phase`` stays ``start``,
      ``in_reasoning`` is False: a reasoning budget cannot fire while holding). **If the stream ends with no
      ``</think>``, all of it is content, unchanged** (leading whitespace included): without the closing tag there is
      no evidence of reasoning, and that is what an answer written without deliberating looks like (reasoning off,
      or a template that did not prefill after all). Safe whatever the template does, at the price of latency. Do not
      set it for upstreams that return reasoning out of band (OpenRouter's ``delta.reasoning``) or keep the tag: their
      answers would be held until the end of the stream.
    - ``expect_reasoning=True, unclosed="reasoning"``: for a template known to prefill ``<think>`` whenever reasoning
      is on (the output always starts inside the reasoning): the tag-less text is streamed as reasoning at once
      (``in_reasoning`` is True, so a budget works) and a stream that ends with no ``</think>`` is all reasoning (cut
      by ``max_tokens``), like an opened block. Use it only with reasoning on.

    Each ``feed`` costs time proportional to its own text only: no accumulated text is rescanned.
    """

    __slots__ = ("_begun", "_had_reasoning", "_held", "_lead", "_part", "_pre", "_state", "_untagged", "_ws")

    def __init__(self, expect_reasoning: bool = False, *,
                 unclosed: Literal["content", "reasoning"] = "content") -> None:
        if unclosed not in ("content", "reasoning"):
            raise ValueError(f"unclosed must be 'content' or 'reasoning'; got {unclosed!r}")
        self._untagged = (_AS_CONTENT if not expect_reasoning
                          else _HOLD_UNTIL_CLOSE if unclosed == "content" else _AS_REASONING)
        self._state = _START
        self._lead: list[str] = []  # leading whitespace while deciding
        self._pre = ""  # non-whitespace start while deciding (a proper prefix of "<think>")
        self._part = ""  # a possible partial "</think>" at the end of the text seen so far
        self._ws: list[str] = []  # reasoning whitespace held back: emitted only if more reasoning follows
        self._begun = False  # some non-whitespace reasoning was emitted
        self._held: list[str] = []  # _HOLD: everything so far
        self._had_reasoning = False

    # --- public --------------------------------------------------------------------------------------------------

    @property
    def phase(self) -> Literal["start", "reasoning", "answer", "done"]:
        """``start`` while undecided (or holding, with ``expect_reasoning``), ``reasoning``, ``answer``, ``done``."""
        state = self._state
        if state == _REASONING:
            return "reasoning"
        if state in (_ANSWER_LEAD, _PASS):
            return "answer"
        if state == _DONE:
            return "done"
        return "start"

    @property
    def in_reasoning(self) -> bool:
        """True while inside an open reasoning block (what a reasoning budget watches)."""
        return self._state == _REASONING

    @property
    def saw_reasoning(self) -> bool:
        """True once a reasoning block was opened (or, with ``expect_reasoning``, closed)."""
        return self._had_reasoning

    def feed(self, text: str) -> tuple[str, str]:
        """Take the next piece of model text; return the (reasoning, content) that can be released now."""
        state = self._state
        if state == _PASS:
            return "", text
        if state == _REASONING:
            return self._reason(text) if text else ("", "")
        if not text:
            return "", ""
        if state == _ANSWER_LEAD:
            text = text.lstrip()
            if text:
                self._state = _PASS
            return "", text
        if state == _START:
            return self._start(text)
        if state == _HOLD:
            return self._hold(text)
        raise RuntimeError("ThinkSplitter.feed() after finish()")

    def finish(self) -> tuple[str, str]:
        """End of stream: release what was held back. Further calls return empty pieces; ``feed`` raises."""
        state = self._state
        self._state = _DONE
        if state == _REASONING:
            part, self._part = self._part, ""
            return self._emit(part, True), ""
        if state == _START:
            text = "".join(self._lead) + self._pre
            self._lead, self._pre = [], ""
            if self._untagged == _AS_REASONING:
                reasoning = text.strip()
                self._had_reasoning = bool(reasoning)
                return reasoning, ""
            return "", text
        if state == _HOLD:
            text = "".join(self._held) + self._part
            self._held, self._part = [], ""
            return "", text
        return "", ""

    # --- states --------------------------------------------------------------------------------------------------

    def _start(self, text: str) -> tuple[str, str]:
        if self._pre:
            s = self._pre + text
        else:
            s = text.lstrip()
            if len(s) != len(text):
                self._lead.append(text[: len(text) - len(s)])
            if not s:
                return "", ""
        if len(s) >= _OPEN_LEN:
            if s.startswith(THINK_OPEN):
                self._lead, self._pre = [], ""
                self._state = _REASONING
                self._had_reasoning = True
                return self._reason(s[_OPEN_LEN:])
        elif THINK_OPEN.startswith(s):
            self._pre = s
            return "", ""
        # not a <think> opening
        lead = "".join(self._lead)
        self._lead, self._pre = [], ""
        if self._untagged == _HOLD_UNTIL_CLOSE:
            self._state = _HOLD
            if lead:
                self._held.append(lead)
            return self._hold(s)
        if self._untagged == _AS_REASONING:
            self._state = _REASONING
            self._had_reasoning = True
            return self._reason(s)  # leading whitespace is trimmed from reasoning anyway
        self._state = _PASS
        return "", lead + s if lead else s

    def _reason(self, text: str) -> tuple[str, str]:
        s = self._part + text if self._part else text
        i = s.find(THINK_CLOSE)
        if i >= 0:
            self._part = ""
            reasoning = self._emit(s[:i], True)
            rest = s[i + _CLOSE_LEN :].lstrip()
            self._state = _PASS if rest else _ANSWER_LEAD
            return reasoning, rest
        # hold back a possible partial "</think>": it can only start at the last "<" of the last 7 characters
        n = len(s)
        p = s.rfind("<", n - _CLOSE_LEN + 1 if n >= _CLOSE_LEN else 0)
        if p >= 0 and THINK_CLOSE.startswith(s[p:]):
            self._part = s[p:]
            s = s[:p]
        else:
            self._part = ""
        return self._emit(s, False), ""

    def _emit(self, body: str, final: bool) -> str:
        """Reasoning text to release, trimming it as a whole: leading whitespace dropped, trailing held back."""
        if not self._begun:
            body = body.lstrip()
            if not body:
                return ""
            self._begun = True
        ws = self._ws
        if final:  # whitespace before </think> (or the end of the stream) is dropped
            stripped = body.rstrip()
            if ws:
                self._ws = []
                return "".join(ws) + stripped if stripped else ""
            return stripped
        if not body:
            return ""
        if body[-1].isspace():
            stripped = body.rstrip()
            if not stripped:
                ws.append(body)  # a run of whitespace: O(1) per piece, joined once
                return ""
            out = "".join(ws) + stripped if ws else stripped
            self._ws = [body[len(stripped) :]]
            return out
        if ws:
            self._ws = []
            return "".join(ws) + body
        return body

    def _hold(self, text: str) -> tuple[str, str]:
        s = self._part + text if self._part else text
        i = s.find(THINK_CLOSE)
        if i >= 0:
            self._held.append(s[:i])
            reasoning = "".join(self._held).strip()
            self._held, self._part = [], ""
            self._had_reasoning = True
            rest = s[i + _CLOSE_LEN :].lstrip()
            self._state = _PASS if rest else _ANSWER_LEAD
            return reasoning, rest
        n = len(s)
        p = s.rfind("<", n - _CLOSE_LEN + 1 if n >= _CLOSE_LEN else 0)
        if p >= 0 and THINK_CLOSE.startswith(s[p:]):
            self._part = s[p:]
            self._held.append(s[:p])
        else:
            self._part = ""
            self._held.append(s)
        return "", ""

