"""Prices and cost, in :class:`~decimal.Decimal` US dollars, never floats.

Where a route's price comes from, first match wins:

1. config: ``input_usd_per_mtok`` / ``output_usd_per_mtok`` (/ ``cached_input_usd_per_mtok``) on the route;
2. a local GPU: ``gpu_usd_per_hour`` and ``tokens_per_s`` (the deployment's sustained decode throughput, all
   concurrent requests together). Output $/Mtok = gpu_usd_per_hour / (tokens_per_s x 3600) x 1e6.
   Input: prefill is compute-bound and runs one to two orders of magnitude faster than decode, so it gets its own
   throughput, ``prefill_tokens_per_s`` on the route, priced with the same formula; or an explicit
   ``input_usd_per_mtok``; with neither, input is priced at $0 and the source says so (the GPU hour is then
   charged to generated tokens only, which under-charges long prompts: set one of the two for budgets that bite);
3. a ``litellm`` upstream: litellm's bundled price map entry for the route's model id (USD per token -> per Mtok);
4. otherwise the route is unpriced: its cost is unknown, it cannot be budget-enforced (its worst case is $0), and
   :func:`unpriced_routes` lists it for the start-up warning. An upstream's own reported cost (OpenRouter's
   ``usage.cost``) still bills it after the fact.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from hermes_proxy.config import Config, Route, UpstreamConfig
from hermes_proxy.upstreams import dialect_for
from hermes_proxy.usage import Usage

__all__ = [
    "Price",
    "cost_of",
    "load_litellm_price_map",
    "needs_litellm_prices",
    "resolve_price",
    "resolve_prices",
    "unpriced_routes",
    "worst_case_cost",
]

MTOK = Decimal(1_000_000)
SECONDS_PER_HOUR = Decimal(3600)
ZERO = Decimal(0)
LITELLM_PRICE_FILE = "model_prices_and_context_window_backup.json"


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens. ``cached_input_usd_per_mtok`` ``None`` means cached input costs the input price."""

    input_usd_per_mtok: Decimal
    output_usd_per_mtok: Decimal
    cached_input_usd_per_mtok: Decimal | None
    source: str


#: every route's price, keyed by the route (so two aliases of one ``upstream:model`` keep their own)
Prices = Mapping[Route, "Price | None"]


def resolve_price(route: Route, upstream: UpstreamConfig, *, litellm_prices: Mapping[str, Any] | None) -> Price | None:
    """The price of ``route`` (see the module docstring for the order), ``None`` when unpriced."""
    if route.input_usd_per_mtok is not None and route.output_usd_per_mtok is not None:
        return Price(route.input_usd_per_mtok, route.output_usd_per_mtok, route.cached_input_usd_per_mtok, "config")
    if route.gpu_usd_per_hour is not None and route.tokens_per_s is not None:
        return _gpu_price(route, route.gpu_usd_per_hour, route.tokens_per_s)
    if route.input_usd_per_mtok is not None or route.output_usd_per_mtok is not None:
        missing = "input" if route.input_usd_per_mtok is None else "output"
        source = f"config (no {missing} price: counted as $0)"
        return Price(route.input_usd_per_mtok or ZERO, route.output_usd_per_mtok or ZERO,
                     route.cached_input_usd_per_mtok, source)
    if litellm_prices is not None and dialect_for(upstream).uses_litellm_prices:
        return _litellm_price(route.model, litellm_prices)
    return None


def needs_litellm_prices(route: Route, upstream: UpstreamConfig) -> bool:
    """Whether pricing ``route`` needs litellm's price map (a litellm upstream and no price in config)."""
    return (dialect_for(upstream).uses_litellm_prices and route.input_usd_per_mtok is None
            and route.output_usd_per_mtok is None and route.gpu_usd_per_hour is None)


def _gpu_price(route: Route, per_hour: Decimal, tokens_per_s: Decimal) -> Price:
    output = route.output_usd_per_mtok
    if output is None:
        output = per_hour / (tokens_per_s * SECONDS_PER_HOUR) * MTOK
    source = f"gpu: ${per_hour}/h at {tokens_per_s} tok/s"
    prefill = _prefill_tokens_per_s(route)
    if route.input_usd_per_mtok is not None:
        input_price = route.input_usd_per_mtok
        source += ", input from config"
    elif prefill is not None:
        input_price = per_hour / (prefill * SECONDS_PER_HOUR) * MTOK
        source += f", prefill {prefill} tok/s"
    else:
        input_price = ZERO
        source += ", input unpriced ($0)"
    return Price(input_price, output, route.cached_input_usd_per_mtok, source)


