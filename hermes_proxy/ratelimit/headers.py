"""OpenAI's rate-limit response headers, ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``.

They describe the tightest scope of each dimension (least remaining). ``reset`` is, as OpenAI documents it, the time
until that limit is back to its initial state (every entry has left the window), formatted as OpenAI does (``"12ms"``,
``"1s"``, ``"59.2s"``, ``"6m0s"``).
"""

from __future__ import annotations

from hermes_proxy.ratelimit.scopes import ScopeState


def format_duration(seconds: float) -> str:
    """A duration the way OpenAI writes its reset headers (Go's duration format, to the millisecond).

    >>> [format_duration(s) for s in (0, 0.012, 1, 59.2, 60, 360, 3725.5)]
    ['0s', '12ms', '1s', '59.2s', '1m0s', '6m0s', '1h2m5.5s']
    """
    ms = round(seconds * 1000)
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, frac = divmod(rest, 1000)
    secs = f"{whole}.{frac:03d}".rstrip("0") if frac else str(whole)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def ratelimit_headers(states: list[ScopeState]) -> dict[str, str]:
    """The ``x-ratelimit-*`` headers for these scope states (none for a dimension no scope limits)."""
    headers: dict[str, str] = {}
    with_rpm = [s for s in states if s.scope.rpm is not None]
    if with_rpm:
        tight = min(with_rpm, key=lambda s: (s.scope.rpm - s.requests, s.scope.rpm))  # type: ignore[operator]
        limit = tight.scope.rpm
        assert limit is not None
        headers["x-ratelimit-limit-requests"] = str(limit)
        headers["x-ratelimit-remaining-requests"] = str(max(0, limit - tight.requests))
        headers["x-ratelimit-reset-requests"] = format_duration(tight.requests_reset_s)
    with_tpm = [s for s in states if s.scope.tpm is not None]
    if with_tpm:
        tight = min(with_tpm, key=lambda s: (s.scope.tpm - s.tokens, s.scope.tpm))  # type: ignore[operator]
        limit = tight.scope.tpm
        assert limit is not None
        headers["x-ratelimit-limit-tokens"] = str(limit)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, limit - tight.tokens))
        headers["x-ratelimit-reset-tokens"] = format_duration(tight.tokens_reset_s)
    return headers
