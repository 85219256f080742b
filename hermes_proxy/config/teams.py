"""The ``[teams.NAME]`` sections: budgets, allowed models, reasoning rule, rate limits, into :mod:`policies.types`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hermes_proxy.config import reader as read
from hermes_proxy.config.types import DEFAULT_TEAM
from hermes_proxy.errors import ConfigError
from policies.types import (
    ALERT_FORMATS,
    REASONING_RULES,
    WINDOWS,
    AlertRule,
    BudgetRule,
    RateLimitRule,
    TeamPolicy,
)


def _rate(t: Mapping[str, Any], key: str, where: str) -> RateLimitRule | None:
    if key not in t:
        return None
    r = read.table(t, key, where)
    w = f"{where}{key}."
    read.no_unknown(r, w, {"requests_per_minute", "tokens_per_minute"})
    return RateLimitRule(
        requests_per_minute=read.integer(r, "requests_per_minute", w, None),
        tokens_per_minute=read.integer(r, "tokens_per_minute", w, None),
    )


def _alerts(team: Mapping[str, Any], where: str) -> tuple[AlertRule, ...]:
    """``alerts = { url, format, at_percent }`` or an array of such tables."""
    if "alerts" not in team:
        return ()
    raw = team["alerts"]
    tables = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(tables, list) or not tables:
        raise ConfigError(where + "alerts", "must be a table { url, format, at_percent } or an array of them")
    rules: list[AlertRule] = []
    for index, a in enumerate(tables):
        w = f"{where}alerts." if isinstance(raw, Mapping) else f"{where}alerts[{index}]."
        if not isinstance(a, Mapping):
            raise ConfigError(w[:-1], "must be a table { url, format, at_percent }")
        read.no_unknown(a, w, {"url", "format", "at_percent", "timeout_s", "retry_backoff_s"})
        url = read.text(a, "url", w)
        if url is None:
            raise ConfigError(w + "url", "is required (the webhook to POST alerts to)")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(w + "url", f"must be an http:// or https:// URL; got {url!r}")
        fmt = read.text(a, "format", w, "json")
        if fmt not in ALERT_FORMATS:
            raise ConfigError(w + "format", f"must be one of {', '.join(ALERT_FORMATS)}; got {fmt!r}")
        percents = a.get("at_percent", [50, 80, 100])
        if (not isinstance(percents, list)
                or not all(isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 100 for p in percents)):
            raise ConfigError(w + "at_percent", f"must be an array of whole percentages 1..100; got {percents!r}")
        rules.append(AlertRule(
            url=url, format=fmt, at_percent=tuple(sorted(set(percents))),
            timeout_s=float(read.positive(a, "timeout_s", w, 10.0)),
            retry_backoff_s=float(read.positive(a, "retry_backoff_s", w, 5.0)),
        ))
    if len({r.url for r in rules}) != len(rules):
        raise ConfigError(where + "alerts", "the same url is listed twice")
    return tuple(rules)


def read_teams(t: Mapping[str, Any], aliases: set[str]) -> tuple[TeamPolicy, ...]:
    result: list[TeamPolicy] = []
    for name, team in t.items():
        w = f"teams.{name}."
        if not isinstance(team, Mapping):
            raise ConfigError(w[:-1], "must be a table")
        read.no_unknown(team, w, {"budgets", "models", "reasoning", "max_tokens", "timezone", "rate_limits",
                              "key_rate_limits", "key_limit_usd", "max_prompt_tokens", "prompt_limit", "alerts",
                              "cache"})
        budgets_raw = team.get("budgets", [])
        if not isinstance(budgets_raw, list):
            raise ConfigError(w + "budgets", "must be an array of { window, limit_usd, soft_limit_usd }")
        budgets: list[BudgetRule] = []
        for index, b in enumerate(budgets_raw):
            bw = f"{w}budgets[{index}]."
            if not isinstance(b, Mapping):
                raise ConfigError(bw[:-1], "must be a table { window, limit_usd, soft_limit_usd }")
            read.no_unknown(b, bw, {"window", "limit_usd", "soft_limit_usd"})
            window = read.text(b, "window", bw)
            if window not in WINDOWS:
                raise ConfigError(bw + "window", f"must be one of {', '.join(WINDOWS)}; got {window!r}")
            if any(existing.window == window for existing in budgets):
                raise ConfigError(bw + "window", f"duplicate {window} budget")
            limit = read.usd(b, "limit_usd", bw)
            if limit is None:
                raise ConfigError(bw + "limit_usd", "is required")
            soft = read.usd(b, "soft_limit_usd", bw)
            if soft is not None and soft > limit:
                raise ConfigError(bw + "soft_limit_usd", f"({soft}) must not exceed limit_usd ({limit})")
            budgets.append(BudgetRule(window=window, limit_usd=limit, soft_limit_usd=soft))
        models = team.get("models")
        if models is not None:
            if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
                raise ConfigError(w + "models", "must be an array of model aliases")
            for m in models:
                if m not in aliases:
                    raise ConfigError(w + "models", f"unknown model alias {m!r} (known: {', '.join(sorted(aliases))})")
        rule = read.text(team, "reasoning", w, "allow")
        if rule not in REASONING_RULES:
            raise ConfigError(w + "reasoning", f"must be one of {', '.join(REASONING_RULES)}; got {rule!r}")
        tz = read.text(team, "timezone", w, "UTC")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(w + "timezone", f"unknown time zone {tz!r} (use an IANA name like Europe/Berlin)") from None
        prompt_limit = read.text(team, "prompt_limit", w, "refuse")
        if prompt_limit not in ("refuse", "warn"):
            raise ConfigError(w + "prompt_limit", f"must be 'refuse' or 'warn'; got {prompt_limit!r}")
        result.append(TeamPolicy(
            name=name,
            budgets=tuple(budgets),
            models=tuple(models) if models is not None else None,
            reasoning="allow" if rule in ("on", "off") else rule,
            reasoning_default={"on": True, "off": False}.get(rule),
            max_tokens=read.integer(team, "max_tokens", w, None),
            timezone=tz,
            rate_limits=_rate(team, "rate_limits", w),
            key_rate_limits=_rate(team, "key_rate_limits", w),
            key_limit_usd=read.usd(team, "key_limit_usd", w),
            max_prompt_tokens=read.integer(team, "max_prompt_tokens", w, None),
            prompt_limit=prompt_limit,
            alerts=_alerts(team, w),
            cache=read.flag(team, "cache", w, False),
        ))
    if not result:
        result.append(TeamPolicy(name=DEFAULT_TEAM))
    return tuple(result)
