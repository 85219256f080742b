"""The environment: the one place the proxy reads ``os.environ``, and the :class:`Secret` values it yields.

Secrets are given in config as the *names* of environment variables, resolved once at load time into :class:`Secret`
values that never print themselves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from hermes_proxy.errors import ConfigError


def environment(env: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """``env`` when given (tests, embedding), else the process environment."""
    return os.environ if env is None else env


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


def secret_from_env(env: Mapping[str, str], env_name: str | None, key: str) -> Secret | None:
    """The secret in ``$env_name``, ``None`` when no name is given or the variable is unset or empty.

    ``key`` is the config key that named the variable, for the error when the name is not a variable name.
    """
    if not env_name:
        return None
    if not env_name.replace("_", "").isalnum():
        raise ConfigError(key, f"must be the NAME of an environment variable, got {env_name!r}")
    value = env.get(env_name)
    return Secret(value, env_name) if value else None
