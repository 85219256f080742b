"""The sizing answer: :func:`plan` puts layout, memory, fit, speed and cost together for one scenario, with notes.

Formulas (docs/sizing.md has them with worked numbers):

* weights: every tensor's bytes in its storage format (quants.py), split over devices: pipeline stages take whole
  layers (the first also the embedding, the last the output head), tensor parallelism divides each stage's matrices and
  replicates its norms.
* KV cache per token = 2 x layers x kv_heads x head_dim x bytes per value; per device it is the stage's layers and
  ``kv_heads / TP`` heads. For ``concurrency`` sequences of ``context`` tokens: x context x concurrency.
* fits: weights + KV + overhead <= usable (= capacity x mem-fraction), on the fullest device.
* decode, an upper bound: each step streams the weights (not the embedding table: one row of it) plus every running
  sequence's KV cache, at ``TP x device bandwidth``. With pipeline parallelism ``M = min(concurrency, PP)``
  micro-batches are in flight, so one step costs ``(W + concurrency / M x KV_seq) / (TP x BW)``; per-sequence tok/s is
  its inverse and the aggregate is concurrency times that.
* prefill, an estimate: ``2 x matmul params x N + 2 x layers x heads x head_dim x N^2`` FLOPs at ``efficiency`` of the
  devices' dense peak, or the weight streaming time per prefill chunk if that is longer.
* cost per million tokens = USD per hour x 10^6 / (tokens per second x 3600).

Each step lives in its own module (scenario, layout, memory, speed, cost, fit, table); their names are importable from
here too. Pure functions, frozen results.
"""

from __future__ import annotations

from dataclasses import dataclass

from hermes_proxy.sizing.cost import USD_PLACES, CostEstimate, cost_estimate, usd_per_mtok
from hermes_proxy.sizing.fit import FitRow, SmallestFit, deployable_counts, fit_overview, smallest_fit
from hermes_proxy.sizing.layout import Layout, choose_layout, split_layers, tensor_parallel_sizes
from hermes_proxy.sizing.memory import (
    MemoryPlan,
    Overhead,
    StageMemory,
    max_concurrency,
    max_context,
    memory_plan,
    overhead_for,
)
from hermes_proxy.sizing.quants import WeightBreakdown
from hermes_proxy.sizing.scenario import Scenario
from hermes_proxy.sizing.speed import DecodeBound, PrefillEstimate, decode_bound, prefill_estimate, prefill_flops
from hermes_proxy.sizing.table import TableCell, TableRow, sizing_table

__all__ = [
    "USD_PLACES",
    "CostEstimate",
    "DecodeBound",
    "FitRow",
    "Layout",
    "MemoryPlan",
    "Overhead",
    "Plan",
    "PrefillEstimate",
    "Scenario",
    "SmallestFit",
    "StageMemory",
    "TableCell",
    "TableRow",
    "choose_layout",
    "cost_estimate",
    "decode_bound",
    "deployable_counts",
    "fit_overview",
    "max_concurrency",
    "max_context",
    "memory_plan",
    "overhead_for",
    "plan",
    "plan_notes",
    "prefill_estimate",
    "prefill_flops",
    "sizing_table",
    "smallest_fit",
    "split_layers",
    "tensor_parallel_sizes",
    "usd_per_mtok",
]


@dataclass(frozen=True, slots=True)
class Plan:
    scenario: Scenario
    weights: WeightBreakdown
    layout: Layout | None = None
    memory: MemoryPlan | None = None
    max_context: int | None = None
    max_concurrency: int | None = None
    smallest: SmallestFit | None = None
    decode: DecodeBound | None = None
    prefill: PrefillEstimate | None = None
    cost: CostEstimate | None = None
    notes: tuple[str, ...] = ()

    @property
    def kv_bytes_per_token(self) -> int:
        return self.scenario.kv_bytes_per_token

    @property
    def kv_bytes_per_sequence(self) -> int:
        return self.kv_bytes_per_token * self.scenario.context

    @property
    def kv_bytes_total(self) -> int:
        return self.kv_bytes_per_sequence * self.scenario.concurrency


def plan(sc: Scenario) -> Plan:
    weights = sc.weights
    if sc.hardware is None:
        return Plan(scenario=sc, weights=weights, notes=tuple(plan_notes(sc, None)))
    layout = choose_layout(sc.model, sc.runtime, sc.hardware)
    memory = memory_plan(sc, layout, weights)
    decode = decode_bound(sc, layout, weights)
    prefill = prefill_estimate(sc, layout, weights)
    cost = cost_estimate(sc.usd_per_hour, decode, prefill) if sc.usd_per_hour is not None else None
    return Plan(
        scenario=sc, weights=weights, layout=layout, memory=memory,
        max_context=max_context(sc, memory), max_concurrency=max_concurrency(sc, memory),
        smallest=smallest_fit(sc, weights), decode=decode, prefill=prefill, cost=cost,
        notes=tuple(plan_notes(sc, layout, prefill)),
    )


def plan_notes(sc: Scenario, layout: Layout | None, prefill: PrefillEstimate | None = None) -> list[str]:
    notes: list[str] = []
    runtime = sc.runtime
    device = sc.hardware.device if sc.hardware else None
    if not sc.kv.supported_by(runtime):
        other = "llama.cpp" if runtime == "vllm" else "vLLM"
        notes.append(f"{runtime} has no {sc.kv.key} KV cache (that is a {other} option); sized as asked anyway")
    if device is not None and device.kind != "gpu" and not sc.quant.is_gguf and sc.quant.key != "bf16":
        notes.append(f"{sc.quant.key} is a vLLM/CUDA format; on {device.kind} use a GGUF build (q8_0, q4_k_m, ...)")
    if prefill is not None and prefill.weight_only:
        notes.append(f"{device.name if device else 'this GPU'} has no {sc.quant.math.upper()} tensor cores: "
                     f"{sc.quant.key} runs weight-only (dequantised to BF16) if at all; prefill at BF16 peak")
    if layout is not None and layout.runtime == "llama.cpp" and layout.devices > 1:
        notes.append("llama.cpp splits layers over the GPUs and runs them one after another: decode streams at one "
                     "GPU's bandwidth (use a vLLM format to add the GPUs' bandwidths with tensor parallelism)")
    if layout is not None and layout.runtime == "vllm" and layout.pipeline_parallel > 1:
        where = f"across {layout.nodes} nodes (Ray cluster)" if layout.nodes > 1 else "inside one node"
        notes.append(f"{layout.devices} GPUs = tensor parallel {layout.tensor_parallel} x pipeline parallel "
                     f"{layout.pipeline_parallel} {where}; one sequence's step passes every stage in turn")
    if device is not None and device.kind == "apple" and sc.mem_fraction is None:
        notes.append("macOS lets the GPU wire about 75% of unified memory; raise it with "
                     "`sudo sysctl iogpu.wired_limit_mb=N` and pass --mem-fraction")
    if device is not None and device.kind == "cpu":
        notes.append("CPU bandwidth is the theoretical peak (channels x 8 bytes x MT/s); measured bandwidth is lower, "
                     "and across two sockets only with NUMA-aware placement")
        if prefill is None:
            notes.append("no prefill estimate without --cpu-tflops (dense BF16 TFLOPS of the CPUs)")
    return notes
