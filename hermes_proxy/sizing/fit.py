"""The least hardware a scenario fits on: a count of one GPU, or the smallest Apple system; and, without hardware,
that answer for every known GPU (:func:`fit_overview`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import ceil

from hermes_proxy.sizing.assumptions import GPUS_PER_NODE, MAX_DEVICES
from hermes_proxy.sizing.hardware import GPUS, Device, Hardware, apple_systems, gpu_device
from hermes_proxy.sizing.layout import Layout, choose_layout, tensor_parallel_sizes
from hermes_proxy.sizing.memory import memory_plan
from hermes_proxy.sizing.models import ModelArch
from hermes_proxy.sizing.quants import Runtime, WeightBreakdown
from hermes_proxy.sizing.scenario import Scenario
from hermes_proxy.sizing.speed import decode_bound


@dataclass(frozen=True, slots=True)
class SmallestFit:
    """The least hardware that fits the scenario.

    GPUs: ``devices`` is the smallest count among the layouts people deploy (vLLM: a tensor-parallel size within one
    node, then whole nodes of GPUS_PER_NODE; llama.cpp: any count); ``min_devices`` the smallest count of all, which
    for vLLM may need pipeline parallelism inside a node (e.g. 6 GPUs as TP 2 x PP 3). None: more than MAX_DEVICES.
    """

    devices: int | None = None
    layout: Layout | None = None
    min_devices: int | None = None
    min_layout: Layout | None = None
    apple_system: Device | None = None     # Apple: smallest known system that fits
    memory_needed: int | None = None       # one machine: capacity it would need (per_device / fraction)


def deployable_counts(model: ModelArch, runtime: Runtime) -> tuple[int, ...]:
    if runtime == "llama.cpp":
        return tuple(range(1, MAX_DEVICES + 1))
    whole_nodes = range(2 * GPUS_PER_NODE, MAX_DEVICES + 1, GPUS_PER_NODE)
    return (*tensor_parallel_sizes(model), *whole_nodes)


def _fits(sc: Scenario, hardware: Hardware, weights: WeightBreakdown) -> tuple[bool, Layout]:
    layout = choose_layout(sc.model, sc.runtime, hardware)
    return memory_plan(sc.with_(hardware=hardware), layout, weights).fits, layout


def _first_fit(sc: Scenario, counts: Sequence[int], weights: WeightBreakdown) -> tuple[int, Layout] | None:
    assert sc.hardware is not None
    for n in counts:
        ok, layout = _fits(sc, Hardware(sc.hardware.device, n), weights)
        if ok:
            return n, layout
    return None


def smallest_fit(sc: Scenario, weights: WeightBreakdown | None = None) -> SmallestFit:
    assert sc.hardware is not None
    weights = weights or sc.weights
    device = sc.hardware.device
    if device.kind == "gpu":
        best = _first_fit(sc, deployable_counts(sc.model, sc.runtime), weights)
        least = _first_fit(sc, range(1, MAX_DEVICES + 1), weights)
        return SmallestFit(
            devices=best[0] if best else None, layout=best[1] if best else None,
            min_devices=least[0] if least else None, min_layout=least[1] if least else None,
        )
    layout = choose_layout(sc.model, sc.runtime, sc.hardware)
    needed = ceil(memory_plan(sc, layout, weights).per_device / sc.usable_fraction)
    apple: Device | None = None
    if device.kind == "apple":
        apple = next((d for d in apple_systems() if _fits(sc, Hardware(d), weights)[0]), None)
    return SmallestFit(apple_system=apple, memory_needed=needed)


@dataclass(frozen=True, slots=True)
class FitRow:
    hardware: str
    devices: int | None            # GPUs needed (None: more than MAX_DEVICES); 1 for a single machine that fits
    layout: Layout | None
    decode_per_sequence: float | None
    min_devices: int | None = None   # with pipeline parallelism inside a node, when fewer


def fit_overview(sc: Scenario) -> tuple[FitRow, ...]:
    """Without hardware: how many of each known GPU, and which Apple system, the scenario needs."""
    weights = sc.weights
    rows: list[FitRow] = []
    for spec in GPUS:
        trial = sc.with_(hardware=Hardware(gpu_device(spec), 1))
        smallest = smallest_fit(trial, weights)
        speed = None
        if smallest.devices is not None and smallest.layout is not None:
            speed = decode_bound(trial.with_(hardware=Hardware(gpu_device(spec), smallest.devices)),
                                 smallest.layout, weights).per_sequence
        rows.append(FitRow(spec.name, smallest.devices, smallest.layout, speed, smallest.min_devices))
    if not (sc.quant.is_gguf or sc.quant.key == "bf16"):
        return tuple(rows)   # FP8/NVFP4/INT4 builds are vLLM formats: no Apple row
    systems = apple_systems()
    trial = sc.with_(hardware=Hardware(systems[0]))
    apple = smallest_fit(trial, weights).apple_system
    if apple is not None:
        hw = Hardware(apple)
        layout = choose_layout(sc.model, "llama.cpp", hw)
        speed = decode_bound(trial.with_(hardware=hw), layout, weights).per_sequence
        rows.append(FitRow(apple.name, 1, layout, speed))
    else:
        rows.append(FitRow("any Apple system", None, None, None))
    return tuple(rows)
