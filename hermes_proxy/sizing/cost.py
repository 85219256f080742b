"""Cost per million tokens = USD per hour x 10^6 / (tokens per second x 3600), from the rates as config carries them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from hermes_proxy.sizing.speed import DecodeBound, PrefillEstimate

USD_PLACES = Decimal("0.0001")


def usd_per_mtok(usd_per_hour: Decimal, tokens_per_s: Decimal | float) -> Decimal | None:
    """What a million tokens cost when the deployment costs ``usd_per_hour`` and makes ``tokens_per_s``."""
    rate = tokens_per_s if isinstance(tokens_per_s, Decimal) else Decimal(repr(tokens_per_s))
    if not rate.is_finite() or rate <= 0:
        return None
    return (usd_per_hour * 1_000_000 / (rate * 3600)).quantize(USD_PLACES, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class CostEstimate:
    usd_per_hour: Decimal
    output_tokens_per_s: Decimal          # aggregate decode bound, rounded as written to config (0.01)
    prefill_tokens_per_s: Decimal | None  # prefill estimate, rounded as written to config (0.1)
    output_usd_per_mtok: Decimal | None   # all GPU time charged to output tokens at the decode bound
    input_usd_per_mtok: Decimal | None    # all GPU time charged to prompt tokens at the prefill estimate


def cost_estimate(usd_per_hour: Decimal, decode: DecodeBound, prefill: PrefillEstimate | None) -> CostEstimate:
    """Prices from the rates as hermes-proxy's config will carry them (so `size` and the proxy agree to the cent)."""
    out_rate = Decimal(f"{decode.aggregate:.2f}")
    in_rate = Decimal(f"{prefill.tokens_per_s:.1f}") if prefill else None
    return CostEstimate(
        usd_per_hour=usd_per_hour, output_tokens_per_s=out_rate, prefill_tokens_per_s=in_rate,
        output_usd_per_mtok=usd_per_mtok(usd_per_hour, out_rate),
        input_usd_per_mtok=usd_per_mtok(usd_per_hour, in_rate) if in_rate is not None else None,
    )
