"""Configuration: TOML in, frozen typed objects out. Every check lives here and every error names its key.

This package is the only place that reads ``os.environ`` (:mod:`.environ`): secrets are given in config as the *names*
of environment variables, resolved once at load time into :class:`Secret` values that never print themselves.

- :mod:`.types`     the frozen dataclasses and the constants their defaults come from
- :mod:`.environ`   the environment and :class:`Secret`
- :mod:`.paths`     the per-user data and config locations
- :mod:`.reader`    typed reads of one TOML value, errors naming the dotted key
- :mod:`.sections`  every section but the teams checked into its type; :func:`parse_config`
- :mod:`.teams`     the ``[teams.NAME]`` sections (budgets, rate limits) into :mod:`policies.types`
- :mod:`.defaults`  the built-in config used when there is no file
- :mod:`.load`      :func:`load_config`: the file, or the built-in config

Import from here (``from hermes_proxy.config import Config, load_config``); the modules are an inner layout.
"""

from hermes_proxy.config.defaults import default_config
from hermes_proxy.config.environ import Secret
from hermes_proxy.config.load import load_config
from hermes_proxy.config.paths import default_config_path, default_data_dir
from hermes_proxy.config.sections import check_exposure, is_loopback, parse_config
from hermes_proxy.config.types import (
    DEFAULT_KEY_ENVS,
    DEFAULT_TEAM,
    UPSTREAM_KINDS,
    CacheConfig,
    ChatConfig,
    Config,
    KindDefaults,
    LedgerConfig,
    ModelConfig,
    RateLimitsConfig,
    ResponsesConfig,
    Route,
    Sampling,
    ServerConfig,
    TokensConfig,
    UpstreamConfig,
    UpstreamKind,
)

__all__ = [
    "DEFAULT_KEY_ENVS",
    "DEFAULT_TEAM",
    "UPSTREAM_KINDS",
    "CacheConfig",
    "ChatConfig",
    "Config",
    "KindDefaults",
    "LedgerConfig",
    "ModelConfig",
    "RateLimitsConfig",
    "ResponsesConfig",
    "Route",
    "Sampling",
    "Secret",
    "ServerConfig",
    "TokensConfig",
    "UpstreamConfig",
    "UpstreamKind",
    "check_exposure",
    "default_config",
    "default_config_path",
    "default_data_dir",
    "is_loopback",
    "load_config",
    "parse_config",
]
