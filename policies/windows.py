"""Budget windows from the clock: where the window holding ``now`` starts, and when it resets.

Pure functions, no I/O. A window is never "reset" by a job: its start is the floor of ``now`` in the team's time zone
(midnight, Monday midnight, the 1st of the month), its end is the next such boundary. All results are aware UTC
datetimes. DST is handled by building the *local* boundary and letting :mod:`zoneinfo` place it: a midnight that does
not exist (clocks jump over it) maps to the first instant of the day, a midnight that happens twice to the first one.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from policies.types import WINDOWS

_RELATIVE = re.compile(r"^\s*(\d+)\s*(m|min|h|d|w)\s*$", re.IGNORECASE)
_RELATIVE_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def zone(tz: str | tzinfo) -> tzinfo:
    """A time zone from an IANA name (``"Europe/Berlin"``) or a ``tzinfo``."""
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def require_aware(moment: datetime, what: str = "time") -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {moment.isoformat()}")
    return moment


def local_midnight(day: date, tz: str | tzinfo) -> datetime:
    """The first instant of ``day`` in ``tz``, as UTC.

    ``fold=0`` makes a midnight that falls into a DST gap resolve with the offset *before* the transition, which is the
    transition instant itself, i.e. the first instant the local day exists.
    """
    return datetime(day.year, day.month, day.day, tzinfo=zone(tz)).astimezone(UTC)


def _first_day(window: str, day: date) -> date:
    if window == "daily":
        return day
    if window == "weekly":
        return day - timedelta(days=day.weekday())  # ISO weeks: Monday
    if window == "monthly":
        return day.replace(day=1)
    raise ValueError(f"unknown budget window {window!r} (known: {', '.join(WINDOWS)})")


def _next_first_day(window: str, first: date) -> date:
    if window == "daily":
        return first + timedelta(days=1)
    if window == "weekly":
        return first + timedelta(days=7)
    if first.month == 12:
        return date(first.year + 1, 1, 1)
    return date(first.year, first.month + 1, 1)


def window_bounds(window: str, now: datetime, tz: str | tzinfo = "UTC") -> tuple[datetime | None, datetime | None]:
    """``(start, resets_at)`` of the ``window`` holding ``now``: ``start <= now < resets_at``; ``(None, None)`` for total."""
    require_aware(now, "now")
    if window == "total":
        return None, None
    zone_ = zone(tz)
    today = now.astimezone(zone_).date()
    first = _first_day(window, today)
    start = local_midnight(first, zone_)
    end = local_midnight(_next_first_day(window, first), zone_)
    return start, end


def window_start(window: str, now: datetime, tz: str | tzinfo = "UTC") -> datetime | None:
    return window_bounds(window, now, tz)[0]


def resets_at(window: str, now: datetime, tz: str | tzinfo = "UTC") -> datetime | None:
    return window_bounds(window, now, tz)[1]


def parse_when(text: str, *, now: datetime, tz: str | tzinfo = "UTC") -> datetime:
    """A report boundary from the user: ``2025-01-31`` (local midnight), an ISO datetime (naive = local time),
    ``today``, or a span back from ``now``: ``30m``, ``12h``, ``7d``, ``2w``. Raises ``ValueError`` with the accepted forms.
    """
    require_aware(now, "now")
    try:
        return _parse_when(text, now, zone(tz))
    except OverflowError:
        raise ValueError(f"time {text!r} is out of range (years 1-9999)") from None


def _parse_when(text: str, now: datetime, zone_: tzinfo) -> datetime:
    value = text.strip()
    if value.lower() == "today":
        return local_midnight(now.astimezone(zone_).date(), zone_)
    match = _RELATIVE.match(value)
    if match:
        amount, unit = int(match.group(1)), match.group(2).lower()
        return now - timedelta(**{_RELATIVE_UNITS[unit]: amount})
    try:
        if len(value) == 10:
            return local_midnight(date.fromisoformat(value), zone_)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"cannot read time {text!r}: use YYYY-MM-DD, an ISO datetime, 'today', or a span like 12h, 7d, 2w"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone_)
    return moment.astimezone(UTC)
