"""Sizing a self-hosted Hermes 4: memory, speed and cost, and the vLLM upstream it implies.

Data (models.py, quants.py, hardware.py, assumptions.py) -> arithmetic (scenario.py, layout.py, memory.py, speed.py,
cost.py, fit.py, table.py; plan.py puts them together) -> text (report.py, vllm.py).
Everything returns frozen dataclasses; bad input raises :class:`hermes_proxy.errors.InvalidRequest`.
"""

from hermes_proxy.sizing.hardware import GPUS, Device, Hardware, parse_apple, parse_cpu, parse_gpus
from hermes_proxy.sizing.models import MODELS, ModelArch, get_model
from hermes_proxy.sizing.plan import (
    DecodeBound,
    Layout,
    MemoryPlan,
    Plan,
    PrefillEstimate,
    Scenario,
    fit_overview,
    plan,
    sizing_table,
    usd_per_mtok,
)
from hermes_proxy.sizing.quants import (
    KV_DTYPES,
    QUANTS,
    KvDtype,
    Quantization,
    get_kv_dtype,
    get_quant,
    weight_breakdown,
)

__all__ = [
    "GPUS",
    "KV_DTYPES",
    "MODELS",
    "QUANTS",
    "DecodeBound",
    "Device",
    "Hardware",
    "KvDtype",
    "Layout",
    "MemoryPlan",
    "ModelArch",
    "Plan",
    "PrefillEstimate",
    "Quantization",
    "Scenario",
    "fit_overview",
    "get_kv_dtype",
    "get_model",
    "get_quant",
    "parse_apple",
    "parse_cpu",
    "parse_gpus",
    "plan",
    "sizing_table",
    "usd_per_mtok",
    "weight_breakdown",
]
