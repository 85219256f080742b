"""A cached answer: the pieces the client was sent, in order, with the usage and cost of the call that produced them;
kept as JSON text in the store, and replayed as the same pieces (at once, or paced over the time it first took)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hermes_proxy.money import usd_from_json, usd_text
from hermes_proxy.pipeline.types import Piece
from hermes_proxy.usage import Usage

FORMAT_VERSION = 1
#: a paced replay never takes longer than this, however slow the first answer was
MAX_PACED_S = 60.0


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    pieces: tuple[Piece, ...]
    usage: Usage
    #: what the answer cost when the upstream produced it (None: an unpriced route)
    cost_usd: Decimal | None
    route: str
    #: how long the upstream took to produce it (the pace of a paced replay)
    duration_s: float

    @property
    def finish_reason(self) -> str | None:
        return next((p.finish_reason for p in reversed(self.pieces) if p.finish_reason), None)

    def to_json(self) -> str:
        return json.dumps({
            "v": FORMAT_VERSION, "route": self.route, "duration_s": round(self.duration_s, 3),
            "cost_usd": None if self.cost_usd is None else usd_text(self.cost_usd),
            "usage": [self.usage.prompt_tokens, self.usage.completion_tokens, self.usage.reasoning_tokens,
                      self.usage.estimated],
            "pieces": [_piece_json(p) for p in self.pieces],
        }, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> StoredAnswer | None:
        """The answer, or ``None`` for text this version cannot read (an entry written by another version is a miss,
        never an error)."""
        try:
            raw = json.loads(text)
            if raw.get("v") != FORMAT_VERSION:
                return None
            prompt, completion, reasoning, estimated = raw["usage"]
            pieces = tuple(Piece(delta=dict(p.get("d") or {}), tool_calls=p.get("t"), finish_reason=p.get("f"))
                           for p in raw["pieces"])
            return cls(pieces=pieces, usage=Usage(int(prompt), int(completion), int(reasoning), estimated=bool(estimated)),
                       cost_usd=usd_from_json(raw["cost_usd"]), route=str(raw["route"]),
                       duration_s=float(raw["duration_s"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    async def replay(self, *, paced: bool, sleep: Callable[[float], Awaitable[Any]]) -> AsyncIterator[Piece]:
        gap = min(self.duration_s, MAX_PACED_S) / max(1, len(self.pieces)) if paced else 0.0
        for index, piece in enumerate(self.pieces):
            if gap and index:
                await sleep(gap)
            yield Piece(delta=dict(piece.delta), tool_calls=piece.tool_calls, finish_reason=piece.finish_reason)


def _piece_json(piece: Piece) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if piece.delta:
        out["d"] = piece.delta
    if piece.tool_calls:
        out["t"] = piece.tool_calls
    if piece.finish_reason:
        out["f"] = piece.finish_reason
    return out
