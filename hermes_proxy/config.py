"""Configuration: TOML in, frozen typed objects out. Every check lives here and every error names its key.

This is the only module that reads ``os.environ``: secrets are given in config as the *names* of environment variables,
resolved once at load time into :class:`Secret` values that never print themselves.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs

from hermes_proxy.errors import ConfigError
from policies.types import REASONING_RULES, WINDOWS, BudgetRule, RateLimitRule, TeamPolicy

UpstreamKind = Literal["nous", "openrouter", "vllm", "litellm", "demo"]
UPSTREAM_KINDS: tuple[str, ...] = ("nous", "openrouter", "vllm", "litellm", "demo")

DEFAULT_BASE_URLS: dict[str, str] = {
    "nous": "https://inference-api.nousresearch.com/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "vllm": "http://127.0.0.1:8000/v1",
}
DEFAULT_KEY_ENVS: dict[str, str] = {"nous": "NOUS_API_KEY", "openrouter": "OPENROUTER_API_KEY"}
#: kinds that cannot work without a key; vllm and litellm need one only when their config names an api_key_env
KEY_REQUIRED_KINDS: tuple[str, ...] = ("nous", "openrouter")
DEFAULT_TEAM = "default"
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::(\d{1,5}))?")


class Secret:
    """A secret value that never shows itself in ``repr``/``str`` (so it cannot leak into a log or a response)."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(from ${self.source})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class Sampling:
    """Hermes' recommended sampling, sent when the client omits a field. ``None`` disables a default."""

    temperature: float | None = 0.6
    top_p: float | None = 0.95
    top_k: int | None = 20


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8787
    admin_key: Secret | None = None
    admin_key_env: str = "HERMES_ADMIN_KEY"
    max_request_bytes: int = 4 * 1024 * 1024
    shutdown_timeout_s: float = 30.0
    auth: Literal["keys", "none"] = "keys"
    metrics_require_admin: bool = False
    log_prompts: bool = False
    metrics: bool = True
    request_log: bool = True
    #: browser origins allowed to call the API (CORS); empty: no CORS headers at all
    cors_origins: tuple[str, ...] = ()
    #: the operator's explicit "yes" to auth = "none" on a non-loopback host
    allow_public_without_auth: bool = False


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    name: str
    kind: UpstreamKind
    base_url: str = ""
    api_key_env: str | None = None
    api_key: Secret | None = None
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 120.0
    max_retries: int = 2
    retry_backoff_s: float = 0.25
    max_connections: int = 200
    stream_options: bool = True
    accepts_top_k: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    # demo only: pacing like the real service; 0 for no delay
    first_token_s: float = 0.77
    tokens_per_s: float = 37.0

    @property
    def needs_key(self) -> bool:
        """nous and openrouter always; vllm and litellm when the config names an ``api_key_env``; never the demo."""
        if self.kind == "demo":
            return False
        return self.kind in KEY_REQUIRED_KINDS or bool(self.api_key_env)

    @property
    def missing_key(self) -> bool:
        """It needs a key and its environment variable is unset: its routes are left out (see Config.usable_routes)."""
        return self.needs_key and self.api_key is None


@dataclass(frozen=True, slots=True)
class Route:
    """One way to serve a model alias: an upstream and its own model id, with its price."""

    upstream: str
    model: str
    input_usd_per_mtok: Decimal | None = None
    output_usd_per_mtok: Decimal | None = None
    cached_input_usd_per_mtok: Decimal | None = None
    gpu_usd_per_hour: Decimal | None = None
    tokens_per_s: Decimal | None = None
    prefill_tokens_per_s: Decimal | None = None

    @property
    def label(self) -> str:
        return f"{self.upstream}:{self.model}"


@dataclass(frozen=True, slots=True)
class ModelConfig:
    alias: str
    routes: tuple[Route, ...]
    context_window: int = 131072
    default_reasoning: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    url: str
    reservation_ttl_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class TokensConfig:
    tokenizer_path: Path | None = None
    hf_repo: str | None = None
    fetch: bool = False


@dataclass(frozen=True, slots=True)
class RateLimitsConfig:
    url: str | None = None


