"""Group admission and group commit: concurrent reservations and settles share one transaction.

Work that arrives in the same turn of the event loop, or while a batch waits on the worker thread, is decided in the
next batch; every caller still gets its own result (or error), and a settle returns only after its own row is
committed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from hermes_proxy.errors import LedgerUnavailable
from hermes_proxy.ledger.amounts import to_micros
from hermes_proxy.ledger.batching import GroupCommit, Settle, deliver_admissions
from hermes_proxy.ledger.batching import resolve as shared_resolve
from hermes_proxy.ledger.protocol import Clock
from hermes_proxy.ledger.queries import PURGE_EVERY
from hermes_proxy.ledger.records import Admission, Hold, KeyRecord, RequestRecord
from hermes_proxy.ledger.spans import Span
from hermes_proxy.ledger.sqlite.statements import many_expired_holds, reserve_batch, settle_batch
from hermes_proxy.ledger.sqlite.worker import SQLiteWorker
from policies.types import TeamPolicy

#: runs ``fn(conn, *args)`` on the connection (:meth:`SQLiteWorker.run_here`)
Runner = Callable[..., Awaitable[Any]]
#: a team with more expired holds than this to bill has its admissions decided on the worker thread
LOOP_EXPIRED_HOLDS = 64
#: a reservation waiting for its batch: what ``reserve_batch`` decides it from, and the caller's future
Waiting = tuple[TeamPolicy, KeyRecord | None, Hold, datetime, tuple[Span, ...], tuple[str, ...],
                "asyncio.Future[Admission]"]


class GroupAdmission:
    """Reservations waiting while a batch runs are decided in the next transaction, one after the other in arrival
    order, each seeing the holds of those before it (and its team's expired holds billed). Same decisions as one
    transaction each (the write lock is held throughout), at one commit per batch. Every team's expired holds are
    billed every PURGE_EVERY, in the same transaction, on the worker thread (how many there are has no bound)."""

    def __init__(self, worker: SQLiteWorker, release: Callable[[Hold], Awaitable[None]]) -> None:
        self._worker = worker
        self._release = release
        self._pending: list[Waiting] = []
        self._flusher: asyncio.Future[None] | None = None
        self._background: set[asyncio.Future[None]] = set()
        self._next_purge: datetime | None = None

    async def reserve(
        self, policy: TeamPolicy, key: KeyRecord | None, hold: Hold, moment: datetime, spans: tuple[Span, ...],
        price_keys: tuple[str, ...] = (),
    ) -> Admission:
        done: asyncio.Future[Admission] = asyncio.get_running_loop().create_future()
        self._pending.append((policy, key, hold, moment, spans, price_keys, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        return await done

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            moment = max(item[3] for item in batch)
            purge = self._next_purge is None or moment >= self._next_purge
            if purge:
                self._next_purge = moment + PURGE_EVERY
            try:
                run = self._worker.run if purge or await self._unbounded(batch) else self._worker.run_here
                results = await run(reserve_batch, [item[:6] for item in batch], purge)
            except asyncio.CancelledError as exc:
                for item in batch + self._pending:
                    resolve(item[6], exc)
                raise
            except Exception as exc:
                for item in batch:
                    resolve(item[6], exc)
                continue
            deliver_admissions([item[6] for item in batch], results, self._release, self._background)

    async def _unbounded(self, batch: list[Waiting]) -> bool:
        """Whether deciding ``batch`` could take longer than the event loop should wait: a budget window with a
        partial-hour edge (a zone whose offset is not whole hours) sums raw request rows, as many as that hour holds;
        a team with many expired holds (a crashed worker's streams) bills them all first."""
        if any(span.edges for item in batch for span in item[4]):
            return True
        teams: dict[str, int] = {}
        for policy, _, _, moment, _, _, _ in batch:
            teams[policy.name] = max(teams.get(policy.name, 0), to_micros(moment))
        return await self._worker.run_here(many_expired_holds, teams, LOOP_EXPIRED_HOLDS)


def group_commit(run: Runner, clock: Clock) -> GroupCommit:
    """Settles grouped into one transaction (see :class:`~hermes_proxy.ledger.batching.GroupCommit`)."""

    async def write_batch(items: list[Settle]) -> None:
        await run(settle_batch, items, clock())

    async def write_one(hold: Hold, record: RequestRecord, cost: Decimal | None) -> None:
        await run(settle_batch, [(hold, record, cost)], clock())

    return GroupCommit(write_batch, write_one, resolve=resolve)


def resolve(done: asyncio.Future[Any], error: BaseException | None) -> None:
    """As :func:`~hermes_proxy.ledger.batching.resolve`, SQLite's own errors told as the ledger being unavailable."""
    shared_resolve(done, LedgerUnavailable(f"SQLite ledger: {error}") if isinstance(error, sqlite3.Error) else error)
