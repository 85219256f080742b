"""The SQLite connection, the worker thread beside it, and transactions and migrations on it.

Writes run in ``BEGIN IMMEDIATE`` transactions (:func:`write`), which take SQLite's write lock up front, so a
read-check-insert is atomic across processes sharing the file as well. WAL journal with ``synchronous=NORMAL``: a
commit appends to the WAL without waiting for the disk, and the WAL is copied back into the file (a checkpoint, which
does wait for the disk) on a second connection on the worker thread, never on the event loop.

Two ways to run an operation on the one connection:

- :meth:`SQLiteWorker.run_here`, for the request path's small indexed transactions (an admission, a settle): on the
  event loop itself, with no busy handler, when the connection is idle. A transaction of the request path takes
  0.1-0.2 ms; a hop to a thread and back costs more than that (timed in bench/RESULTS.md). When another process holds
  the write lock, SQLite answers "busy" at once, before anything is written, and the operation is handed to the thread,
  which waits for the lock (up to the busy timeout) without blocking the loop.
- :meth:`SQLiteWorker.run`, for everything whose size is not bounded (reports, the dashboard, purges, stores beside
  the ledger): on the worker thread.

An operation runs on the loop only when none is pending on the thread, so the connection is used by one thread at a
time and operations still run in the order they were asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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
log = logging.getLogger(__name__)

#: first and longest pause between two tries of a transaction another process keeps waiting (:func:`patiently`)
BUSY_PAUSE_S = 0.0002
BUSY_PAUSE_MAX_S = 0.004
#: operations between two checkpoints of the WAL (SQLite's own default checkpoints every 1,000 pages: 100 to 300 of
#: our commits, by how many requests each groups)
CHECKPOINT_EVERY = 512
#: past this many frames (64 MB at 4 KB pages) the WAL is made to start over, which stops the request path's
#: transactions, in this process and the others on the file, for one checkpoint (15-35 ms here); below it, checkpoints
#: run beside them
WAL_RESTART_FRAMES = 16_384
#: how long that checkpoint waits for other processes' writers and readers before leaving it to the next one
RESTART_WAIT_MS = 250


class SQLiteWorker:
    """One connection to ``path``: :meth:`run_here` calls ``fn(conn, *args)`` on the event loop when it can take the
    write lock at once, :meth:`run` on the worker thread."""

    def __init__(self, path: str, *, busy_timeout_ms: int, clock: Clock) -> None:
        self.path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._checkpointer: sqlite3.Connection | None = None  # used on the worker thread only
        self._on_thread = 0  # operations handed to the thread and not finished there; the loop only adds to it
        self._on_thread_lock = threading.Lock()
        self._since_checkpoint = 0
        self._checkpoints: asyncio.Future[None] | None = None

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
        if self._checkpoints is not None:
            with contextlib.suppress(Exception):
                await self._checkpoints
        executor, self._executor = self._executor, None
        if executor is None:
            return
        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            await loop.run_in_executor(executor, self._close_connection)
        executor.shutdown(wait=True)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` on the worker thread, waiting for SQLite's lock up to the busy timeout; SQLite errors
        become ``LedgerUnavailable``."""
        return await self._to_thread(self._call, fn, *args)

    async def _to_thread(self, call: Callable[..., T], fn: Callable[..., Any], *args: Any) -> T:
        executor = self._executor
        if executor is None:
            raise LedgerUnavailable("the ledger is not started")
        with self._on_thread_lock:
            self._on_thread += 1
        try:
            job = executor.submit(call, fn, *args)
        except BaseException:
            self._thread_done(None)
            raise
        job.add_done_callback(self._thread_done)  # also when cancelled before it ran
        self._count_operation()
        try:
            return await asyncio.wrap_future(job)
        except sqlite3.Error as exc:
            raise LedgerUnavailable(f"SQLite ledger {self.path}: {exc}") from exc

    async def run_here(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` on the event loop when nothing is pending on the thread, else (and when another
        process holds the write lock) on the thread. ``fn`` must be one short transaction: it runs with no busy
        handler, and it is run again on the thread after SQLite answered busy (which rolled it back)."""
        conn = self._conn
        if conn is None or self._on_thread or self._executor is None:
            return await self._to_thread(self._call_patiently, fn, *args)
        try:
            result = fn(conn, *args)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise LedgerUnavailable(f"SQLite ledger {self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise LedgerUnavailable(f"SQLite ledger {self.path}: {exc}") from exc
        else:
            self._count_operation()
            return result
        return await self._to_thread(self._call_patiently, fn, *args)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        conn = self._conn
        if conn is None:
            raise LedgerUnavailable("the ledger is closed")
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")  # the thread may wait for the lock
        try:
            return fn(conn, *args)
        finally:
            conn.execute("PRAGMA busy_timeout = 0")

    def _call_patiently(self, fn: Callable[..., T], *args: Any) -> T:
        conn = self._conn
        if conn is None:
            raise LedgerUnavailable("the ledger is closed")
        return patiently(conn, fn, args, within_s=self._busy_timeout_ms / 1000)  # the connection has no busy timeout

    def _thread_done(self, _: Future[Any] | None) -> None:
        with self._on_thread_lock:
            self._on_thread -= 1

    def _count_operation(self) -> None:
        self._since_checkpoint += 1
        if self._since_checkpoint >= CHECKPOINT_EVERY and self._checkpoints is None and not self.in_memory:
            self._since_checkpoint = 0
            self._checkpoints = asyncio.ensure_future(self._checkpoint())
            self._checkpoints.add_done_callback(self._checkpoint_done)

    async def _checkpoint(self) -> None:
        """Copy the WAL back into the file, which waits for the disk, on the thread. The connection the loop uses has
        automatic checkpoints off (one would run on the loop after a commit). On a second connection, beside the loop's
        writes. The WAL starts over only when a write finds every frame copied, which steady traffic may never allow;
        so once it holds WAL_RESTART_FRAMES, a RESTART checkpoint runs on the connection itself, the thread having it to
        itself (requests wait for it there): it keeps every process's writers out until every frame is copied, so the
        next write starts the WAL over even while other workers write steadily."""
        executor = self._executor
        if executor is None:
            return
        frames = await asyncio.wrap_future(executor.submit(self._checkpoint_beside))
        if frames >= WAL_RESTART_FRAMES:
            await self.run(restart_wal)

    def _checkpoint_beside(self) -> int:
        if self._conn is None:
            return 0
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(self.path, isolation_level=None, timeout=0)
        return checkpoint_wal(self._checkpointer)

    def _checkpoint_done(self, done: asyncio.Future[None]) -> None:
        self._checkpoints = None
        if not done.cancelled() and done.exception() is not None:  # the next checkpoint tries again
            log.warning("checkpoint of the SQLite ledger %s failed: %s", self.path, done.exception())

    def _open(self) -> None:
        if not self.in_memory:
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LedgerUnavailable(f"cannot create the directory of the SQLite ledger {self.path}: {exc}") from None
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=self._busy_timeout_ms / 1000,
                                   check_same_thread=False)  # used on the loop and on the thread, one at a time
        except sqlite3.Error as exc:
            raise LedgerUnavailable(f"cannot open the SQLite ledger {self.path}: {exc}") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            if not self.in_memory:
                set_wal(conn, self._busy_timeout_ms / 1000)
                conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.create_function("hermes_local_day", 2, local_day, deterministic=True)
            migrate(conn)
            purge_expired_holds(conn, to_micros(self._clock()))
            conn.execute("PRAGMA busy_timeout = 0")
        except sqlite3.Error as exc:
            conn.close()
            raise LedgerUnavailable(f"cannot use the SQLite ledger {self.path}: {exc}") from None
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.close()
        if conn is not None:
            conn.close()  # the last connection to close checkpoints the WAL and removes it


def checkpoint_wal(conn: sqlite3.Connection) -> int:
    """A checkpoint that waits for no reader or writer; returns how many frames the WAL holds."""
    _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(frames)


def restart_wal(conn: sqlite3.Connection) -> None:
    """A checkpoint that copies every frame and leaves the WAL to start over at the next write, waiting up to
    RESTART_WAIT_MS for other connections' writers and readers (it gives up quietly; the next one tries again)."""
    conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
    conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()


def patiently(conn: sqlite3.Connection, fn: Callable[..., T], args: tuple[Any, ...], *, within_s: float) -> T:
    """``fn(conn, *args)``, one transaction, on a connection with no busy handler, tried again every fraction of a
    millisecond while another process holds the write lock, for up to ``within_s``; blocks, so on a worker thread.
    SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20, 25... ms between tries, far longer than another worker holds
    the lock for one of our transactions, so a waiter that sleeps that long keeps missing the moments it is free
    (two serve workers on one SQLite file: p99 240-390 ms with it, 134-142 ms with this)."""
    deadline = time.monotonic() + within_s
    pause = BUSY_PAUSE_S
    while True:
        try:
            return fn(conn, *args)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 1.5, BUSY_PAUSE_MAX_S)


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """SQLite answered busy (another connection holds the lock it needs), not a real failure."""
    return (exc.sqlite_errorcode & 0xFF) == sqlite3.SQLITE_BUSY


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
