"""Prices and cost: Decimal to the cent and below, reasoning billed once, upstream cost wins, litellm's real map."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hermes_proxy.config import Route, UpstreamConfig, parse_config
from hermes_proxy.pricing import (
    Price,
    cost_of,
    load_litellm_price_map,
    needs_litellm_prices,
    resolve_price,
    resolve_prices,
    unpriced_routes,
    worst_case_cost,
)
from hermes_proxy.usage import Usage

D = Decimal
ONE_THREE = Price(D("1"), D("3"), None, "config")
OPENROUTER = UpstreamConfig(name="openrouter", kind="openrouter", base_url="https://openrouter.ai/api/v1")
LITELLM = UpstreamConfig(name="nebius", kind="litellm")
VLLM = UpstreamConfig(name="local", kind="vllm", base_url="http://127.0.0.1:8000/v1")


@pytest.fixture(scope="module")
def litellm_prices() -> dict[str, Any]:
    return load_litellm_price_map()


# --- cost_of ----------------------------------------------------------------------------------------------------------


def test_known_workload_at_known_prices() -> None:
    cost = cost_of(Usage(prompt_tokens=100_000, completion_tokens=2_000), ONE_THREE)
    assert cost == D("0.106")
    assert isinstance(cost, Decimal)


@pytest.mark.parametrize(("usage", "price", "expected"), [
    # Nous Portal's listed 405B price: to the sub-cent, no float noise
    (Usage(prompt_tokens=1_234_567, completion_tokens=54_321), Price(D("0.09"), D("0.37"), None, "config"),
     D("0.1312098")),
    (Usage(prompt_tokens=1, completion_tokens=1), ONE_THREE, D("0.000004")),
    (Usage(prompt_tokens=0, completion_tokens=0), ONE_THREE, D("0")),
    (Usage(prompt_tokens=131_072, completion_tokens=32_768), ONE_THREE, D("0.229376")),
])
def test_cost_is_exact(usage: Usage, price: Price, expected: Decimal) -> None:
    assert cost_of(usage, price) == expected


def test_reasoning_is_billed_once_as_output() -> None:
    with_reasoning = Usage(prompt_tokens=1_000, completion_tokens=10_000, reasoning_tokens=8_000)
    without = Usage(prompt_tokens=1_000, completion_tokens=10_000)
    assert cost_of(with_reasoning, ONE_THREE) == cost_of(without, ONE_THREE) == D("0.031")


def test_cached_input_at_its_own_price_or_the_input_price() -> None:
    usage = Usage(prompt_tokens=100_000, cached_prompt_tokens=60_000, completion_tokens=2_000)
    assert cost_of(usage, Price(D("1"), D("3"), D("0.25"), "config")) == D("0.061")
    assert cost_of(usage, ONE_THREE) == D("0.106")
    # more cached tokens than prompt tokens (a confused upstream) never makes a negative uncached count
    odd = Usage(prompt_tokens=100, cached_prompt_tokens=500, completion_tokens=0)
    assert cost_of(odd, Price(D("1"), D("3"), D("0.5"), "config")) == D("0.00005")


def test_upstream_cost_wins_and_an_explicit_zero_is_real() -> None:
    usage = Usage(prompt_tokens=100_000, completion_tokens=2_000, upstream_cost_usd=D("0.0931"))
    assert cost_of(usage, ONE_THREE) == D("0.0931")
    assert cost_of(usage, None) == D("0.0931")
    free = Usage(prompt_tokens=100_000, completion_tokens=2_000, upstream_cost_usd=D("0"))
    assert cost_of(free, ONE_THREE) == D("0")
    assert cost_of(free, ONE_THREE) is not None


def test_unpriced_without_upstream_cost_is_unknown() -> None:
    assert cost_of(Usage(prompt_tokens=10, completion_tokens=10), None) is None


def test_worst_case_cost() -> None:
    assert worst_case_cost(100_000, 32_000, ONE_THREE) == D("0.196")
    assert worst_case_cost(100_000, 32_000, None) == D("0")


# --- resolve_price ----------------------------------------------------------------------------------------------------


def test_config_price_wins(litellm_prices: dict[str, Any]) -> None:
    route = Route(upstream="nebius", model="nebius/NousResearch/Hermes-4-405B", input_usd_per_mtok=D("0.5"),
                  output_usd_per_mtok=D("1.5"), cached_input_usd_per_mtok=D("0.1"),
                  gpu_usd_per_hour=D("20"), tokens_per_s=D("100"))
    price = resolve_price(route, LITELLM, litellm_prices=litellm_prices)
    assert price == Price(D("0.5"), D("1.5"), D("0.1"), "config")
    assert not needs_litellm_prices(route, LITELLM)


def test_litellm_price_map_from_the_installed_file(litellm_prices: dict[str, Any]) -> None:
    entry = litellm_prices["nebius/NousResearch/Hermes-4-405B"]
    assert (entry["input_cost_per_token"], entry["output_cost_per_token"]) == (1e-06, 3e-06)
    route = Route(upstream="nebius", model="nebius/NousResearch/Hermes-4-405B")
    assert needs_litellm_prices(route, LITELLM)
    price = resolve_price(route, LITELLM, litellm_prices=litellm_prices)
    assert price is not None
    assert (price.input_usd_per_mtok, price.output_usd_per_mtok) == (D("1"), D("3"))
    assert price.source == "litellm price map"
    assert cost_of(Usage(prompt_tokens=100_000, completion_tokens=2_000), price) == D("0.106")


def test_litellm_route_unknown_to_the_map_or_map_not_loaded(litellm_prices: dict[str, Any]) -> None:
    assert resolve_price(Route(upstream="nebius", model="nebius/no-such-model"), LITELLM,
                         litellm_prices=litellm_prices) is None
    assert resolve_price(Route(upstream="nebius", model="nebius/NousResearch/Hermes-4-405B"), LITELLM,
                         litellm_prices=None) is None


def test_the_map_is_only_for_litellm_upstreams(litellm_prices: dict[str, Any]) -> None:
    route = Route(upstream="openrouter", model="nebius/NousResearch/Hermes-4-405B")
    assert not needs_litellm_prices(route, OPENROUTER)
    assert resolve_price(route, OPENROUTER, litellm_prices=litellm_prices) is None


def test_reading_the_map_does_not_import_litellm() -> None:
    code = ("import sys; from hermes_proxy.pricing import load_litellm_price_map\n"
            "assert 'nebius/NousResearch/Hermes-4-405B' in load_litellm_price_map()\n"
            "assert 'litellm' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ),
                   cwd=Path(__file__).resolve().parent.parent)


def test_gpu_price_formula() -> None:
    # an 8-GPU node at $20/h sustaining 1,000 generated tokens/s: $20 / 3.6M tokens = $5.5556 per Mtok
    route = Route(upstream="local", model="Hermes-4-405B-FP8", gpu_usd_per_hour=D("20"), tokens_per_s=D("1000"))
    price = resolve_price(route, VLLM, litellm_prices=None)
    assert price is not None
    assert abs(price.output_usd_per_mtok - D(20) / D("3.6")) < D("1e-20")
    assert price.input_usd_per_mtok == 0
    assert price.source == "gpu: $20/h at 1000 tok/s, input unpriced ($0)"
    # one hour of generation costs one GPU hour
    hour = Usage(prompt_tokens=0, completion_tokens=3_600_000)
    assert abs(cost_of(hour, price) - D(20)) < D("1e-18")  # type: ignore[operator]


def test_gpu_price_with_a_configured_input_price() -> None:
    route = Route(upstream="local", model="m", input_usd_per_mtok=D("0.2"), gpu_usd_per_hour=D("20"),
                  tokens_per_s=D("1000"))
    price = resolve_price(route, VLLM, litellm_prices=None)
    assert price is not None and price.input_usd_per_mtok == D("0.2") and "input from config" in price.source


def test_gpu_input_price_from_prefill_throughput() -> None:
    # prefill_tokens_per_s is a proposed Route key; a stand-in route carries it here
    route = SimpleNamespace(upstream="local", model="m", input_usd_per_mtok=None, output_usd_per_mtok=None,
                            cached_input_usd_per_mtok=None, gpu_usd_per_hour=D("36"), tokens_per_s=D("1000"),
                            prefill_tokens_per_s=D("10000"))
    price = resolve_price(route, VLLM, litellm_prices=None)  # type: ignore[arg-type]
    assert price is not None
    assert price.output_usd_per_mtok == D("10")
    assert price.input_usd_per_mtok == D("1")
    assert "prefill 10000 tok/s" in price.source


def test_partial_config_price_counts_the_missing_side_as_zero() -> None:
    route = Route(upstream="openrouter", model="m", output_usd_per_mtok=D("3"))
    price = resolve_price(route, OPENROUTER, litellm_prices=None)
    assert price == Price(D("0"), D("3"), None, "config (no input price: counted as $0)")


def test_no_price_anywhere_is_unpriced() -> None:
    assert resolve_price(Route(upstream="openrouter", model="m"), OPENROUTER, litellm_prices=None) is None


# --- unpriced_routes ----------------------------------------------------------------------------------------------


def test_unpriced_routes_for_the_startup_warning() -> None:
    config = parse_config({
        "upstreams": [
            {"name": "openrouter", "kind": "openrouter"},
            {"name": "nebius", "kind": "litellm"},
            {"name": "local", "kind": "vllm"},
        ],
        "models": {
            "hermes-4-405b": {"routes": [
                {"upstream": "openrouter", "model": "nousresearch/hermes-4-405b",
                 "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 3.0},
                {"upstream": "nebius", "model": "nebius/NousResearch/Hermes-4-405B"},
                {"upstream": "local", "model": "Hermes-4-405B-FP8", "gpu_usd_per_hour": 20, "tokens_per_s": 1000},
            ]},
            "hermes-4-70b": {"routes": [
                {"upstream": "openrouter", "model": "nousresearch/hermes-4-70b"},
                {"upstream": "nebius", "model": "nebius/not-in-the-map"},
            ]},
        },
        "ledger": {"url": "memory://"},
    }, env={})
    assert unpriced_routes(config) == [
        "hermes-4-70b via openrouter:nousresearch/hermes-4-70b",
        "hermes-4-70b via nebius:nebius/not-in-the-map",
    ]
    prices = resolve_prices(config)
    by_label = {route.label: price for route, price in prices.items()}
    assert set(by_label) == {r.label for m in config.models for r in m.routes}
    assert by_label["openrouter:nousresearch/hermes-4-405b"] == Price(D("1.0"), D("3.0"), None, "config")
    litellm_price = by_label["nebius:nebius/NousResearch/Hermes-4-405B"]
    assert litellm_price is not None and litellm_price.source == "litellm price map"
    assert unpriced_routes(config, prices) == unpriced_routes(config)


def test_resolve_prices_skips_the_litellm_map_when_no_route_needs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import hermes_proxy.pricing as pricing

    def boom() -> dict[str, Any]:
        raise AssertionError("price map read although no litellm route lacks a price")

    monkeypatch.setattr(pricing, "load_litellm_price_map", boom)
    config = parse_config({
        "upstreams": [{"name": "nebius", "kind": "litellm"}],
        "models": {"m": {"routes": [{"upstream": "nebius", "model": "x", "input_usd_per_mtok": 1,
                                     "output_usd_per_mtok": 2}]}},
        "ledger": {"url": "memory://"},
    }, env={})
    (route,) = config.models[0].routes
    assert resolve_prices(config) == {route: Price(D("1"), D("2"), None, "config")}


def test_two_aliases_on_one_upstream_model_keep_their_own_prices() -> None:
    config = parse_config({
        "upstreams": [{"name": "local", "kind": "vllm", "base_url": "http://127.0.0.1:9/v1"}],
        "models": {
            "hermes": {"routes": [{"upstream": "local", "model": "Hermes-4-405B", "input_usd_per_mtok": 1,
                                   "output_usd_per_mtok": 3}]},
            "hermes-internal": {"routes": [{"upstream": "local", "model": "Hermes-4-405B",
                                            "gpu_usd_per_hour": 98, "tokens_per_s": 37}]},
        },
        "ledger": {"url": "memory://"},
    }, env={})
    prices = resolve_prices(config)
    (public,), (internal,) = (m.routes for m in config.models)
    assert public.label == internal.label
    assert prices[public] == Price(D("1"), D("3"), None, "config")
    internal_price = prices[internal]
    assert internal_price is not None and internal_price.output_usd_per_mtok > 700  # $98/h at 37 tok/s
