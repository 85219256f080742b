"""Per-chunk cost of the reasoning hot path: ThinkSplitter, OutputShaper, SSE decode/encode.

A long stream with reasoning: ~30k tokens of reasoning and ~2k tokens of answer (about 4 characters per token), fed in
~4-character chunks as a token-by-token upstream stream would. Run: ``.venv/bin/python bench/bench_splitter.py``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import orjson

from hermes_proxy.reasoning import OutputShaper, ThinkSplitter
from hermes_proxy.sse import SSEDecoder, encode_event

WORDS = ("the", "model", "considers", "<b>", "x < y", "and", "then", "checks", "2+2", "again", "résumé", "日本",
         "🙂", "\n", "\n\n", "  ", "tag-like </th text", "<think", "answer")


def make_text(n_chars: int, rng: random.Random) -> str:
    out: list[str] = []
    size = 0
    while size < n_chars:
        w = rng.choice(WORDS)
        out.append(w + " ")
        size += len(w) + 1
    return "".join(out)[:n_chars]


def chunks_of(text: str, rng: random.Random) -> list[str]:
    out, i = [], 0
    while i < len(text):
        n = rng.randint(2, 6)
        out.append(text[i : i + n])
        i += n
    return out


def timeit(label: str, n_chunks: int, fn: Callable[[], object], repeat: int = 5) -> float:
    best = min(_once(fn) for _ in range(repeat))
    per = best / n_chunks * 1e6
    print(f"{label:<52} {per:7.3f} µs/chunk   ({best * 1e3:7.1f} ms for {n_chunks} chunks)")
    return per


def _once(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    rng = random.Random(42)
    reasoning = make_text(30_000 * 4, rng)
    answer = make_text(2_000 * 4, rng)
    text = f"<think>\n{reasoning}\n</think>\n\n{answer}"
    chunks = chunks_of(text, rng)
    n = len(chunks)
    print(f"stream: {len(text)} chars, {n} chunks (mean {len(text) / n:.1f} chars/chunk)\n")

    def split_only() -> None:
        s = ThinkSplitter()
        for c in chunks:
            s.feed(c)
        s.finish()

    def split_expect() -> None:
        s = ThinkSplitter(expect_reasoning=True)
        for c in chunks:
            s.feed(c)
        s.finish()

    def split_and_shape(fmt: str) -> Callable[[], None]:
        def run() -> None:
            s = ThinkSplitter()
            shaper = OutputShaper(fmt)  # type: ignore[arg-type]
            for c in chunks:
                r, a = s.feed(c)
                if r or a:
                    shaper.shape(r, a)
                shaper.has_content  # noqa: B018  # what a budget check reads per chunk
            r, a = s.finish()
            shaper.shape(r, a)
            shaper.finish()
            assert shaper.content_text.startswith(answer[:20].lstrip())
        return run

    def loop_only() -> None:
        for c in chunks:
            len(c)

    base = timeit("empty loop (baseline)", n, loop_only)
    timeit("ThinkSplitter.feed", n, split_only)
    timeit("ThinkSplitter.feed (expect_reasoning, tag present)", n, split_expect)
    for fmt in ("parsed", "raw", "hidden"):
        timeit(f"ThinkSplitter + OutputShaper({fmt!r})", n, split_and_shape(fmt))

    # the SSE side of the same stream: decode upstream bytes, encode client chunks
    wire = b"".join(encode_event({"id": "c", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"content": c}, "finish_reason": None}]}) for c in chunks)
    net = [wire[i : i + 1400] for i in range(0, len(wire), 1400)]  # MTU-sized network reads

    def decode() -> None:
        d = SSEDecoder()
        for piece in net:
            for event in d.feed(piece):
                orjson.loads(event.data)
        d.finish()

    def encode() -> None:
        for c in chunks:
            encode_event({"id": "c", "object": "chat.completion.chunk", "choices": [
                {"index": 0, "delta": {"reasoning_content": c, "reasoning": c}, "finish_reason": None}]})

    # pathological streams: a degenerate newline loop inside the reasoning, and text full of "<" near chunk ends
    newlines = ["<think>\n", *(["\n"] * 100_000), "x</think>ok"]
    angles = ["<think>\n", *(["a <"] * 100_000), "</think>ok"]

    def run_chunks(chunks_: list[str]) -> Callable[[], None]:
        def run() -> None:
            s = ThinkSplitter()
            for c in chunks_:
                s.feed(c)
            s.finish()
        return run

    timeit("ThinkSplitter.feed, 100k-newline run in reasoning", len(newlines), run_chunks(newlines))
    timeit("ThinkSplitter.feed, '<' ending every chunk", len(angles), run_chunks(angles))

    timeit("SSEDecoder.feed + orjson.loads (per event)", n, decode)
    timeit("encode_event (per client chunk)", n, encode)
    print(f"\n(baseline loop overhead {base:.3f} µs/chunk is included in every figure)")


if __name__ == "__main__":
    main()
