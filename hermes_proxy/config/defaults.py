"""The built-in config, used when there is no config file: what a first run gets with no set-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from hermes_proxy.config.environ import environment
from hermes_proxy.config.sections import parse_config
from hermes_proxy.config.types import UPSTREAM_KINDS, Config


def default_config(*, env: Mapping[str, str] | None = None) -> Config:
    """No config file: Nous Portal and/or OpenRouter when their key is in the environment, else the simulated demo.

    Open to local callers (``auth = "none"``, bound to 127.0.0.1) so that a first run needs no set-up.
    """
    environ = environment(env)
    keyed = [kind for kind, d in UPSTREAM_KINDS.items()
             if d.builtin_routes and d.api_key_env and environ.get(d.api_key_env)]
    chosen = keyed or [kind for kind, d in UPSTREAM_KINDS.items() if d.simulated]
    upstreams: list[dict[str, Any]] = [{"name": kind, "kind": kind} for kind in chosen]
    models: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for kind in chosen:
        for route in UPSTREAM_KINDS[kind].builtin_routes:
            models.setdefault(route.alias, {"routes": []})["routes"].append({
                "upstream": kind, "model": route.model, "input_usd_per_mtok": route.input_usd_per_mtok,
                "output_usd_per_mtok": route.output_usd_per_mtok})
    data: dict[str, Any] = {
        "server": {"auth": "none"},
        "upstreams": upstreams,
        "models": models,
    }
    if environ.get("HERMES_PROXY_LEDGER_URL"):
        data["ledger"] = {"url": environ["HERMES_PROXY_LEDGER_URL"]}
    config = parse_config(data, env=environ, source=None)
    return replace(config, is_default=True)