def _prefill_tokens_per_s(route: Route) -> Decimal | None:
    value = route.prefill_tokens_per_s
    if value is None:
        return None
    amount = Decimal(str(value))
    return amount if amount.is_finite() and amount > 0 else None


def _litellm_price(model: str, prices: Mapping[str, Any]) -> Price | None:
    entry = prices.get(model)
    if not isinstance(entry, Mapping):
        return None
    input_cost = _per_mtok(entry.get("input_cost_per_token"))
    output_cost = _per_mtok(entry.get("output_cost_per_token"))
    if input_cost is None or output_cost is None:
        return None
    cached = _per_mtok(entry.get("cache_read_input_token_cost"))
    return Price(input_cost, output_cost, cached, "litellm price map")


def _per_mtok(per_token: Any) -> Decimal | None:
    if isinstance(per_token, bool) or not isinstance(per_token, (int, float, str)):
        return None
    try:
        amount = Decimal(str(per_token))  # str() keeps the digits written in the JSON (1e-06, not 9.99e-07)
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0:
        return None
    return amount * MTOK


def load_litellm_price_map() -> dict[str, Any]:
    """litellm's bundled price map, read from its installed package without importing litellm; ``{}`` without it.

    About 3 MB of JSON: call it only when a litellm route lacks a config price, once, and keep the result.
    """
    try:
        spec = importlib.util.find_spec("litellm")
    except (ImportError, ValueError):
        return {}
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(location) / LITELLM_PRICE_FILE
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return {}


def cost_of(usage: Usage, price: Price | None) -> Decimal | None:
    """The cost of ``usage``: the upstream's own reported cost when it gave one (an explicit 0 is a real 0), else
    uncached input + cached input + completion at ``price``; ``None`` when neither is known.

    Reasoning tokens are a part of completion tokens and are billed once, as output.
    """
    if usage.upstream_cost_usd is not None:
        return usage.upstream_cost_usd
    if price is None:
        return None
    cached = min(max(usage.cached_prompt_tokens, 0), max(usage.prompt_tokens, 0))
    uncached = max(usage.prompt_tokens, 0) - cached
    cached_rate = price.cached_input_usd_per_mtok
    if cached_rate is None:
        cached_rate = price.input_usd_per_mtok
    token_dollars_per_mtok = (uncached * price.input_usd_per_mtok + cached * cached_rate
                              + max(usage.completion_tokens, 0) * price.output_usd_per_mtok)
    return token_dollars_per_mtok / MTOK


def worst_case_cost(prompt_tokens: int, max_tokens: int, price: Price | None) -> Decimal:
    """The most a request can cost: every prompt token uncached, ``max_tokens`` generated.

    ``Decimal(0)`` for an unpriced route: such routes cannot be budget-enforced (they are flagged at start-up).
    """
    if price is None:
        return ZERO
    return (max(prompt_tokens, 0) * price.input_usd_per_mtok + max(max_tokens, 0) * price.output_usd_per_mtok) / MTOK


def resolve_prices(config: Config) -> dict[Route, Price | None]:
    """Every route's price, keyed by the route itself: two aliases routed to one ``upstream:model`` keep their own
    prices. litellm's map is read only if needed, once."""
    litellm_prices: dict[str, Any] | None = None
    prices: dict[Route, Price | None] = {}
    for model in config.models:
        for route in model.routes:
            upstream = config.upstream(route.upstream)
            if litellm_prices is None and needs_litellm_prices(route, upstream):
                litellm_prices = load_litellm_price_map()
            prices[route] = resolve_price(route, upstream, litellm_prices=litellm_prices)
    return prices


def unpriced_routes(config: Config, prices: Mapping[Route, Price | None] | None = None) -> list[str]:
    """``"<alias> via <upstream>:<model>"`` for every route without a price, for the start-up warning."""
    if prices is None:
        prices = resolve_prices(config)
    return [f"{model.alias} via {route.label}" for model in config.models for route in model.routes
            if prices.get(route) is None]

