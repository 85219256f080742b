"""Settles the ledger could not write, kept on disk until it can (decision 2: every request is billed).

:func:`settle_durably` is what the pipeline calls: ``ledger.settle`` with a few quick retries on a store that is down,
and when they all fail, one line appended to the :class:`Outbox`, a JSON-lines file written with ``fsync`` before the
call returns. :func:`replay` writes the waiting settles once the ledger answers again (a settle is idempotent per
request id, so one written twice is counted once), and :func:`keep_replaying` is the background task the app runs.

The file is shared safely: appends and the rewrite that drops written entries take an exclusive lock on a sidecar
``<name>.lock`` file (``flock``; several processes may share one outbox), and the rewrite is atomic (a temporary file,
``fsync``, ``os.replace``). A last line cut short by a crash is skipped on read, never fatal, and dropped by the next
rewrite; an append after one starts on a fresh line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import typing
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from hermes_proxy.errors import LedgerUnavailable
from hermes_proxy.ledger.records import Hold, RequestRecord
from policies.budget import now_utc

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: one process per outbox file
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("hermes_proxy.ledger.outbox")

#: the errors of a store that is down or unreachable: worth a retry; any other error is not retried
TRANSIENT: tuple[type[BaseException], ...] = (LedgerUnavailable, OSError, TimeoutError)
VERSION = 1


class Settles(Protocol):
    """The one ledger operation the outbox needs."""

    async def settle(self, hold: Hold, record: RequestRecord) -> None: ...


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    hold: Hold
    record: RequestRecord
    queued_at: datetime


# --- encoding: one JSON object a line; Decimal and datetime as exact strings, nested records as objects ----------


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _to_json(value)
    if isinstance(value, Decimal):
        return str(value)  # exact, exponent included
    if isinstance(value, datetime):
        return value.isoformat()  # microseconds and offset included
    return value


def _typed(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    kinds = typing.get_args(hint) or (hint,)
    nested = [kind for kind in kinds if isinstance(kind, type) and is_dataclass(kind)]
    if nested:
        return _from_json(nested[0], value)
    if Decimal in kinds:
        if not isinstance(value, str):
            raise ValueError(f"expected a decimal string, got {value!r}")
        return Decimal(value)
    if datetime in kinds:
        return datetime.fromisoformat(value)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _to_json(obj: Any) -> dict[str, Any]:
    return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}


def _from_json(cls: type[Any], data: Any) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"expected an object for {cls.__name__}, got {data!r}")
    hints = typing.get_type_hints(cls)
    unknown = set(data) - set(hints)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {', '.join(sorted(unknown))}")
    return cls(**{name: _typed(hints[name], value) for name, value in data.items()})


def encode_entry(hold: Hold, record: RequestRecord, queued_at: datetime) -> str:
    """One outbox line (with its newline)."""
    line = {"v": VERSION, "queued_at": queued_at.isoformat(), "hold": _to_json(hold), "record": _to_json(record)}
    return json.dumps(line, separators=(",", ":"), ensure_ascii=False) + "\n"


def decode_entry(data: Any) -> OutboxEntry:
    """An entry from a parsed line; ``ValueError`` (or ``TypeError``) for one this version cannot read."""
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise ValueError(f"not an outbox entry of version {VERSION}")
    return OutboxEntry(hold=_from_json(Hold, data["hold"]), record=_from_json(RequestRecord, data["record"]),
                       queued_at=datetime.fromisoformat(data["queued_at"]))


def _request_id(data: Any) -> str | None:
    try:
        request_id = data["record"]["request_id"]
    except (TypeError, KeyError):
        return None
    return request_id if isinstance(request_id, str) else None


# --- the file ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Line:
    text: str
    data: Any  # the parsed JSON, or None for a torn (unparsable) line
    entry: OutboxEntry | None  # None when this version cannot read it (it is kept as is)


def _parse(raw: bytes) -> list[_Line]:
    lines = []
    for chunk in raw.split(b"\n"):
        if not chunk.strip():
            continue
        text = chunk.decode("utf-8", errors="replace")
        try:
            data = json.loads(text)
        except ValueError:
            lines.append(_Line(text, None, None))
            continue
        try:
            entry: OutboxEntry | None = decode_entry(data)
        except (ValueError, TypeError, KeyError):
            entry = None
        lines.append(_Line(text, data, entry))
    return lines


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Outbox:
    """An append-only file of settles waiting for the ledger. Reads and writes run in a thread, never on the loop."""

    def __init__(self, path: Path, *, on_waiting: Callable[[int], None] | None = None) -> None:
        self.path = Path(path)
        self.on_waiting = on_waiting  # told the count whenever it is known anew (the metrics gauge)
        self._lock = asyncio.Lock()
        self._thread_lock = threading.Lock()
        self._replaying = asyncio.Lock()
        self._waiting = 0
        self._nonempty = asyncio.Event()

    @property
    def waiting(self) -> int:
        """Entries in the file as last seen by this process (0 before it was first read)."""
        return self._waiting

    async def wait_nonempty(self) -> None:
        await self._nonempty.wait()

    def _set_waiting(self, count: int) -> None:
        self._waiting = count
        if count:
            self._nonempty.set()
        else:
            self._nonempty.clear()
        if self.on_waiting is not None:
            self.on_waiting(count)

    async def append(self, hold: Hold, record: RequestRecord) -> None:
        """Keep one settle, durably (flushed and fsynced) before returning."""
        line = encode_entry(hold, record, now_utc())
        async with self._lock:
            await asyncio.to_thread(self._append, line)
            self._set_waiting(self._waiting + 1)

    def append_now(self, hold: Hold, record: RequestRecord) -> None:
        """:meth:`append` without the event loop: for a settle being cancelled (shutdown), where nothing can wait."""
        self._append(encode_entry(hold, record, now_utc()))
        self._set_waiting(self._waiting + 1)

    async def entries(self) -> list[OutboxEntry]:
        """The waiting settles this version can read, in the order they were kept."""
        async with self._lock:
            lines = await asyncio.to_thread(self._read)
            self._set_waiting(len([line for line in lines if line.data is not None]))
        _warn_unreadable(self.path, lines)
        return [line.entry for line in lines if line.entry is not None]

    async def remove(self, request_ids: Collection[str]) -> int:
        """Drop the entries of ``request_ids`` (and torn lines) in one atomic rewrite; the count left."""
        async with self._lock:
            left = await asyncio.to_thread(self._rewrite_without, frozenset(request_ids))
            self._set_waiting(left)
        return left

    # --- on a worker thread, under the locks ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """This process's threads, then every process (flock on a sidecar file: the outbox itself is replaced)."""
        with self._thread_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if fcntl is None:  # pragma: no cover
                yield
                return
            fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock

    def _append(self, line: str) -> None:
        data = line.encode()
        with self._locked():
            created = not self.path.exists()
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # a torn last line stays alone on its line, never glued to this one
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                _fsync_dir(self.path.parent)

    def _read(self) -> list[_Line]:
        with self._locked():
            try:
                raw = self.path.read_bytes()
            except FileNotFoundError:
                return []
        return _parse(raw)

    def _rewrite_without(self, request_ids: frozenset[str]) -> int:
        with self._locked():
            try:
                raw = self.path.read_bytes()
            except FileNotFoundError:
                return 0
            # read again under the lock: lines appended since the entries were read are kept
            keep = [line for line in _parse(raw) if line.data is not None and _request_id(line.data) not in request_ids]
            if not keep:
                self.path.unlink()
                _fsync_dir(self.path.parent)
                return 0
            temp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                _write_all(fd, "".join(line.text + "\n" for line in keep).encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self.path)
            _fsync_dir(self.path.parent)
            return len(keep)