@dataclass(frozen=True, slots=True)
class ChatConfig:
    team: str = DEFAULT_TEAM
    model: str | None = None
    show_reasoning: Literal["auto", "always", "never"] = "auto"
    newline_key: str = "ctrl+j"


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig
    upstreams: tuple[UpstreamConfig, ...]
    models: tuple[ModelConfig, ...]
    teams: tuple[TeamPolicy, ...]
    ledger: LedgerConfig
    sampling: Sampling = field(default_factory=Sampling)
    tokens: TokensConfig = field(default_factory=TokensConfig)
    rate_limits: RateLimitsConfig = field(default_factory=RateLimitsConfig)
    chat: ChatConfig = field(default_factory=ChatConfig)
    source: Path | None = None
    is_default: bool = False

    def upstream(self, name: str) -> UpstreamConfig:
        for upstream in self.upstreams:
            if upstream.name == name:
                return upstream
        raise KeyError(name)

    def model(self, alias: str) -> ModelConfig | None:
        for model in self.models:
            if model.alias == alias:
                return model
        return None

    def team(self, name: str) -> TeamPolicy | None:
        for team in self.teams:
            if team.name == name:
                return team
        return None

    @property
    def simulated_only(self) -> bool:
        return all(u.kind == "demo" for u in self.upstreams)

    def usable_routes(self, model: ModelConfig) -> tuple[Route, ...]:
        """The model's routes in order, without those whose upstream's API key is not set (they could only fail)."""
        return tuple(r for r in model.routes if not self.upstream(r.upstream).missing_key)

    @property
    def keyless_upstreams(self) -> tuple[UpstreamConfig, ...]:
        """Upstreams left out because their API key's environment variable is unset."""
        return tuple(u for u in self.upstreams if u.missing_key and any(
            r.upstream == u.name for m in self.models for r in m.routes))


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


# --- loading -------------------------------------------------------------------------------------------------------


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("hermes-proxy", appauthor=False))


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir("hermes-proxy", appauthor=False)) / "config.toml"


