"""Streaming speed of the chat as a conversation grows: tokens/s rendered and CPU per streamed token.

The scripted fake backend sends a markdown answer at a fixed rate (``--rate`` tokens/s, one token a chunk) into the
real app, headless at 120x40; the figures are measured from the first token to the end of the reply, for a fresh
chat and for chats already holding 26 and 100 messages. A chat that renders each token in time keeps up with the
rate; one that does too much per token falls behind it.

    python bench/bench_tui_stream.py [--rate 60] [--tokens 400] [--sizes 0,26,100] [--profile 26]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "tui"))
sys.path.insert(0, str(ROOT))

from fake_backend import FakeBackend, Script, wait_for  # noqa: E402

from tui.app import HermesChatApp  # noqa: E402
from tui.store import Store  # noqa: E402

PARAGRAPH = ("Recursion is a function calling **itself** on a smaller input until it reaches a base case. "
             "Each call waits for the one below it, then combines the results.\n\n")
CODE = "```python\ndef factorial(n: int) -> int:\n    return 1 if n <= 1 else n * factorial(n - 1)\n```\n\n"


def answer_tokens(count: int) -> tuple[str, ...]:
    words: list[str] = []
    text = (PARAGRAPH + CODE + "1. Find the base case.\n2. Shrink the problem.\n\n") * 50
    for piece in text.split(" "):
        words.append(piece + " ")
        if len(words) == count:
            break
    return tuple(words)


def seed(store: Store, messages: int) -> int:
    conversation = store.create_conversation("a long chat", model="hermes-4-405b")
    for n in range(messages // 2):
        store.add_message(conversation.id, "user", f"Question {n}: explain recursion again, differently.")
        row = store.add_message(conversation.id, "assistant", "", status="streaming")
        store.finish_message(row.id, content=PARAGRAPH * 3 + CODE, reasoning="Think about it." * 5,
                             status="complete", prompt_tokens=100, completion_tokens=300, cost_usd=Decimal("0.001"))
    return conversation.id


async def poll(done: Callable[[], bool], every: float, within: float = 300.0) -> None:
    deadline = time.monotonic() + within
    while not done() and time.monotonic() < deadline:  # noqa: ASYNC110 - the app offers no event to wait on
        await asyncio.sleep(every)


async def one_run(messages: int, tokens: int, rate: float) -> tuple[float, float, float]:
    store = Store.open(":memory:")
    conversation_id = seed(store, messages) if messages else None
    fake = FakeBackend(scripts=(Script(content=answer_tokens(tokens), delay=1.0 / rate),))
    app = HermesChatApp(store=store, backend=fake)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.chat_screen
        await wait_for(pilot, lambda: screen.models)
        if conversation_id is not None:
            await screen.open_conversation(conversation_id)
        await pilot.pause(0.3)
        await screen.send("Explain recursion once more")
        # poll with plain sleeps: Pilot.pause waits for every widget to be idle, a cost that grows with the chat
        await poll(lambda: screen.reply is not None and screen.reply.meter.first_token_at is not None, 0.001)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        await poll(lambda: screen.reply is None, 0.05)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    store.close()
    return (tokens - 1) / wall, cpu / tokens * 1000, cpu / wall * 100


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=60.0, help="tokens/s the fake backend sends (default 60)")
    parser.add_argument("--tokens", type=int, default=400)
    parser.add_argument("--sizes", default="0,26,100", help="messages already in the chat")
    parser.add_argument("--profile", type=int, help="profile the run with this many messages (top 25 by cumtime)")
    args = parser.parse_args()
    if args.profile is not None:
        profiler = cProfile.Profile()
        profiler.enable()
        asyncio.run(one_run(args.profile, args.tokens, args.rate))
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return 0
    print(f"fake backend at {args.rate:.0f} tok/s, {args.tokens} tokens a reply, 120x40 headless")
    for size in (int(s) for s in args.sizes.split(",")):
        rendered, cpu_ms, core = asyncio.run(one_run(size, args.tokens, args.rate))
        label = "fresh chat" if size == 0 else f"{size}-message chat"
        print(f"{label:>18}: {rendered:5.1f} tok/s rendered   {cpu_ms:5.2f} ms CPU per token   {core:3.0f}% of a core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
