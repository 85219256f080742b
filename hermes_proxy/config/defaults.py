"""The built-in config, used when there is no config file: what a first run gets with no set-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from hermes_proxy.config.environ import environment
from hermes_proxy.config.sections import parse_config
from hermes_proxy.config.types import Config


def default_config(*, env: Mapping[str, str] | None = None) -> Config:
    """No config file: Nous Portal and/or OpenRouter when their key is in the environment, else the simulated demo.

    Open to local callers (``auth = "none"``, bound to 127.0.0.1) so that a first run needs no set-up.
    """
    environ = environment(env)
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
    return replace(config, is_default=True)
