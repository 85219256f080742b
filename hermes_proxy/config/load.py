"""Reading the config file: TOML in, a checked :class:`Config` out (or the built-in config when there is no file)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path

from hermes_proxy.config.defaults import default_config
from hermes_proxy.config.environ import environment
from hermes_proxy.config.paths import default_config_path
from hermes_proxy.config.sections import parse_config
from hermes_proxy.config.types import Config
from hermes_proxy.errors import ConfigError


def load_config(path: str | Path | None = None, *, env: Mapping[str, str] | None = None) -> Config:
    """Load ``path`` (or the user's config file, or the built-in demo config when there is none)."""
    environ = environment(env)
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
