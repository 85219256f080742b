"""The sizing table: for each quantization, memory on the fullest device (and decode speed) at several contexts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hermes_proxy.sizing.layout import Layout, choose_layout
from hermes_proxy.sizing.memory import memory_plan
from hermes_proxy.sizing.quants import QUANTS, Quantization
from hermes_proxy.sizing.scenario import Scenario
from hermes_proxy.sizing.speed import decode_bound


@dataclass(frozen=True, slots=True)
class TableCell:
    context: int
    total: int                     # hardware: bytes on the fullest device incl. overhead; else weights + KV
    fits: bool | None
    decode_per_sequence: float | None


@dataclass(frozen=True, slots=True)
class TableRow:
    quant: Quantization
    weight_bytes: int
    bits_per_weight: float
    layout: Layout | None
    cells: tuple[TableCell, ...]


def sizing_table(base: Scenario, contexts: Sequence[int], quants: Sequence[Quantization] = QUANTS) -> tuple[TableRow, ...]:
    rows: list[TableRow] = []
    for quant in quants:
        sc0 = base.with_(quant=quant, context=contexts[0])
        weights = sc0.weights
        layout = choose_layout(base.model, sc0.runtime, base.hardware) if base.hardware else None
        cells: list[TableCell] = []
        for context in contexts:
            sc = sc0.with_(context=context)
            if layout is None:
                cells.append(TableCell(context, weights.total + sc.kv_bytes_per_token * context * sc.concurrency,
                                       None, None))
                continue
            memory = memory_plan(sc, layout, weights)
            speed = decode_bound(sc, layout, weights).per_sequence if memory.fits else None
            cells.append(TableCell(context, memory.per_device, memory.fits, speed))
        rows.append(TableRow(quant, weights.total, weights.total * 8 / base.model.params, layout, tuple(cells)))
    return tuple(rows)
