"""Each TOML section read into its frozen type, every check made here, every error naming its dotted key.

:func:`parse_config` reads the whole document; the teams section (budgets, rate limits) is in
:mod:`hermes_proxy.config.teams`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from hermes_proxy.config import reader as read
from hermes_proxy.config.environ import secret_from_env
from hermes_proxy.config.paths import default_data_dir
from hermes_proxy.config.teams import read_teams
from hermes_proxy.config.types import (
    DEFAULT_TEAM,
    UPSTREAM_KINDS,
    CacheConfig,
    ChatConfig,
    Config,
    LedgerConfig,
    ModelConfig,
    RateLimitsConfig,
    ResponsesConfig,
    Route,
    Sampling,
    ServerConfig,
    TokensConfig,
    UpstreamConfig,
)
from hermes_proxy.errors import ConfigError

_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::(\d{1,5}))?")


def parse_config(data: Mapping[str, Any], *, env: Mapping[str, str], source: Path | None = None) -> Config:
    """A :class:`Config` from parsed TOML; ``env`` resolves the secrets the config names; ``source`` is the file
    (relative paths in it are relative to its folder)."""
    read.no_unknown(data, "", {"server", "upstreams", "models", "teams", "ledger", "sampling", "tokens", "rate_limits",
                               "chat", "responses", "cache"})
    server = read_server(read.table(data, "server"), env)
    upstreams = read_upstreams(data.get("upstreams", []), env)
    models = read_models(read.table(data, "models"), {u.name: u for u in upstreams})
    teams = read_teams(read.table(data, "teams"), {m.alias for m in models})
    ledger = read_ledger(read.table(data, "ledger"), source)
    sampling = read_sampling(read.table(data, "sampling"))
    tokens = read_tokens(read.table(data, "tokens"), source)
    rate_limits = read_rate_limits(read.table(data, "rate_limits"))
    chat = read_chat(read.table(data, "chat"), {t.name for t in teams}, {m.alias for m in models})
    responses = read_responses(read.table(data, "responses"))
    cache = read_cache(read.table(data, "cache"))
    return Config(
        server=server, upstreams=upstreams, models=models, teams=teams, ledger=ledger, sampling=sampling,
        tokens=tokens, rate_limits=rate_limits, chat=chat, responses=responses, cache=cache, source=source,
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(server: ServerConfig, host: str, key: str = "server.host") -> None:
    """Refuse ``auth = "none"`` on a host other machines can reach, unless ``allow_public_without_auth`` says so."""
    if server.auth != "none" or server.allow_public_without_auth or is_loopback(host):
        return
    raise ConfigError(key, f'auth = "none" on host {host!r} would let anyone who can reach the port spend your '
                           'upstream credits. Use auth = "keys" (then create a key: hermes-proxy keys create --team '
                           'NAME --config FILE), or bind host = "127.0.0.1", or, if every machine that can reach it '
                           'is trusted, set allow_public_without_auth = true under [server]')


def read_server(t: Mapping[str, Any], env: Mapping[str, str]) -> ServerConfig:
    w = "server."
    read.no_unknown(t, w, {"host", "port", "admin_key_env", "max_request_bytes", "shutdown_timeout_s", "auth",
                       "metrics_require_admin", "log_prompts", "metrics", "request_log", "cors_origins",
                       "allow_public_without_auth", "dashboard", "listen_backlog", "workers"})
    port = read.integer(t, "port", w, 8787, minimum=0)
    if port > 65535:
        raise ConfigError(w + "port", f"must be <= 65535, got {port}")
    auth = read.text(t, "auth", w, "keys")
    if auth not in ("keys", "none"):
        raise ConfigError(w + "auth", f"must be 'keys' or 'none', got {auth!r}")
    admin_env = read.text(t, "admin_key_env", w, "HERMES_ADMIN_KEY")
    server = ServerConfig(
        host=read.text(t, "host", w, "127.0.0.1"),
        port=port,
        admin_key_env=admin_env,
        admin_key=secret_from_env(env, admin_env, w + "admin_key_env"),
        max_request_bytes=read.integer(t, "max_request_bytes", w, 4 * 1024 * 1024, minimum=1024),
        shutdown_timeout_s=read.positive(t, "shutdown_timeout_s", w, 30.0, allow_zero=True),
        listen_backlog=read.integer(t, "listen_backlog", w, 4096),
        workers=_workers(t, w),
        auth=auth,
        metrics_require_admin=read.flag(t, "metrics_require_admin", w, False),
        log_prompts=read.flag(t, "log_prompts", w, False),
        metrics=read.flag(t, "metrics", w, True),
        request_log=read.flag(t, "request_log", w, True),
        cors_origins=_origins(t, "cors_origins", w),
        allow_public_without_auth=read.flag(t, "allow_public_without_auth", w, False),
        dashboard=read.flag(t, "dashboard", w, True),
    )
    check_exposure(server, server.host, w + "auth")
    return server


def _origins(t: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = t.get(key, [])
    if not isinstance(value, list) or not all(isinstance(o, str) for o in value):
        raise ConfigError(where + key, 'must be an array of origins, like ["https://app.example.com"] or ["*"]')
    origins: list[str] = []
    for origin in value:
        normal = origin.lower()
        match = _ORIGIN.fullmatch(normal)
        if origin != "*" and (match is None or not 1 <= int(match.group(1) or 443) <= 65535):
            hint = " (no path or trailing slash)" if "://" in origin and "/" in origin.split("://", 1)[1] else ""
            raise ConfigError(where + key, f"{origin!r} is not an origin: use '*' or scheme://host[:port]{hint}")
        origins.append(normal)
    return tuple(origins)


def read_upstreams(items: Any, env: Mapping[str, str]) -> tuple[UpstreamConfig, ...]:
    if not isinstance(items, list):
        raise ConfigError("upstreams", "must be an array of tables ([[upstreams]])")
    result: list[UpstreamConfig] = []
    seen: set[str] = set()
    for index, t in enumerate(items):
        w = f"upstreams[{index}]."
        if not isinstance(t, Mapping):
            raise ConfigError(w[:-1], "must be a table")
        read.no_unknown(t, w, {"name", "kind", "base_url", "api_key_env", "connect_timeout_s", "read_timeout_s",
                           "max_retries", "retry_backoff_s", "max_connections", "stream_options", "accepts_top_k",
                           "headers", "prefills_think", "tools", "first_token_s", "tokens_per_s"})
        name = read.text(t, "name", w)
        if not name:
            raise ConfigError(w + "name", "is required")
        if name in seen:
            raise ConfigError(w + "name", f"duplicate upstream name {name!r}")
        seen.add(name)
        kind = read.text(t, "kind", w)
        if kind not in UPSTREAM_KINDS:
            raise ConfigError(w + "kind", f"must be one of {', '.join(UPSTREAM_KINDS)}; got {kind!r}")
        defaults = UPSTREAM_KINDS[kind]
        base_url = read.text(t, "base_url", w, defaults.base_url)
        if defaults.http and not base_url.startswith(("http://", "https://")):
            raise ConfigError(w + "base_url", f"must be an http(s) URL, got {base_url!r}")
        key_env = read.text(t, "api_key_env", w, defaults.api_key_env)
        headers = read.table(t, "headers", w)
        for hk, hv in headers.items():
            if not isinstance(hv, str):
                raise ConfigError(f"{w}headers.{hk}", "must be a string")
        result.append(UpstreamConfig(
            name=name,
            kind=kind,
            base_url=base_url.rstrip("/"),
            api_key_env=key_env,
            api_key=secret_from_env(env, key_env, w + "api_key_env"),
            connect_timeout_s=read.positive(t, "connect_timeout_s", w, 5.0),
            read_timeout_s=read.positive(t, "read_timeout_s", w, 120.0),
            max_retries=read.integer(t, "max_retries", w, 2, minimum=0),
            retry_backoff_s=read.positive(t, "retry_backoff_s", w, 0.25, allow_zero=True),
            max_connections=read.integer(t, "max_connections", w, 200),
            stream_options=read.flag(t, "stream_options", w, True),
            accepts_top_k=read.flag(t, "accepts_top_k", w, defaults.accepts_top_k),
            headers=tuple((str(k), str(v)) for k, v in headers.items()),
            prefills_think=read.flag(t, "prefills_think", w, False),
            tools=_tools_mode(read.text(t, "tools", w, "rendered"), w),
            first_token_s=read.positive(t, "first_token_s", w, 0.77, allow_zero=True),
            tokens_per_s=read.positive(t, "tokens_per_s", w, 37.0, allow_zero=True),
        ))
    return tuple(result)


def read_models(t: Mapping[str, Any], upstreams: Mapping[str, UpstreamConfig]) -> tuple[ModelConfig, ...]:
    result: list[ModelConfig] = []
    for alias, m in t.items():
        w = f"models.{alias}."
        if not isinstance(m, Mapping):
            raise ConfigError(w[:-1], "must be a table")
        if ":" in alias or "/" in alias or not alias:
            raise ConfigError(w[:-1], "a model alias may not be empty or contain ':' or '/'")
        read.no_unknown(m, w, {"routes", "context_window", "default_reasoning", "description"})
        routes_raw = m.get("routes")
        if not isinstance(routes_raw, list) or not routes_raw:
            raise ConfigError(w + "routes", "must be a non-empty array of routes")
        routes: list[Route] = []
        for index, r in enumerate(routes_raw):
            rw = f"{w}routes[{index}]."
            if not isinstance(r, Mapping):
                raise ConfigError(rw[:-1], "must be a table")
            read.no_unknown(r, rw, {"upstream", "model", "input_usd_per_mtok", "output_usd_per_mtok",
                                "cached_input_usd_per_mtok", "gpu_usd_per_hour", "tokens_per_s",
                                "prefill_tokens_per_s", "honours_reasoning_budget"})
            upstream = read.text(r, "upstream", rw)
            if upstream not in upstreams:
                known = ", ".join(upstreams) or "none configured"
                raise ConfigError(rw + "upstream", f"unknown upstream {upstream!r} (known: {known})")
            model_id = read.text(r, "model", rw)
            if not model_id:
                raise ConfigError(rw + "model", "is required (the upstream's own model id)")
            route = Route(
                upstream=upstream,
                model=model_id,
                input_usd_per_mtok=read.usd(r, "input_usd_per_mtok", rw),
                output_usd_per_mtok=read.usd(r, "output_usd_per_mtok", rw),
                cached_input_usd_per_mtok=read.usd(r, "cached_input_usd_per_mtok", rw),
                gpu_usd_per_hour=read.usd(r, "gpu_usd_per_hour", rw),
                tokens_per_s=read.usd(r, "tokens_per_s", rw),
                prefill_tokens_per_s=read.usd(r, "prefill_tokens_per_s", rw),
                honours_reasoning_budget=read.flag(r, "honours_reasoning_budget", rw, False),
            )
            if (route.gpu_usd_per_hour is None) != (route.tokens_per_s is None):
                raise ConfigError(rw + "gpu_usd_per_hour", "gpu_usd_per_hour and tokens_per_s go together")
            for speed in ("tokens_per_s", "prefill_tokens_per_s"):
                if getattr(route, speed) is not None and getattr(route, speed) <= 0:
                    raise ConfigError(rw + speed, "must be > 0")
            if route.prefill_tokens_per_s is not None and route.gpu_usd_per_hour is None:
                raise ConfigError(rw + "prefill_tokens_per_s", "goes with gpu_usd_per_hour and tokens_per_s")
            if route.gpu_usd_per_hour is None and (
                    (route.input_usd_per_mtok is None) != (route.output_usd_per_mtok is None)):
                raise ConfigError(rw + ("output_usd_per_mtok" if route.output_usd_per_mtok is None
                                        else "input_usd_per_mtok"),
                                  "a route's price needs both input_usd_per_mtok and output_usd_per_mtok")
            routes.append(route)
        result.append(ModelConfig(
            alias=alias,
            routes=tuple(routes),
            context_window=read.integer(m, "context_window", w, 131072, minimum=16),
            default_reasoning=read.flag(m, "default_reasoning", w, False),
            description=read.text(m, "description", w, ""),
        ))
    return tuple(result)


def read_ledger(t: Mapping[str, Any], source: Path | None = None) -> LedgerConfig:
    w = "ledger."
    read.no_unknown(t, w, {"url", "reservation_ttl_s", "outbox_path", "outbox_replay_s"})
    default_url = f"sqlite:///{default_data_dir() / 'ledger.sqlite3'}"
    url = read.text(t, "url", w, default_url)
    if not url.startswith(("sqlite://", "postgresql://", "postgres://", "memory://")):
        raise ConfigError(w + "url", f"must start with sqlite:///, postgresql:// or memory://, got {url!r}")
    return LedgerConfig(url=url, reservation_ttl_s=read.positive(t, "reservation_ttl_s", w, 120.0),
                        outbox_path=_outbox_path(t, w, url, source),
                        outbox_replay_s=read.positive(t, "outbox_replay_s", w, 10.0))


def _outbox_path(t: Mapping[str, Any], w: str, url: str, source: Path | None) -> Path | None:
    """The outbox of settles the ledger could not write: ``outbox_path`` (relative to the config file's folder), by
    default one file per ledger in the user's data dir; none for an in-memory ledger (it is gone at exit)."""
    raw = read.text(t, "outbox_path", w, None)
    in_memory = url.startswith("memory://") or url in ("sqlite://", "sqlite:///", "sqlite:///:memory:")
    if raw is None:
        return None if in_memory else default_data_dir() / f"outbox-{_ledger_hash(url)}.jsonl"
    if in_memory:
        raise ConfigError(w + "outbox_path", f"an in-memory ledger ({url}) is gone at exit and keeps no outbox")
    if not raw.strip():
        raise ConfigError(w + "outbox_path", "must be a file path, got an empty string")
    path = Path(raw).expanduser()
    if not path.is_absolute() and source is not None:
        path = source.parent / path
    if path.is_dir():
        raise ConfigError(w + "outbox_path", f"is a directory, not a file: {path}")
    return path


def _ledger_hash(url: str) -> str:
    """A short stable name for a ledger: its URL without a password (rotating one keeps the same outbox)."""
    parts = urlsplit(url)
    if parts.password is not None:
        user, host = parts.netloc.rsplit("@", 1)
        url = urlunsplit(parts._replace(netloc=f"{user.split(':', 1)[0]}@{host}"))
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def read_sampling(t: Mapping[str, Any]) -> Sampling:
    w = "sampling."
    read.no_unknown(t, w, {"temperature", "top_p", "top_k", "enabled"})
    if not read.flag(t, "enabled", w, True):
        return Sampling(temperature=None, top_p=None, top_k=None)
    return Sampling(
        temperature=read.positive(t, "temperature", w, 0.6, allow_zero=True),
        top_p=read.positive(t, "top_p", w, 0.95),
        top_k=read.integer(t, "top_k", w, 20, minimum=0),
    )


def read_tokens(t: Mapping[str, Any], source: Path | None) -> TokensConfig:
    w = "tokens."
    read.no_unknown(t, w, {"tokenizer_path", "hf_repo", "fetch"})
    raw = read.text(t, "tokenizer_path", w, None)
    path: Path | None = None
    if raw:
        path = Path(raw).expanduser()
        if not path.is_absolute() and source is not None:
            path = source.parent / path
        if not path.exists():
            raise ConfigError(w + "tokenizer_path", f"file not found: {path}")
    return TokensConfig(tokenizer_path=path, hf_repo=read.text(t, "hf_repo", w, None),
                        fetch=read.flag(t, "fetch", w, False))


def read_rate_limits(t: Mapping[str, Any]) -> RateLimitsConfig:
    w = "rate_limits."
    read.no_unknown(t, w, {"url"})
    url = read.text(t, "url", w, None)
    if url is not None and not url.startswith(("redis://", "rediss://", "unix://", "sqlite:///")):
        raise ConfigError(w + "url", "must be a redis:// URL (shared by replicas) or a sqlite:/// file (shared by the "
                                     f"workers of one host), got {url!r}")
    if url in ("sqlite:///", "sqlite:///:memory:"):
        raise ConfigError(w + "url", "a sqlite:/// URL needs a file path (the workers share the file)")
    return RateLimitsConfig(url=url)


def read_chat(t: Mapping[str, Any], teams: set[str], aliases: set[str]) -> ChatConfig:
    w = "chat."
    read.no_unknown(t, w, {"team", "model", "show_reasoning", "newline_key"})
    team = read.text(t, "team", w, DEFAULT_TEAM if DEFAULT_TEAM in teams else sorted(teams)[0])
    if team not in teams:
        raise ConfigError(w + "team", f"unknown team {team!r} (known: {', '.join(sorted(teams))})")
    model = read.text(t, "model", w, None)
    if model is not None and model not in aliases:
        raise ConfigError(w + "model", f"unknown model alias {model!r}")
    show = read.text(t, "show_reasoning", w, "auto")
    if show not in ("auto", "always", "never"):
        raise ConfigError(w + "show_reasoning", "must be auto, always or never")
    return ChatConfig(team=team, model=model, show_reasoning=show,
                      newline_key=read.text(t, "newline_key", w, "ctrl+j"))


#: a stored response is kept at most this long (ten years): a larger value is a typo
MAX_STORE_DAYS = 3650


def read_responses(t: Mapping[str, Any]) -> ResponsesConfig:
    w = "responses."
    read.no_unknown(t, w, {"store_days"})
    days = read.positive(t, "store_days", w, 30.0)
    if days > MAX_STORE_DAYS:
        raise ConfigError(w + "store_days", f"must be at most {MAX_STORE_DAYS} days, got {days!r}")
    return ResponsesConfig(store_days=float(days))


def _tools_mode(value: str, where: str) -> str:
    if value not in ("rendered", "native"):
        raise ConfigError(where + "tools", f"must be 'rendered' or 'native', got {value!r}")
    return value


def read_cache(t: Mapping[str, Any]) -> CacheConfig:
    w = "cache."
    read.no_unknown(t, w, {"url", "ttl_s", "max_entry_bytes", "max_team_bytes", "replay", "hit_cost_fraction"})
    url = read.text(t, "url", w, None)
    if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(w + "url", f"must be a redis:// URL (leave it out to keep the cache in the ledger); got {url!r}")
    replay = read.text(t, "replay", w, "instant")
    if replay not in ("instant", "paced"):
        raise ConfigError(w + "replay", f"must be 'instant' or 'paced'; got {replay!r}")
    fraction = read.positive(t, "hit_cost_fraction", w, 0, allow_zero=True)
    if fraction > 1:
        raise ConfigError(w + "hit_cost_fraction", f"must be between 0 and 1 (a share of the first cost); got {fraction!r}")
    max_entry = read.integer(t, "max_entry_bytes", w, 1_000_000)
    max_team = read.integer(t, "max_team_bytes", w, 100_000_000)
    if max_team < max_entry:
        raise ConfigError(w + "max_team_bytes", f"must be at least max_entry_bytes ({max_entry}); got {max_team}")
    return CacheConfig(url=url, ttl_s=float(read.positive(t, "ttl_s", w, 86_400.0)), max_entry_bytes=max_entry,
                       max_team_bytes=max_team, replay=replay, hit_cost_fraction=Decimal(str(fraction)))


def _workers(t: Mapping[str, Any], w: str) -> int | str:
    value = read.value_of(t, "workers", (int, str), w, "auto")
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 256):
        return value  # type: ignore[no-any-return]
    raise ConfigError(w + "workers", f"must be a number of processes (1-256) or \"auto\" (one per core); got {value!r}")
