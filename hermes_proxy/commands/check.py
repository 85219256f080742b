"""``hermes-proxy check-config``, and the start-up report ``serve`` prints: what would run, and what to fix first."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hermes_proxy.commands.workers import workers_wanted
from hermes_proxy.config import (
    DEFAULT_KEY_ENVS,
    UPSTREAM_KINDS,
    Config,
    UpstreamConfig,
    default_config_path,
    default_data_dir,
    load_config,
)
from hermes_proxy.money import format_usd
from hermes_proxy.pricing import Prices, resolve_prices
from hermes_proxy.tokens import TokenCounter, load_token_counter
from hermes_proxy.upstreams import dialect_for

BUILT_IN_DEFAULTS = ("hermes-4-405b and hermes-4-70b on Nous Portal and/or OpenRouter when $NOUS_API_KEY or "
                     "$OPENROUTER_API_KEY is set, else on the simulated Hermes")


def workers_line(config: Config, asked: str | None = None) -> str:
    """How many processes ``serve`` runs (``asked``: its ``--workers``), and why."""
    wanted = workers_wanted(asked, config)
    if wanted.why_one is not None:
        return f"1 (\"auto\", but {wanted.why_one})"
    why = '"auto": one per core' if wanted.source == "auto" else wanted.source
    return f"{wanted.count} ({why})"


def describe(config: Config, counter: TokenCounter, prices: Prices, *, workers_asked: str | None = None) -> str:
    """What would run: upstreams, models and their routes with prices, teams, ledger, tokenizer."""
    lines: list[str] = []
    if config.source is not None:
        lines.append(f"config:    {config.source}")
    else:
        lines.append(f"config:    built-in defaults (no file at {default_config_path()})")
    lines.append(f"tokenizer: {counter.name}")
    if counter.warning:
        lines.append(f"           ({counter.warning})")
    lines.append(f"ledger:    {_without_password(config.ledger.url)}")
    auth = "none (anyone who can reach the port; local use only)" if config.server.auth == "none" else "team keys"
    lines.append(f"auth:      {auth}")
    lines.append(f"workers:   {workers_line(config, workers_asked)}")
    if config.server.cors_origins:
        lines.append(f"cors:      browser apps from {', '.join(config.server.cors_origins)}")
    lines.append("upstreams:")
    for upstream in config.upstreams:
        detail = dialect_for(upstream).describe()
        key = ""
        if upstream.api_key_env and upstream.needs_key:
            state = "set" if upstream.api_key else "NOT SET: left out"
            key = f"  key: ${upstream.api_key_env} {state}"
        lines.append(f"  - {upstream.name} ({upstream.kind}): {detail}{key}")
    lines.append("models:")
    for model in config.models:
        lines.append(f"  - {model.alias} (context {model.context_window:,}; also :thinking and :fast)")
        usable = config.usable_routes(model)
        for route in model.routes:
            if route not in usable:
                lines.append(f"      LEFT OUT {route.upstream} -> {route.model}: "
                             f"${config.upstream(route.upstream).api_key_env} is not set")
                continue
            price = prices.get(route)
            role = "primary " if route == usable[0] else "failover"
            if price is None:
                cost = "UNPRICED: requests are recorded with an unknown cost and cannot be held to budgets"
            else:
                cost = (f"{format_usd(price.input_usd_per_mtok)} in / {format_usd(price.output_usd_per_mtok)} out "
                        f"per Mtok ({price.source})")
            lines.append(f"      {role} {route.upstream} -> {route.model}: {cost}")
    lines.append("teams:")
    for team in config.teams:
        budgets = ", ".join(f"{b.window} ${b.limit_usd}" + (f" (soft ${b.soft_limit_usd})" if b.soft_limit_usd else "")
                            for b in team.budgets) or "no budget"
        models = ", ".join(team.models) if team.models is not None else "all models"
        lines.append(f"  - {team.name}: {budgets}; {models}; reasoning {team.reasoning}"
                     + (f"; max_tokens {team.max_tokens}" if team.max_tokens else "") + f"; tz {team.timezone}")
        if team.max_prompt_tokens:
            lines.append(f"      prompts over {team.max_prompt_tokens:,} tokens: "
                         + ("refused (400)" if team.prompt_limit == "refuse" else "served with a warning header"))
        if team.cache:
            lines.append("      response cache: on for deterministic requests (temperature 0 or a seed); "
                         "x-hermes-cache: on|off|refresh decides per request")
        if team.alerts:
            lines.append("      alerts: " + "; ".join(
                f"{a.format} {a.url} at {'/'.join(map(str, a.at_percent))}%" for a in team.alerts)
                + ", soft limit, hard limit, price rises")
    lines.append("cache:     " + cache_summary(config))
    return "\n".join(lines)


def cache_summary(config: Config) -> str:
    cache = config.cache
    teams = [t.name for t in config.teams if t.cache]
    if not teams:
        return "off (no team has cache = true)"
    where = "Redis " + _without_password(cache.url) if cache.url else "the ledger's database"
    charge = "free" if cache.hit_cost_fraction == 0 else f"{cache.hit_cost_fraction:%} of the first cost"
    return (f"teams {', '.join(teams)}; in {where}; kept {cache.ttl_s / 3600:g} h; at most {cache.max_entry_bytes:,} "
            f"bytes an answer and {cache.max_team_bytes:,} a team; hits {charge}, replayed {cache.replay}")


def warnings_for(config: Config, prices: Prices) -> list[str]:
    warnings: list[str] = []
    if config.source is not None and not config.models:
        what = "no upstreams and no models" if not config.upstreams else "no models ([models.<alias>] routes)"
        warnings.append(f"{config.source} configures {what}: every chat request would be answered 404 "
                        f"model_not_found. The built-in defaults ({BUILT_IN_DEFAULTS}) apply only when there is no "
                        "config file at all: start from config.example.toml, or run without this file")
    # upstreams left out for want of a key are in left_out_notice(), said once
    for model in config.models:
        for route in config.usable_routes(model):
            if prices.get(route) is None:
                warnings.append(f"model {model.alias!r} route {route.label}: no price; cost will be recorded as unknown")
    for upstream in config.upstreams:
        warnings += [f"upstream {upstream.name!r} ({upstream.kind}) {w}" for w in dialect_for(upstream).warnings()]
    if config.server.auth == "keys" and config.server.admin_key is None:
        warnings.append(f"no admin key (${config.server.admin_key_env}): /admin endpoints are off; "
                        "create team keys with `hermes-proxy keys create`")
    return warnings


def left_out_notice(config: Config) -> list[str]:
    """The loud block at start: upstreams left out for want of an API key, how to set them, what that leaves."""
    keyless = config.keyless_upstreams
    if not keyless:
        return []
    lines = [f"!! {len(keyless)} upstream{'s' if len(keyless) != 1 else ''} LEFT OUT: API key not set in the "
             "environment; no request is sent to them. To use them, stop the proxy and:"]
    lines += [f"!!     export {upstream.api_key_env}=...{_no_key_hint(upstream)}" for upstream in keyless]
    lines.append("!!   then start it again (a SIGHUP reload does not see new environment variables).")
    for model in config.models:
        usable = config.usable_routes(model)
        if not usable:
            lines.append(f"!! model '{model.alias}': no route left; its requests are refused at once "
                         "(503 model_unavailable)")
        elif len(usable) < len(model.routes):
            lines.append(f"!! model '{model.alias}': served by {', '.join(r.upstream for r in usable)} only")
    working = [m.alias for m in config.models if config.usable_routes(m)]
    if working:
        lines.append(f"!! models that answer now: {', '.join(working)}")
    return lines


def _no_key_hint(upstream: UpstreamConfig) -> str:
    if not UPSTREAM_KINDS[upstream.kind].key_required and upstream.api_key_env not in DEFAULT_KEY_ENVS.values():
        return f"    # {upstream.name}; or delete its api_key_env if it needs no key"
    return f"    # {upstream.name} ({upstream.kind})"


def add_parser(subparsers: Any) -> None:
    check = subparsers.add_parser("check-config", help="validate a config file and print what would run")
    check.add_argument("path", help="config file to check")
    check.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.path)
    counter = load_token_counter(config.tokens, data_dir=default_data_dir())
    prices = resolve_prices(config)
    print(describe(config, counter, prices))
    notice = left_out_notice(config)
    for line in notice:
        print(line)
    warnings = warnings_for(config, prices)
    for warning in warnings:
        print(f"warning: {warning}")
    notes = [f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}"] if warnings else []
    if notice:
        left = len(config.keyless_upstreams)
        notes.append(f"{left} upstream{'s' if left != 1 else ''} left out")
    print("config OK" + (f" ({', '.join(notes)})" if notes else ""))
    return 0


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, host = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}"))
