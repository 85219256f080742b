"""``Retry-After``, both ways, in one place: reading it from an upstream's answer, and writing it on our own.

- :func:`parse_retry_after` reads the header as RFC 9110 allows it (delta-seconds or an HTTP date), for the upstream
  client's retry backoff;
- :func:`retry_after_seconds` and :func:`wait_ms` turn a wait into the whole seconds of our ``Retry-After`` (rounded
  up, at least 1) and the milliseconds of ``retry-after-ms``, for the rate limiter's 429s and its 503s.
"""

from __future__ import annotations

import math
from email.utils import parsedate_to_datetime
from time import time


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (``"7"``, ``"1.5"`` or an HTTP date); ``None`` when absent or
    unreadable. Never negative: a date in the past means no wait."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time(), 0.0)
    except (TypeError, ValueError):
        return None


def wait_ms(seconds: float) -> int:
    """Whole milliseconds, rounded up (at least 1), forgiving float noise (timestamps near 1.7e9 carry ~1e-7 s)."""
    return max(1, math.ceil(seconds * 1000 - 1e-3))


def retry_after_seconds(seconds: float) -> int:
    """The ``Retry-After`` value for a wait of ``seconds``: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(wait_ms(seconds) / 1000))
