"""The question a sizing answers: a model, its weight and KV formats, a context, a concurrency, maybe hardware.

:class:`Scenario` checks its own values and derives what follows from them alone: the runtime that would serve it,
the usable memory fraction, KV bytes per token (2 x layers x kv_heads x head_dim x bytes per value) and the weights.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from hermes_proxy.errors import InvalidRequest
from hermes_proxy.sizing.assumptions import DEFAULT_PREFILL_EFFICIENCY, default_mem_fraction
from hermes_proxy.sizing.hardware import Hardware
from hermes_proxy.sizing.models import ModelArch
from hermes_proxy.sizing.quants import KvDtype, Quantization, Runtime, WeightBreakdown, weight_breakdown


@dataclass(frozen=True, slots=True)
class Scenario:
    model: ModelArch
    quant: Quantization
    kv: KvDtype
    context: int
    concurrency: int = 1
    hardware: Hardware | None = None
    mem_fraction: float | None = None          # None: the default for the hardware kind
    prefill_efficiency: float = DEFAULT_PREFILL_EFFICIENCY
    usd_per_hour: Decimal | None = None        # the whole deployment

    def __post_init__(self) -> None:
        if self.context < 1:
            raise InvalidRequest(f"a context must be at least 1 token, got {self.context}", param="--context")
        if self.context > self.model.max_context:
            raise InvalidRequest(
                f"a context of {self.context:,} tokens is over {self.model.name}'s maximum of "
                f"{self.model.max_context:,} ({self.model.max_context // 1024}k)",
                param="--context",
            )
        if self.concurrency < 1:
            raise InvalidRequest(f"--concurrency must be at least 1, got {self.concurrency}", param="--concurrency")
        if self.mem_fraction is not None and not 0 < self.mem_fraction <= 1:
            raise InvalidRequest(f"--mem-fraction must be in (0, 1], got {self.mem_fraction:g}", param="--mem-fraction")
        if not 0 < self.prefill_efficiency <= 1:
            raise InvalidRequest(
                f"--prefill-efficiency must be in (0, 1], got {self.prefill_efficiency:g}", param="--prefill-efficiency"
            )
        if self.usd_per_hour is not None and (not self.usd_per_hour.is_finite() or self.usd_per_hour < 0):
            raise InvalidRequest(f"--usd-per-hour must be >= 0, got {self.usd_per_hour}", param="--usd-per-hour")

    @property
    def runtime(self) -> Runtime:
        """vLLM for safetensors builds on GPUs; llama.cpp for GGUF, and for every Apple or CPU machine."""
        if self.hardware is not None and self.hardware.device.kind != "gpu":
            return "llama.cpp"
        return self.quant.runtime

    @property
    def usable_fraction(self) -> float:
        if self.mem_fraction is not None:
            return self.mem_fraction
        return default_mem_fraction(self.hardware.device.kind if self.hardware else "gpu")

    @property
    def kv_bytes_per_token(self) -> int:
        return self.kv.bytes_for(self.model.kv_values_per_token())

    @property
    def weights(self) -> WeightBreakdown:
        return weight_breakdown(self.model, self.quant)

    def with_(self, **changes: object) -> Scenario:
        return replace(self, **changes)  # type: ignore[arg-type]
