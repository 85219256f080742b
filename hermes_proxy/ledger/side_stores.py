"""What the stores that live beside the ledger, in its database (stored responses, the alert outbox, the response
cache), have in common: which connection they use, and when they delete their expired rows."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any

Run = Callable[..., Awaitable[Any]]
Connection = Callable[[], AbstractAsyncContextManager[Any]]
#: expired rows are deleted by the next write at most this often (a full scan of an expiry index on every write of the
#: request path would not be cheap)
PURGE_EVERY = timedelta(minutes=10)


class PurgeSchedule:
    """Says when a store's next write should also delete its expired rows: at most every :data:`PURGE_EVERY`."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._next_purge: datetime | None = None

    def _purge_due(self, now: datetime) -> bool:
        if self._next_purge is not None and now < self._next_purge:
            return False
        self._next_purge = now + PURGE_EVERY
        return True


def ledger_database(ledger: object) -> tuple[Run | None, Connection | None]:
    """``ledger``'s own connection for a store beside it: the SQLite ledger's worker (``run(fn, *args)`` calls
    ``fn(conn, *args)`` on its thread), or the PostgreSQL ledger's pool (``connection()``, whose failures are
    ``LedgerUnavailable``); neither for any other ledger (test fakes), whose stores live in memory."""
    from hermes_proxy.ledger.sqlite import SQLiteLedger

    if isinstance(ledger, SQLiteLedger):
        return ledger._worker.run, None
    pg = sys.modules.get("hermes_proxy.ledger.postgres")  # loaded already when the ledger is one
    if pg is not None and isinstance(ledger, pg.PostgresLedger):
        return None, ledger._conn
    return None, None
