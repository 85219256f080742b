"""Typed reads from a TOML table: each helper checks one value and every error names its dotted key.

``where`` is the dotted prefix of the table being read (``"upstreams[0]."``), ``key`` the key inside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from hermes_proxy.errors import ConfigError


def table(data: Mapping[str, Any], key: str, prefix: str = "") -> Mapping[str, Any]:
    """The sub-table ``data[key]``, empty when absent."""
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(prefix + key, f"must be a table, got {type(value).__name__}")
    return value


def no_unknown(data: Mapping[str, Any], prefix: str, known: set[str]) -> None:
    """Refuse a key this table does not have (a typo would otherwise be silently ignored)."""
    for key in data:
        if key not in known:
            hint = ", ".join(sorted(known))
            raise ConfigError(prefix + str(key), f"unknown key (known here: {hint})")


def value_of(t: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any) -> Any:
    """``t[key]`` checked to be a ``kind`` (a TOML boolean is never a number), ``default`` when absent."""
    if key not in t:
        return default
    value = t[key]
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ConfigError(where + key, f"must be a number, got {value!r}")
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(where + key, f"must be {expected}, got {type(value).__name__} {value!r}")
    return value


def text(t: Mapping[str, Any], key: str, where: str, default: str | None = None) -> Any:
    return value_of(t, key, str, where, default)


def flag(t: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    return bool(value_of(t, key, bool, where, default))


def positive(t: Mapping[str, Any], key: str, where: str, default: Any, *, allow_zero: bool = False) -> Any:
    value = value_of(t, key, (int, float), where, default)
    if value is None:
        return None
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(where + key, f"must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return value


def integer(t: Mapping[str, Any], key: str, where: str, default: Any, *, minimum: int = 1) -> Any:
    value = value_of(t, key, int, where, default)
    if value is not None and value < minimum:
        raise ConfigError(where + key, f"must be >= {minimum}, got {value!r}")
    return value


def usd(t: Mapping[str, Any], key: str, where: str) -> Decimal | None:
    """An amount of dollars (or any non-negative decimal), exact: a number or a string of one; ``None`` when absent."""
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