def _warn_unreadable(path: Path, lines: Sequence[_Line]) -> None:
    torn = sum(1 for line in lines if line.data is None)
    if torn:
        log.warning("outbox %s: skipped %d unreadable line(s) (a write cut short by a crash); the next rewrite drops "
                    "them", path, torn)
    unknown = [line.text for line in lines if line.data is not None and line.entry is None]
    if unknown:
        log.warning("outbox %s: kept %d entr%s this version cannot read: %s", path, len(unknown),
                    "y" if len(unknown) == 1 else "ies", unknown[0][:300])


# --- settling through it -------------------------------------------------------------------------------------------


async def settle_durably(
    ledger: Settles,
    outbox: Outbox | None,
    hold: Hold,
    record: RequestRecord,
    *,
    attempts: int = 3,
    backoff_s: Sequence[float] = (0.05, 0.25, 1.0),
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> bool:
    """Settle ``record``; ``True`` once the ledger has it. A store that is down is retried (``attempts`` in all,
    ``backoff_s[i]`` before retry ``i + 1``, the last value repeating); when every attempt fails the settle goes to
    the outbox to be written later, and ``False`` is returned. Never raises; cancelled (the caller shields it, so only
    at shutdown), it keeps the settle in the outbox before letting the cancellation through."""
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    rid = record.request_id
    error: BaseException | None = None
    try:
        for attempt in range(attempts):
            if attempt:
                await sleep(backoff_s[min(attempt - 1, len(backoff_s) - 1)] if backoff_s else 0)
            try:
                await ledger.settle(hold, record)
                if attempt:
                    log.info("request %s: settled on attempt %d", rid, attempt + 1)
                return True
            except TRANSIENT as exc:
                error = exc
                log.warning("request %s: settle attempt %d of %d failed: %s", rid, attempt + 1, attempts, exc)
            except ValueError:
                log.exception("request %s: the ledger refused its record; it can never be written: %s", rid,
                              json.dumps(_to_json(record)))
                return False
            except Exception as exc:
                error = exc
                log.exception("request %s: unexpected error settling; not retried", rid)
                break
        if outbox is None:
            log.error("request %s: could not settle (%s) and there is no outbox; its hold expires by itself: %s",
                      rid, error, json.dumps(_to_json(record)))
            return False
        try:
            await outbox.append(hold, record)
        except Exception:
            log.exception("request %s: could not settle (%s) nor keep it in the outbox %s: %s", rid, error,
                          outbox.path, json.dumps(_to_json(record)))
            return False
        log.warning("request %s: could not settle (%s); kept in the outbox %s until the ledger is back", rid, error,
                    outbox.path)
        return False
    except asyncio.CancelledError:
        if outbox is not None:
            try:
                outbox.append_now(hold, record)
            except Exception:
                log.exception("request %s: settle cancelled and not kept: %s", rid, json.dumps(_to_json(record)))
            else:
                log.warning("request %s: settle cancelled; kept in the outbox %s", rid, outbox.path)
        raise


async def replay(ledger: Settles, outbox: Outbox) -> int:
    """Settle the waiting entries in order and drop those written; returns how many were. Stops at the first entry
    the store is still down for (the rest stay); an entry the ledger refuses as invalid is dropped (logged in full),
    any other error keeps that entry and goes on. Appends may run meanwhile: they are kept."""
    async with outbox._replaying:
        entries = await outbox.entries()
        done: list[str] = []
        written = 0
        try:
            for entry in entries:
                rid = entry.record.request_id
                try:
                    await ledger.settle(entry.hold, entry.record)
                except TRANSIENT as exc:
                    log.debug("outbox replay stopped at request %s: %s", rid, exc)
                    break
                except ValueError:
                    log.exception("outbox: the ledger refused request %s; dropped, it can never be written: %s", rid,
                                  json.dumps(_to_json(entry.record)))
                    done.append(rid)
                except Exception:
                    log.exception("outbox: unexpected error settling request %s; kept", rid)
                else:
                    done.append(rid)
                    written += 1
        finally:
            if done:
                await outbox.remove(done)
        return written


async def keep_replaying(ledger: Settles, outbox: Outbox, *, every_s: float,
                         sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
    """The app's background task: replay once at start, then every ``every_s`` seconds while settles wait (idle
    while the outbox is empty). Runs until cancelled."""
    while True:
        try:
            waiting_before = outbox.waiting
            written = await replay(ledger, outbox)
            if written:
                log.info("outbox: wrote %d waiting settle(s) to the ledger", written)
            if outbox.waiting:
                log.warning("outbox: %d settle(s) are waiting in %s for the ledger; next try in %gs",
                            outbox.waiting, outbox.path, every_s)
            elif waiting_before and not written:
                log.info("outbox: no settles are waiting any more")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("outbox: replay failed; next try in %gs", every_s)
        if not outbox.waiting:
            await outbox.wait_nonempty()
        await sleep(every_s)
