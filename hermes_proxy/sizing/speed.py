"""Speed: an upper bound on decode from memory bandwidth, and an estimate of prefill from compute.

* decode: each step streams the weights (not the embedding table: one row of it) plus every running sequence's KV
  cache, at ``TP x device bandwidth``. With pipeline parallelism ``M = min(concurrency, PP)`` micro-batches are in
  flight, so one step costs ``(W + concurrency / M x KV_seq) / (TP x BW)``; per-sequence tok/s is its inverse and the
  aggregate is concurrency times that.
* prefill: ``2 x matmul params x N + 2 x layers x heads x head_dim x N^2`` FLOPs at ``efficiency`` of the devices'
  dense peak, or the weight streaming time per prefill chunk if that is longer.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from hermes_proxy.sizing.assumptions import runtime_profile
from hermes_proxy.sizing.layout import Layout
from hermes_proxy.sizing.models import ModelArch
from hermes_proxy.sizing.quants import WeightBreakdown
from hermes_proxy.sizing.scenario import Scenario


@dataclass(frozen=True, slots=True)
class DecodeBound:
    """Upper bound on decode speed from memory bandwidth (compute, communication and scheduling only lower it)."""

    weights_read: int           # bytes per step
    kv_read_per_sequence: int   # bytes per step per sequence at the full context
    concurrency: int
    microbatches: int
    bandwidth: float            # bytes/s streaming one step: tensor_parallel x device bandwidth
    step_seconds: float
    per_sequence: float         # tokens/s of one sequence
    aggregate: float            # tokens/s of all sequences
    single_stream_peak: float   # one sequence at an empty context: bandwidth / weights


def decode_bound(sc: Scenario, layout: Layout, weights: WeightBreakdown) -> DecodeBound:
    assert sc.hardware is not None
    bandwidth = sc.hardware.device.bandwidth_bytes_per_s * layout.tensor_parallel
    micro = layout.microbatches(sc.concurrency)
    kv_seq = sc.kv_bytes_per_token * sc.context
    step_bytes = weights.read_per_token + sc.concurrency / micro * kv_seq
    step = step_bytes / bandwidth
    return DecodeBound(
        weights_read=weights.read_per_token, kv_read_per_sequence=kv_seq, concurrency=sc.concurrency,
        microbatches=micro, bandwidth=bandwidth, step_seconds=step, per_sequence=1 / step,
        aggregate=sc.concurrency / step, single_stream_peak=bandwidth / weights.read_per_token,
    )


@dataclass(frozen=True, slots=True)
class PrefillEstimate:
    tokens: int
    flops: int
    math: str                # precision whose peak is used
    weight_only: bool        # the hardware lacks the quantization's math precision: BF16 math instead
    peak_flops: float        # all devices, dense
    efficiency: float
    compute_seconds: float
    memory_seconds: float    # weight streaming, once per prefill chunk

    @property
    def seconds(self) -> float:
        return max(self.compute_seconds, self.memory_seconds)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


def prefill_flops(model: ModelArch, tokens: int) -> int:
    logits = 2 * model.vocab * model.hidden   # the output head runs for the last position only
    return 2 * model.matmul_params_per_token * tokens + model.attention_flops(tokens) + logits


def prefill_estimate(sc: Scenario, layout: Layout, weights: WeightBreakdown) -> PrefillEstimate | None:
    assert sc.hardware is not None
    device = sc.hardware.device
    math: str = sc.quant.math
    peak = device.peak_tflops(math)
    weight_only = False
    if peak is None and math != "bf16":
        math, peak, weight_only = "bf16", device.peak_tflops("bf16"), True
    if peak is None:
        return None
    chunks = ceil(sc.context / runtime_profile(layout.runtime).prefill_chunk_tokens)
    total_peak = peak * 1e12 * layout.devices
    flops = prefill_flops(sc.model, sc.context)
    return PrefillEstimate(
        tokens=sc.context, flops=flops, math=math, weight_only=weight_only, peak_flops=total_peak,
        efficiency=sc.prefill_efficiency, compute_seconds=flops / (total_peak * sc.prefill_efficiency),
        memory_seconds=chunks * weights.read_per_token / (device.bandwidth_bytes_per_s * layout.tensor_parallel),
    )
