"""The configuration's types: frozen dataclasses, one per TOML section, and the constants their defaults come from.

Built only by :mod:`hermes_proxy.config.sections` (every check lives there); read everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Literal

from hermes_proxy.config.environ import Secret
from policies.types import TeamPolicy

UpstreamKind = Literal["nous", "openrouter", "vllm", "litellm", "demo"]


@dataclass(frozen=True, slots=True)
class KindDefaults:
    """What the config needs to know of an upstream kind to default and check its settings. How requests are spoken
    to the kind is its dialect's (hermes_proxy/upstreams/)."""

    base_url: str = ""
    #: ``base_url`` must be an http(s) URL
    http: bool = False
    api_key_env: str | None = None
    #: cannot work without a key (other kinds need one only when their config names an ``api_key_env``)
    key_required: bool = False
    accepts_top_k: bool = False
    #: the built-in simulator, not a real model
    simulated: bool = False
    #: with no config file, the routes this kind serves (model alias, the host's model id, $ in / out per Mtok) when
    #: its ``api_key_env`` is set (the simulator's when no such key is): see config/defaults.py
    builtin_routes: tuple[BuiltinRoute, ...] = ()


@dataclass(frozen=True, slots=True)
class BuiltinRoute:
    alias: str
    model: str
    input_usd_per_mtok: float
    output_usd_per_mtok: float


#: every upstream kind, in one place
UPSTREAM_KINDS: dict[str, KindDefaults] = {
    "nous": KindDefaults(base_url="https://inference-api.nousresearch.com/v1", http=True, api_key_env="NOUS_API_KEY",
                         key_required=True, builtin_routes=(
                             BuiltinRoute("hermes-4-405b", "Hermes-4-405B", 0.09, 0.37),
                             BuiltinRoute("hermes-4-70b", "Hermes-4-70B", 0.05, 0.2))),
    "openrouter": KindDefaults(base_url="https://openrouter.ai/api/v1", http=True, api_key_env="OPENROUTER_API_KEY",
                               key_required=True, accepts_top_k=True, builtin_routes=(
                                   BuiltinRoute("hermes-4-405b", "nousresearch/hermes-4-405b", 1.0, 3.0),
                                   BuiltinRoute("hermes-4-70b", "nousresearch/hermes-4-70b", 0.13, 0.4))),
    "vllm": KindDefaults(base_url="http://127.0.0.1:8000/v1", http=True, accepts_top_k=True),
    "litellm": KindDefaults(),
    "demo": KindDefaults(accepts_top_k=True, simulated=True, builtin_routes=(
        BuiltinRoute("hermes-4-405b", "Hermes-4-405B", 1.0, 3.0),
        BuiltinRoute("hermes-4-70b", "Hermes-4-70B", 0.13, 0.4))),
}
DEFAULT_KEY_ENVS: dict[str, str] = {kind: d.api_key_env for kind, d in UPSTREAM_KINDS.items() if d.api_key_env}
DEFAULT_TEAM = "default"


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
    #: connections the kernel queues before the proxy accepts them (aiohttp's default, 128, drops a burst of streams
    #: opening at once; the kernel caps it at net.core.somaxconn)
    listen_backlog: int = 4096
    #: processes serving the port (``serve --workers``): a number, or ``"auto"`` (one per core where the ledger and rate
    #: limits can be shared, else one)
    workers: int | str = "auto"
    auth: Literal["keys", "none"] = "keys"
    metrics_require_admin: bool = False
    log_prompts: bool = False
    metrics: bool = True
    request_log: bool = True
    #: browser origins allowed to call the API (CORS); empty: no CORS headers at all
    cors_origins: tuple[str, ...] = ()
    #: the operator's explicit "yes" to auth = "none" on a non-loopback host
    allow_public_without_auth: bool = False
    #: the spend dashboard at /ui (sign-in with the admin key, or a team key for its own team)
    dashboard: bool = True


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
    #: the host's chat template opens <think> itself: with reasoning on, its text starts inside the reasoning
    prefills_think: bool = False
    #: how tools reach the model: "rendered" by the proxy into Hermes' system prompt and parsed back from the text
    #: (works everywhere), or "native" in the request's tools field (a vLLM started with --enable-auto-tool-choice
    #: --tool-call-parser hermes)
    tools: str = "rendered"
    # demo only: pacing like the real service; 0 for no delay
    first_token_s: float = 0.77
    tokens_per_s: float = 37.0

    @property
    def simulated(self) -> bool:
        """The built-in simulator, not a real model."""
        return UPSTREAM_KINDS[self.kind].simulated

    @property
    def needs_key(self) -> bool:
        """nous and openrouter always; vllm and litellm when the config names an ``api_key_env``; never the demo."""
        kind = UPSTREAM_KINDS[self.kind]
        return not kind.simulated and (kind.key_required or bool(self.api_key_env))

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
    #: the host enforces a reasoning budget for this model itself (OpenRouter's reasoning.max_tokens)
    honours_reasoning_budget: bool = False

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
    reservation_ttl_s: float = 120.0
    #: where settles the ledger could not write wait to be written (None: no outbox, e.g. a memory:// ledger)
    outbox_path: Path | None = None
    #: how often waiting settles are retried while there are any
    outbox_replay_s: float = 10.0


@dataclass(frozen=True, slots=True)
class TokensConfig:
    tokenizer_path: Path | None = None
    hf_repo: str | None = None
    fetch: bool = False


@dataclass(frozen=True, slots=True)
class RateLimitsConfig:
    url: str | None = None


@dataclass(frozen=True, slots=True)
class ResponsesConfig:
    """``POST /v1/responses``: how long a stored response (``store: true``, the default) is kept, in days."""

    store_days: float = 30.0


CacheReplay = Literal["instant", "paced"]


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """The response cache (``[cache]``): where answers are kept, for how long, how big, how a hit is replayed and
    billed. A team uses it only with ``cache = true`` in its own table; requests then turn it on, off or refresh it."""

    #: ``None``: the ledger's database; a ``redis://`` URL: that Redis (every replica sharing it)
    url: str | None = None
    ttl_s: float = 86_400.0
    #: an answer larger than this (bytes of its stored JSON) is not kept
    max_entry_bytes: int = 1_000_000
    #: a team's entries past this total are evicted, oldest first
    max_team_bytes: int = 100_000_000
    #: a streamed hit: ``instant`` sends the stored answer at once; ``paced`` over the time it first took
    replay: CacheReplay = "instant"
    #: a hit is billed this fraction of what the answer first cost (0: free)
    hit_cost_fraction: Decimal = Decimal(0)


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
    responses: ResponsesConfig = field(default_factory=ResponsesConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
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
        return all(u.simulated for u in self.upstreams)

    def usable_routes(self, model: ModelConfig) -> tuple[Route, ...]:
        """The model's routes in order, without those whose upstream's API key is not set (they could only fail)."""
        return tuple(r for r in model.routes if not self.upstream(r.upstream).missing_key)

    @property
    def keyless_upstreams(self) -> tuple[UpstreamConfig, ...]:
        """Upstreams left out because their API key's environment variable is unset."""
        return tuple(u for u in self.upstreams if u.missing_key and any(
            r.upstream == u.name for m in self.models for r in m.routes))
