"""Memory per device: weights, KV cache and runtime overhead for each pipeline stage, and what fits.

* weights: every tensor's bytes in its storage format, split over devices: the first stage also holds the embedding,
  the last the output head; tensor parallelism divides each stage's matrices and replicates its norms.
* KV cache per device: the stage's layers and ``kv_heads / TP`` heads, x context x concurrency.
* fits: weights + KV + overhead <= usable (= capacity x mem-fraction), on the fullest device.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from hermes_proxy.sizing.assumptions import runtime_profile
from hermes_proxy.sizing.layout import Layout
from hermes_proxy.sizing.quants import WeightBreakdown
from hermes_proxy.sizing.scenario import Scenario


@dataclass(frozen=True, slots=True)
class Overhead:
    fixed: int
    activations: int
    logits: int

    @property
    def total(self) -> int:
        return self.fixed + self.activations + self.logits


@dataclass(frozen=True, slots=True)
class StageMemory:
    """What each device of one pipeline stage holds (all tensor-parallel ranks of a stage hold the same)."""

    layers: int
    weights: int
    kv_per_token: int     # one sequence, one token, this device's share
    kv: int               # at context x concurrency


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    capacity: int
    usable: int
    fraction: float
    overhead: Overhead
    stages: tuple[StageMemory, ...]

    @property
    def fullest(self) -> StageMemory:
        return max(self.stages, key=lambda s: s.weights + s.kv)

    @property
    def per_device(self) -> int:
        stage = self.fullest
        return stage.weights + stage.kv + self.overhead.total

    @property
    def fits(self) -> bool:
        return self.per_device <= self.usable

    @property
    def headroom(self) -> int:
        """Spare bytes on the fullest device (negative: short by that much)."""
        return self.usable - self.per_device

    def free_for_kv(self, stage: StageMemory) -> int:
        return self.usable - self.overhead.total - stage.weights


def overhead_for(sc: Scenario, layout: Layout) -> Overhead:
    profile = runtime_profile(layout.runtime)
    m, tp = sc.model, layout.tensor_parallel
    activations = profile.prefill_chunk_tokens * (4 * m.hidden + 2 * ceil(m.intermediate / tp)) * 2
    return Overhead(fixed=profile.fixed_bytes, activations=activations, logits=sc.concurrency * m.vocab * 4)


def memory_plan(sc: Scenario, layout: Layout, weights: WeightBreakdown) -> MemoryPlan:
    assert sc.hardware is not None
    m, tp = sc.model, layout.tensor_parallel
    kv_heads_here = m.kv_heads // tp if tp <= m.kv_heads else 1   # beyond kv_heads, heads are replicated
    stages: list[StageMemory] = []
    start = 0
    last = len(layout.stage_layers) - 1
    for index, count in enumerate(layout.stage_layers):
        layer_ids = range(start, start + count)
        start += count
        sharded = sum(weights.layer_linear[i] for i in layer_ids)
        replicated = sum(weights.layer_norms[i] for i in layer_ids)
        if index == 0:
            sharded += weights.embed
        if index == last:
            sharded += weights.lm_head
            replicated += weights.final_norm
        kv_per_token = sc.kv.bytes_for(2 * count * kv_heads_here * m.head_dim)
        stages.append(StageMemory(
            layers=count,
            weights=ceil(sharded / tp) + replicated,
            kv_per_token=kv_per_token,
            kv=kv_per_token * sc.context * sc.concurrency,
        ))
    capacity = sc.hardware.device.memory_bytes
    fraction = sc.usable_fraction
    return MemoryPlan(capacity=capacity, usable=int(capacity * fraction), fraction=fraction,
                      overhead=overhead_for(sc, layout), stages=tuple(stages))


def max_context(sc: Scenario, memory: MemoryPlan) -> int:
    """Longest context for ``concurrency`` sequences that fits (capped at the model's); 0 if not even one token."""
    longest = sc.model.max_context
    for stage in memory.stages:
        longest = min(longest, max(0, memory.free_for_kv(stage)) // (stage.kv_per_token * sc.concurrency))
    return longest


def max_concurrency(sc: Scenario, memory: MemoryPlan) -> int:
    """Most sequences of ``context`` tokens that fit at once; 0 if not one."""
    return min(max(0, memory.free_for_kv(stage)) // (stage.kv_per_token * sc.context) for stage in memory.stages)
