"""How a model is laid out over devices: tensor parallel within a node, pipeline stages of whole layers.

Pipeline stages take whole layers (vLLM's default split: equal shares, the remainder to the stages before the last);
tensor parallelism divides each stage's matrices. Apple and CPU machines run llama.cpp on one device.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from hermes_proxy.errors import InvalidRequest
from hermes_proxy.sizing.assumptions import GPUS_PER_NODE
from hermes_proxy.sizing.hardware import Hardware
from hermes_proxy.sizing.models import ModelArch
from hermes_proxy.sizing.quants import Runtime


@dataclass(frozen=True, slots=True)
class Layout:
    runtime: Runtime
    devices: int
    tensor_parallel: int
    pipeline_parallel: int
    stage_layers: tuple[int, ...]

    def microbatches(self, concurrency: int) -> int:
        """Sequences' passes in flight across pipeline stages (llama.cpp runs its layer split one GPU at a time)."""
        return min(concurrency, self.pipeline_parallel) if self.runtime == "vllm" else 1

    @property
    def nodes(self) -> int:
        return ceil(self.devices / GPUS_PER_NODE)

    def describe(self) -> str:
        if self.devices == 1:
            return f"{self.runtime}, one device"
        if self.runtime == "llama.cpp":
            return f"llama.cpp, layers split over {self.devices} GPUs (run one after another)"
        parts = [f"tensor parallel {self.tensor_parallel}"]
        if self.pipeline_parallel > 1:
            parts.append(f"pipeline parallel {self.pipeline_parallel}")
        return "vLLM, " + " x ".join(parts)

    def short(self) -> str:
        if self.runtime == "llama.cpp":
            return "llama.cpp" + (f", {self.devices}-way layer split" if self.devices > 1 else "")
        return f"vLLM TP {self.tensor_parallel}" + (f" x PP {self.pipeline_parallel}" if self.pipeline_parallel > 1 else "")


def tensor_parallel_sizes(model: ModelArch) -> tuple[int, ...]:
    """TP sizes vLLM accepts within a node: divide the attention heads, and divide or be divided by the KV heads."""
    return tuple(
        t for t in range(1, GPUS_PER_NODE + 1)
        if model.heads % t == 0 and (model.kv_heads % t == 0 or t % model.kv_heads == 0)
    )


def split_layers(layers: int, stages: int) -> tuple[int, ...]:
    """vLLM's default pipeline split: equal shares, the remainder to the stages before the last (which has lm_head)."""
    parts = [layers // stages] * stages
    for i in range(2, layers % stages + 2):
        parts[-i] += 1
    return tuple(parts)


def choose_layout(model: ModelArch, runtime: Runtime, hardware: Hardware) -> Layout:
    n = hardware.count
    if hardware.device.kind != "gpu":
        return Layout("llama.cpp", 1, 1, 1, (model.layers,))
    if runtime == "llama.cpp":
        tp, pp = 1, n
    else:
        tp = max(t for t in tensor_parallel_sizes(model) if n % t == 0)
        pp = n // tp
    if pp > model.layers:
        raise InvalidRequest(f"{n} GPUs is more pipeline stages than {model.name} has layers ({model.layers})",
                             param="--gpus")
    return Layout(runtime, n, tp, pp, split_layers(model.layers, pp))