def load_config(path: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> Config:
    """Load ``path`` (or the user's config file, or the built-in demo config when there is none)."""
    environ = os.environ if env is None else env
    if path is None:
        candidate = environ.get("HERMES_PROXY_CONFIG")
        path = Path(candidate) if candidate else default_config_path()
        if not path.exists():
            return default_config(env=environ)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("", f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{path} is not valid TOML: {exc}") from None
    return parse_config(data, env=environ, source=path)


def default_config(*, env: Mapping[str, str] | None = None) -> Config:
    """No config file: Nous Portal and/or OpenRouter when their key is in the environment, else the simulated demo.

    Open to local callers (``auth = "none"``, bound to 127.0.0.1) so that a first run needs no set-up.
    """
    environ = os.environ if env is None else env
    upstreams: list[dict[str, Any]] = []
    routes_405: list[dict[str, Any]] = []
    routes_70: list[dict[str, Any]] = []
    if environ.get("NOUS_API_KEY"):
        upstreams.append({"name": "nous", "kind": "nous"})
        routes_405.append({"upstream": "nous", "model": "Hermes-4-405B",
                           "input_usd_per_mtok": 0.09, "output_usd_per_mtok": 0.37})
        routes_70.append({"upstream": "nous", "model": "Hermes-4-70B",
                          "input_usd_per_mtok": 0.05, "output_usd_per_mtok": 0.2})
    if environ.get("OPENROUTER_API_KEY"):
        upstreams.append({"name": "openrouter", "kind": "openrouter"})
        routes_405.append({"upstream": "openrouter", "model": "nousresearch/hermes-4-405b",
                           "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 3.0})
        routes_70.append({"upstream": "openrouter", "model": "nousresearch/hermes-4-70b",
                          "input_usd_per_mtok": 0.13, "output_usd_per_mtok": 0.4})
    if not upstreams:
        upstreams.append({"name": "demo", "kind": "demo"})
        routes_405.append({"upstream": "demo", "model": "Hermes-4-405B",
                           "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 3.0})
        routes_70.append({"upstream": "demo", "model": "Hermes-4-70B",
                          "input_usd_per_mtok": 0.13, "output_usd_per_mtok": 0.4})
    data: dict[str, Any] = {
        "server": {"auth": "none"},
        "upstreams": upstreams,
        "models": {"hermes-4-405b": {"routes": routes_405}, "hermes-4-70b": {"routes": routes_70}},
    }
    if environ.get("HERMES_PROXY_LEDGER_URL"):
        data["ledger"] = {"url": environ["HERMES_PROXY_LEDGER_URL"]}
    config = parse_config(data, env=environ, source=None)
    return _replace(config, is_default=True)


def _replace(config: Config, **changes: Any) -> Config:
    from dataclasses import replace

    return replace(config, **changes)


def parse_config(data: Mapping[str, Any], *, env: Mapping[str, str], source: Path | None = None) -> Config:
    reader = _Reader(env)
    _no_unknown(data, "", {"server", "upstreams", "models", "teams", "ledger", "sampling", "tokens", "rate_limits", "chat"})
    server = reader.server(_table(data, "server"))
    upstreams = reader.upstreams(data.get("upstreams", []))
    models = reader.models(_table(data, "models"), {u.name: u for u in upstreams})
    teams = reader.teams(_table(data, "teams"), {m.alias for m in models})
    ledger = reader.ledger(_table(data, "ledger"))
    sampling = reader.sampling(_table(data, "sampling"))
    tokens = reader.tokens(_table(data, "tokens"), source)
    rate_limits = reader.rate_limits(_table(data, "rate_limits"))
    chat = reader.chat(_table(data, "chat"), {t.name for t in teams}, {m.alias for m in models})
    return Config(
        server=server, upstreams=upstreams, models=models, teams=teams, ledger=ledger, sampling=sampling,
        tokens=tokens, rate_limits=rate_limits, chat=chat, source=source,
    )


def _table(data: Mapping[str, Any], key: str, prefix: str = "") -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(prefix + key, f"must be a table, got {type(value).__name__}")
    return value


def _no_unknown(data: Mapping[str, Any], prefix: str, known: set[str]) -> None:
    for key in data:
        if key not in known:
            hint = ", ".join(sorted(known))
            raise ConfigError(prefix + str(key), f"unknown key (known here: {hint})")


class _Reader:
    """Typed reads from a TOML table, each error naming the dotted key."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    # scalar helpers ----------------------------------------------------------------------------------------------

    @staticmethod
    def _get(table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any) -> Any:
        if key not in table:
            return default
        value = table[key]
        if isinstance(value, bool) and kind in (int, float, (int, float)):
            raise ConfigError(where + key, f"must be a number, got {value!r}")
        if not isinstance(value, kind):
            expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise ConfigError(where + key, f"must be {expected}, got {type(value).__name__} {value!r}")
        return value

    def _str(self, t: Mapping[str, Any], key: str, where: str, default: str | None = None) -> Any:
        return self._get(t, key, str, where, default)

    def _bool(self, t: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
        return bool(self._get(t, key, bool, where, default))

    def _positive(self, t: Mapping[str, Any], key: str, where: str, default: Any, *, allow_zero: bool = False) -> Any:
        value = self._get(t, key, (int, float), where, default)
        if value is None:
            return None
        if value < 0 or (value == 0 and not allow_zero):
            raise ConfigError(where + key, f"must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
        return value

    def _int(self, t: Mapping[str, Any], key: str, where: str, default: Any, *, minimum: int = 1) -> Any:
        value = self._get(t, key, int, where, default)
        if value is not None and value < minimum:
            raise ConfigError(where + key, f"must be >= {minimum}, got {value!r}")
        return value

    def _usd(self, t: Mapping[str, Any], key: str, where: str) -> Decimal | None:
        if key not in t:
            return None
        value = t[key]
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(where + key, f"must be a number of USD, got {value!r}")
        try:
            # str() of a float keeps the digits the user wrote (0.37 stays 0.37, not 0.3699999...)
            amount = Decimal(str(value))
        except InvalidOperation:
            raise ConfigError(where + key, f"must be a number of USD, got {value!r}") from None
        if not amount.is_finite() or amount < 0:
            raise ConfigError(where + key, f"must be a non-negative number of USD, got {value!r}")
        return amount

    def _secret(self, env_name: str | None, where: str) -> Secret | None:
        if not env_name:
            return None
        if not env_name.replace("_", "").isalnum():
            raise ConfigError(where, f"must be the NAME of an environment variable, got {env_name!r}")
        value = self.env.get(env_name)
        return Secret(value, env_name) if value else None

    # sections -----------------------------------------------------------------------------------------------------

    def server(self, t: Mapping[str, Any]) -> ServerConfig:
        w = "server."
        _no_unknown(t, w, {"host", "port", "admin_key_env", "max_request_bytes", "shutdown_timeout_s", "auth",
                           "metrics_require_admin", "log_prompts", "metrics", "request_log", "cors_origins",
                           "allow_public_without_auth"})
        port = self._int(t, "port", w, 8787, minimum=0)
        if port > 65535:
            raise ConfigError(w + "port", f"must be <= 65535, got {port}")
        auth = self._str(t, "auth", w, "keys")
        if auth not in ("keys", "none"):
            raise ConfigError(w + "auth", f"must be 'keys' or 'none', got {auth!r}")
        admin_env = self._str(t, "admin_key_env", w, "HERMES_ADMIN_KEY")
        server = ServerConfig(
            host=self._str(t, "host", w, "127.0.0.1"),
            port=port,
            admin_key_env=admin_env,
            admin_key=self._secret(admin_env, w + "admin_key_env"),
            max_request_bytes=self._int(t, "max_request_bytes", w, 4 * 1024 * 1024, minimum=1024),
            shutdown_timeout_s=self._positive(t, "shutdown_timeout_s", w, 30.0, allow_zero=True),
            auth=auth,
            metrics_require_admin=self._bool(t, "metrics_require_admin", w, False),
            log_prompts=self._bool(t, "log_prompts", w, False),
            metrics=self._bool(t, "metrics", w, True),
            request_log=self._bool(t, "request_log", w, True),
            cors_origins=self._origins(t, "cors_origins", w),
            allow_public_without_auth=self._bool(t, "allow_public_without_auth", w, False),
        )
        check_exposure(server, server.host, w + "auth")
        return server

    @staticmethod
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

    def upstreams(self, items: Any) -> tuple[UpstreamConfig, ...]:
        if not isinstance(items, list):
            raise ConfigError("upstreams", "must be an array of tables ([[upstreams]])")
        result: list[UpstreamConfig] = []
        seen: set[str] = set()
        for index, t in enumerate(items):
            w = f"upstreams[{index}]."
            if not isinstance(t, Mapping):
                raise ConfigError(w[:-1], "must be a table")
            _no_unknown(t, w, {"name", "kind", "base_url", "api_key_env", "connect_timeout_s", "read_timeout_s",
                               "max_retries", "retry_backoff_s", "max_connections", "stream_options", "accepts_top_k",
                               "headers", "first_token_s", "tokens_per_s"})
            name = self._str(t, "name", w)
            if not name:
                raise ConfigError(w + "name", "is required")
            if name in seen:
                raise ConfigError(w + "name", f"duplicate upstream name {name!r}")
            seen.add(name)
            kind = self._str(t, "kind", w)
            if kind not in UPSTREAM_KINDS:
                raise ConfigError(w + "kind", f"must be one of {', '.join(UPSTREAM_KINDS)}; got {kind!r}")
            base_url = self._str(t, "base_url", w, DEFAULT_BASE_URLS.get(kind, ""))
            if kind in ("nous", "openrouter", "vllm") and not base_url.startswith(("http://", "https://")):
                raise ConfigError(w + "base_url", f"must be an http(s) URL, got {base_url!r}")
            key_env = self._str(t, "api_key_env", w, DEFAULT_KEY_ENVS.get(kind))
            headers = _table(t, "headers", w)
            for hk, hv in headers.items():
                if not isinstance(hv, str):
                    raise ConfigError(f"{w}headers.{hk}", "must be a string")
            result.append(UpstreamConfig(
                name=name,
                kind=kind,
                base_url=base_url.rstrip("/"),
                api_key_env=key_env,
                api_key=self._secret(key_env, w + "api_key_env"),
                connect_timeout_s=self._positive(t, "connect_timeout_s", w, 5.0),
                read_timeout_s=self._positive(t, "read_timeout_s", w, 120.0),
                max_retries=self._int(t, "max_retries", w, 2, minimum=0),
                retry_backoff_s=self._positive(t, "retry_backoff_s", w, 0.25, allow_zero=True),
                max_connections=self._int(t, "max_connections", w, 200),
                stream_options=self._bool(t, "stream_options", w, True),
                accepts_top_k=self._bool(t, "accepts_top_k", w, kind in ("vllm", "openrouter", "demo")),
                headers=tuple((str(k), str(v)) for k, v in headers.items()),
                first_token_s=self._positive(t, "first_token_s", w, 0.77, allow_zero=True),
                tokens_per_s=self._positive(t, "tokens_per_s", w, 37.0, allow_zero=True),
            ))
        return tuple(result)

    def models(self, t: Mapping[str, Any], upstreams: Mapping[str, UpstreamConfig]) -> tuple[ModelConfig, ...]:
        result: list[ModelConfig] = []
        for alias, m in t.items():
            w = f"models.{alias}."
            if not isinstance(m, Mapping):
                raise ConfigError(w[:-1], "must be a table")
            if ":" in alias or "/" in alias or not alias:
                raise ConfigError(w[:-1], "a model alias may not be empty or contain ':' or '/'")
            _no_unknown(m, w, {"routes", "context_window", "default_reasoning", "description"})
            routes_raw = m.get("routes")
            if not isinstance(routes_raw, list) or not routes_raw:
                raise ConfigError(w + "routes", "must be a non-empty array of routes")
            routes: list[Route] = []
            for index, r in enumerate(routes_raw):
                rw = f"{w}routes[{index}]."
                if not isinstance(r, Mapping):
                    raise ConfigError(rw[:-1], "must be a table")
                _no_unknown(r, rw, {"upstream", "model", "input_usd_per_mtok", "output_usd_per_mtok",
                                    "cached_input_usd_per_mtok", "gpu_usd_per_hour", "tokens_per_s",
                                    "prefill_tokens_per_s"})
                upstream = self._str(r, "upstream", rw)
                if upstream not in upstreams:
                    known = ", ".join(upstreams) or "none configured"
                    raise ConfigError(rw + "upstream", f"unknown upstream {upstream!r} (known: {known})")
                model_id = self._str(r, "model", rw)
                if not model_id:
                    raise ConfigError(rw + "model", "is required (the upstream's own model id)")
                route = Route(
                    upstream=upstream,
                    model=model_id,
                    input_usd_per_mtok=self._usd(r, "input_usd_per_mtok", rw),
                    output_usd_per_mtok=self._usd(r, "output_usd_per_mtok", rw),
                    cached_input_usd_per_mtok=self._usd(r, "cached_input_usd_per_mtok", rw),
                    gpu_usd_per_hour=self._usd(r, "gpu_usd_per_hour", rw),
                    tokens_per_s=self._usd(r, "tokens_per_s", rw),
                    prefill_tokens_per_s=self._usd(r, "prefill_tokens_per_s", rw),
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
                context_window=self._int(m, "context_window", w, 131072, minimum=16),
                default_reasoning=self._bool(m, "default_reasoning", w, False),
                description=self._str(m, "description", w, ""),
            ))
        return tuple(result)

    def _rate(self, t: Mapping[str, Any], key: str, where: str) -> RateLimitRule | None:
        if key not in t:
            return None
        r = _table(t, key, where)
        w = f"{where}{key}."
        _no_unknown(r, w, {"requests_per_minute", "tokens_per_minute"})
        return RateLimitRule(
            requests_per_minute=self._int(r, "requests_per_minute", w, None),
            tokens_per_minute=self._int(r, "tokens_per_minute", w, None),
        )

    def teams(self, t: Mapping[str, Any], aliases: set[str]) -> tuple[TeamPolicy, ...]:
        result: list[TeamPolicy] = []
        for name, team in t.items():
            w = f"teams.{name}."
            if not isinstance(team, Mapping):
                raise ConfigError(w[:-1], "must be a table")
            _no_unknown(team, w, {"budgets", "models", "reasoning", "max_tokens", "timezone", "rate_limits",
                                  "key_rate_limits", "key_limit_usd"})
            budgets_raw = team.get("budgets", [])
            if not isinstance(budgets_raw, list):
                raise ConfigError(w + "budgets", "must be an array of { window, limit_usd, soft_limit_usd }")
            budgets: list[BudgetRule] = []
            for index, b in enumerate(budgets_raw):
                bw = f"{w}budgets[{index}]."
                if not isinstance(b, Mapping):
                    raise ConfigError(bw[:-1], "must be a table { window, limit_usd, soft_limit_usd }")
                _no_unknown(b, bw, {"window", "limit_usd", "soft_limit_usd"})
                window = self._str(b, "window", bw)
                if window not in WINDOWS:
                    raise ConfigError(bw + "window", f"must be one of {', '.join(WINDOWS)}; got {window!r}")
                if any(existing.window == window for existing in budgets):
                    raise ConfigError(bw + "window", f"duplicate {window} budget")
                limit = self._usd(b, "limit_usd", bw)
                if limit is None:
                    raise ConfigError(bw + "limit_usd", "is required")
                soft = self._usd(b, "soft_limit_usd", bw)
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
            rule = self._str(team, "reasoning", w, "allow")
            if rule not in REASONING_RULES:
                raise ConfigError(w + "reasoning", f"must be one of {', '.join(REASONING_RULES)}; got {rule!r}")
            tz = self._str(team, "timezone", w, "UTC")
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                raise ConfigError(w + "timezone", f"unknown time zone {tz!r} (use an IANA name like Europe/Berlin)") from None
            result.append(TeamPolicy(
                name=name,
                budgets=tuple(budgets),
                models=tuple(models) if models is not None else None,
                reasoning="allow" if rule in ("on", "off") else rule,
                reasoning_default={"on": True, "off": False}.get(rule),
                max_tokens=self._int(team, "max_tokens", w, None),
                timezone=tz,
                rate_limits=self._rate(team, "rate_limits", w),
                key_rate_limits=self._rate(team, "key_rate_limits", w),
                key_limit_usd=self._usd(team, "key_limit_usd", w),
            ))
        if not result:
            result.append(TeamPolicy(name=DEFAULT_TEAM))
        return tuple(result)

    def ledger(self, t: Mapping[str, Any]) -> LedgerConfig:
        w = "ledger."
        _no_unknown(t, w, {"url", "reservation_ttl_s"})
        default_url = f"sqlite:///{default_data_dir() / 'ledger.sqlite3'}"
        url = self._str(t, "url", w, default_url)
        if not url.startswith(("sqlite://", "postgresql://", "postgres://", "memory://")):
            raise ConfigError(w + "url", f"must start with sqlite:///, postgresql:// or memory://, got {url!r}")
        return LedgerConfig(url=url, reservation_ttl_s=self._positive(t, "reservation_ttl_s", w, 3600.0))

    def sampling(self, t: Mapping[str, Any]) -> Sampling:
        w = "sampling."
        _no_unknown(t, w, {"temperature", "top_p", "top_k", "enabled"})
        if not self._bool(t, "enabled", w, True):
            return Sampling(temperature=None, top_p=None, top_k=None)
        return Sampling(
            temperature=self._positive(t, "temperature", w, 0.6, allow_zero=True),
            top_p=self._positive(t, "top_p", w, 0.95),
            top_k=self._int(t, "top_k", w, 20, minimum=0),
        )

    def tokens(self, t: Mapping[str, Any], source: Path | None) -> TokensConfig:
        w = "tokens."
        _no_unknown(t, w, {"tokenizer_path", "hf_repo", "fetch"})
        raw = self._str(t, "tokenizer_path", w, None)
        path: Path | None = None
        if raw:
            path = Path(raw).expanduser()
            if not path.is_absolute() and source is not None:
                path = source.parent / path
            if not path.exists():
                raise ConfigError(w + "tokenizer_path", f"file not found: {path}")
        return TokensConfig(tokenizer_path=path, hf_repo=self._str(t, "hf_repo", w, None),
                            fetch=self._bool(t, "fetch", w, False))

    def rate_limits(self, t: Mapping[str, Any]) -> RateLimitsConfig:
        w = "rate_limits."
        _no_unknown(t, w, {"url"})
        url = self._str(t, "url", w, None)
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(w + "url", f"must be a redis:// URL, got {url!r}")
        return RateLimitsConfig(url=url)

    def chat(self, t: Mapping[str, Any], teams: set[str], aliases: set[str]) -> ChatConfig:
        w = "chat."
        _no_unknown(t, w, {"team", "model", "show_reasoning", "newline_key"})
        team = self._str(t, "team", w, DEFAULT_TEAM if DEFAULT_TEAM in teams else sorted(teams)[0])
        if team not in teams:
            raise ConfigError(w + "team", f"unknown team {team!r} (known: {', '.join(sorted(teams))})")
        model = self._str(t, "model", w, None)
        if model is not None and model not in aliases:
            raise ConfigError(w + "model", f"unknown model alias {model!r}")
        show = self._str(t, "show_reasoning", w, "auto")
        if show not in ("auto", "always", "never"):
            raise ConfigError(w + "show_reasoning", "must be auto, always or never")
        return ChatConfig(team=team, model=model, show_reasoning=show,
                          newline_key=self._str(t, "newline_key", w, "ctrl+j"))
