"""What the SQLite and PostgreSQL ledgers share when they group concurrent work into one transaction: handing each
caller its own admission decision (freeing the hold of a caller that went away while its batch ran), and the group
commit of settles."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

from hermes_proxy.ledger.records import Admission, Hold, RequestRecord

Settle = tuple[Hold, RequestRecord, Decimal | None]


def resolve(done: asyncio.Future[Any], error: BaseException | None) -> None:
    """Settle a caller's future with ``error``, or with None; a future already done (its caller left) is left."""
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


def deliver_admissions(futures: Sequence[asyncio.Future[Any]], results: Sequence[Admission | BaseException],
                       release: Callable[[Hold], Awaitable[None]], background: set[asyncio.Future[None]]) -> None:
    """Each caller gets its admission or refusal. A caller that went away meanwhile gets nothing, and an admission
    made for it is released at once (its hold would otherwise stay until the TTL)."""
    for done, result in zip(futures, results, strict=True):
        if done.done():
            if isinstance(result, Admission):
                task = asyncio.ensure_future(release(result.hold))
                background.add(task)
                task.add_done_callback(background.discard)
            continue
        if isinstance(result, BaseException):
            done.set_exception(result)
        else:
            done.set_result(result)


class GroupCommit:
    """Settles that arrive while a commit is running are grouped into the next one (at most ``max_batch`` a batch):
    each caller still returns only after its own row is committed, but 50 concurrent requests cost one commit
    instead of 50. When a batch fails, its settles are retried one by one, so one bad settle loses no other.

    ``write_batch`` and ``write_one`` write settles in the store's own way; ``resolve`` hands a caller its outcome
    (the store may translate its own errors)."""

    def __init__(self, write_batch: Callable[[list[Settle]], Awaitable[None]],
                 write_one: Callable[[Hold, RequestRecord, Decimal | None], Awaitable[None]], *,
                 max_batch: int | None = None,
                 resolve: Callable[[asyncio.Future[Any], BaseException | None], None] = resolve) -> None:
        self._write_batch = write_batch
        self._write_one = write_one
        self._max_batch = max_batch
        self._resolve = resolve
        self._pending: list[tuple[Hold, RequestRecord, Decimal | None, asyncio.Future[None]]] = []
        self._flusher: asyncio.Future[None] | None = None

    async def settle(self, hold: Hold, record: RequestRecord, cost: Decimal | None) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((hold, record, cost, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        await done

    async def drain(self) -> None:
        """Wait until the settles already accepted are committed (or have failed)."""
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher

    async def _flush(self) -> None:
        resolve_ = self._resolve
        while self._pending:
            size = self._max_batch or len(self._pending)
            batch, self._pending = self._pending[:size], self._pending[size:]
            try:
                await self._write_batch([item[:3] for item in batch])
            except asyncio.CancelledError as exc:
                for *_, done in batch + self._pending:
                    resolve_(done, exc)
                raise
            except Exception as exc:  # one failure must not lose the others: retry them one by one
                if len(batch) == 1:
                    resolve_(batch[0][3], exc)
                    continue
                for hold, record, cost, done in batch:
                    try:
                        await self._write_one(hold, record, cost)
                    except Exception as single:
                        resolve_(done, single)
                    else:
                        resolve_(done, None)
                continue
            for *_, done in batch:
                resolve_(done, None)
