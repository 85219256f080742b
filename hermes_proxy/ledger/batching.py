"""What the SQLite and PostgreSQL ledgers share when they group concurrent admissions into one transaction: handing
each caller its own decision, and freeing the hold of a caller that went away while its batch ran."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from hermes_proxy.ledger.records import Admission, Hold


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
