"""The SQLite connection and the one worker thread that owns it; transactions and migrations on it.

``sqlite3`` blocks, so one dedicated worker thread owns the one connection and every operation is a single hop to it:
the event loop never blocks, and operations of one process are serialized by that thread. Writes run in
``BEGIN IMMEDIATE`` transactions (:func:`write`), which take SQLite's write lock up front, so a read-check-insert is
atomic across processes sharing the file as well. WAL journal with ``synchronous=NORMAL``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from hermes_proxy.errors import LedgerUnavailable
from hermes_proxy.ledger.amounts import from_micros, to_micros
from hermes_proxy.ledger.migrations import MIGRATIONS_TABLE, SQLITE, migrations_table_sql, to_apply
from hermes_proxy.ledger.protocol import Clock
from hermes_proxy.ledger.sqlite.billing import bill_expired
from policies.budget import now_utc

T = TypeVar("T")


class SQLiteWorker:
    """One connection to ``path``, owned by one thread; :meth:`run` calls ``fn(conn, *args)`` there."""

    def __init__(self, path: str, *, busy_timeout_ms: int, clock: Clock) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    @property
    def in_memory(self) -> bool:
        return self.path == ":memory:"

    async def start(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hermes-ledger")
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._open)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            await loop.run_in_executor(executor, self._close_connection)
        executor.shutdown(wait=True)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` on the worker thread; SQLite errors become ``LedgerUnavailable``."""
        executor = self._executor
        if executor is None:
            raise LedgerUnavailable("the ledger is not started")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, functools.partial(self._call, fn, *args))
        except sqlite3.Error as exc:
            raise LedgerUnavailable(f"SQLite ledger {self.path}: {exc}") from exc

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._conn is None:
            raise LedgerUnavailable("the ledger is closed")
        return fn(self._conn, *args)

    def _open(self) -> None:
        if not self.in_memory:
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LedgerUnavailable(f"cannot create the directory of the SQLite ledger {self.path}: {exc}") from None
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=self._busy_timeout_ms / 1000)
        except sqlite3.Error as exc:
            raise LedgerUnavailable(f"cannot open the SQLite ledger {self.path}: {exc}") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            if not self.in_memory:
                set_wal(conn, self._busy_timeout_ms / 1000)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.create_function("hermes_local_day", 2, local_day, deterministic=True)
            migrate(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise LedgerUnavailable(f"cannot use the SQLite ledger {self.path}: {exc}") from None
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        purge_expired_holds(conn, to_micros(self._clock()))

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def set_wal(conn: sqlite3.Connection, within_s: float) -> None:
    """Switch a new file to WAL. The switch needs the file to itself, and while another process is opening the same
    fresh file SQLite can answer "database is locked" at once, without waiting (seen with ``serve --workers 2``
    starting both workers on a new ledger). Retried until the busy timeout."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextlib.contextmanager
def write(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def read(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def migrate(conn: sqlite3.Connection) -> None:
    conn.execute(migrations_table_sql(SQLITE))
    with write(conn):
        applied = {row[0] for row in conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE}")}
        for name, statements in to_apply(applied, SQLITE):
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)",
                         (name, to_micros(now_utc())))


def purge_expired_holds(conn: sqlite3.Connection, now_micros: int) -> None:
    """Delete every expired hold, billing those that carry info as ``expired`` requests (one transaction)."""
    with contextlib.suppress(sqlite3.OperationalError), write(conn):  # busy: the next admission or purge bills them
        bill_expired(conn, None, now_micros)


def local_day(micros: int, tz: str) -> str:
    return from_micros(micros).astimezone(ZoneInfo(tz)).date().isoformat()
