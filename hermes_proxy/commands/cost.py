"""``hermes-proxy cost``: what a workload costs on one route of a model, or on each of its routes."""

from __future__ import annotations

import argparse
from typing import Any

from hermes_proxy.config import Config, ModelConfig, Route, load_config
from hermes_proxy.errors import InvalidRequest
from hermes_proxy.money import format_usd
from hermes_proxy.pricing import Price, cost_of, load_litellm_price_map, needs_litellm_prices, resolve_price
from hermes_proxy.usage import Usage


def add_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "cost",
        help="cost of a workload on a model's routes",
        description="Print what a workload costs: on one route of the model, or on every route as a table. "
                    "Completion tokens = --output + --reasoning; reasoning is billed once, as output.",
    )
    parser.add_argument("--model", required=True, help="model alias from the config, e.g. hermes-4-405b")
    parser.add_argument("--route", help="upstream name, upstream:model label, or 0-based route index (default: all)")
    parser.add_argument("--input", type=int, required=True, metavar="N", help="prompt tokens")
    parser.add_argument("--output", type=int, required=True, metavar="N", help="answer tokens")
    parser.add_argument("--reasoning", type=int, default=0, metavar="N", help="reasoning tokens on top of --output")
    parser.add_argument("--cached", type=int, default=0, metavar="N", help="how many of the prompt tokens are cached")
    parser.add_argument("--config", help="config file (default: the user's config, or the built-in demo config)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    for name in ("input", "output", "reasoning", "cached"):
        if getattr(args, name, 0) < 0:
            raise InvalidRequest(f"--{name} must be >= 0", param=name)
    if args.cached > args.input:
        raise InvalidRequest("--cached cannot exceed --input", param="cached")
    config = load_config(getattr(args, "config", None))
    model = _model(config, args.model)
    routes = _routes(model, getattr(args, "route", None))
    usage = Usage(prompt_tokens=args.input, completion_tokens=args.output + args.reasoning,
                  reasoning_tokens=args.reasoning, cached_prompt_tokens=args.cached)
    priced = _prices(config, routes)
    print(f"{model.alias}: {_workload(usage)}")
    if len(priced) == 1:
        route, price = priced[0]
        print(f"  route   {route.label}")
        print(f"  price   {_price_text(price)}")
        print(f"  cost    {_cost_text(usage, price)}")
        return 0
    rows = [("route", "input/Mtok", "output/Mtok", "source", "cost")]
    for route, price in priced:
        if price is None:
            rows.append((route.label, "-", "-", "unpriced", "unknown"))
        else:
            rows.append((route.label, format_usd(price.input_usd_per_mtok), format_usd(price.output_usd_per_mtok), price.source,
                         _cost_text(usage, price)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _model(config: Config, alias: str) -> ModelConfig:
    model = config.model(alias)
    if model is None:
        known = ", ".join(m.alias for m in config.models) or "none"
        raise InvalidRequest(f"unknown model {alias!r} (known: {known})", param="model")
    return model


def _routes(model: ModelConfig, selector: str | None) -> list[Route]:
    if selector is None:
        return list(model.routes)
    if selector.isdigit():
        index = int(selector)
        if index >= len(model.routes):
            raise InvalidRequest(f"route index {index} out of range: {model.alias} has {len(model.routes)} route(s)",
                                 param="route")
        return [model.routes[index]]
    chosen = [r for r in model.routes if selector in (r.upstream, r.label)]
    if not chosen:
        known = ", ".join(r.label for r in model.routes)
        raise InvalidRequest(f"{model.alias} has no route {selector!r} (routes: {known})", param="route")
    return chosen


def _prices(config: Config, routes: list[Route]) -> list[tuple[Route, Price | None]]:
    litellm_prices: dict[str, Any] | None = None
    result: list[tuple[Route, Price | None]] = []
    for route in routes:
        upstream = config.upstream(route.upstream)
        if litellm_prices is None and needs_litellm_prices(route, upstream):
            litellm_prices = load_litellm_price_map()
        result.append((route, resolve_price(route, upstream, litellm_prices=litellm_prices)))
    return result


def _workload(usage: Usage) -> str:
    text = f"{usage.prompt_tokens:,} prompt tokens"
    if usage.cached_prompt_tokens:
        text += f" ({usage.cached_prompt_tokens:,} cached)"
    text += f" + {usage.completion_tokens:,} completion tokens"
    if usage.reasoning_tokens:
        answer = usage.completion_tokens - usage.reasoning_tokens
        text += f" ({answer:,} answer + {usage.reasoning_tokens:,} reasoning)"
    return text


def _price_text(price: Price | None) -> str:
    if price is None:
        return "unpriced (no price in config, no GPU cost, no litellm price-map entry)"
    text = f"{format_usd(price.input_usd_per_mtok)} in / {format_usd(price.output_usd_per_mtok)} out per Mtok"
    if price.cached_input_usd_per_mtok is not None:
        text += f", {format_usd(price.cached_input_usd_per_mtok)} cached in"
    return f"{text} ({price.source})"


def _cost_text(usage: Usage, price: Price | None) -> str:
    cost = cost_of(usage, price)
    return "unknown (unpriced route)" if cost is None else format_usd(cost)
