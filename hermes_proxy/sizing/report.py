"""Plain-text rendering of sizing results (ASCII only, so any terminal or log shows it). No arithmetic beyond units."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from hermes_proxy.money import format_usd
from hermes_proxy.sizing.assumptions import MAX_DEVICES
from hermes_proxy.sizing.hardware import APPLE_CHIPS, CPU_MEMORY_KINDS, GB, GIB, GPUS
from hermes_proxy.sizing.models import MODELS
from hermes_proxy.sizing.plan import FitRow, Plan, Scenario, TableRow
from hermes_proxy.sizing.quants import KV_DTYPES, QUANTS, bits_per_weight
from hermes_proxy.sizing.routes import RoutePrice
from hermes_proxy.sizing.vllm import VllmLaunch

LABEL = 46


def gib(n: float) -> str:
    return f"{n / GIB:,.1f} GiB" if abs(n) >= 10 * GIB else f"{n / GIB:,.2f} GiB"


def gb(n: float) -> str:
    return f"{n / GB:,.1f} GB"


def kib(n: float) -> str:
    return f"{n / 1024:,.0f} KiB" if n % 1024 == 0 else f"{n / 1024:,.1f} KiB"


def rate(tokens_per_s: float) -> str:
    if tokens_per_s >= 100:
        return f"{tokens_per_s:,.0f} tok/s"
    return f"{tokens_per_s:,.1f} tok/s"


def ctx_label(tokens: int) -> str:
    return f"{tokens // 1024}k" if tokens % 1024 == 0 and tokens >= 1024 else str(tokens)


def _row(label: str, *values: str) -> str:
    return ("  " + label.ljust(LABEL) + "  ".join(v.rjust(14) for v in values)).rstrip()


def header(sc: Scenario) -> list[str]:
    bpw = bits_per_weight(sc.model, sc.quant)
    seqs = "sequence" if sc.concurrency == 1 else "sequences"
    lines = [
        f"{sc.model.name}  {sc.quant.key}: {sc.quant.label}, {bpw:.2f} bits/weight",
        f"KV cache {sc.kv.key} ({kib(sc.kv_bytes_per_token)}/token); context {sc.context:,} tokens x "
        f"{sc.concurrency} {seqs}",
    ]
    return lines


def render_plan(p: Plan, routes: Sequence[RoutePrice] = ()) -> str:
    sc = p.scenario
    lines = header(sc)
    if sc.hardware is None or p.layout is None or p.memory is None or p.decode is None:
        raise ValueError("render_plan needs a plan with hardware; use render_overview")
    layout, mem, dec = p.layout, p.memory, p.decode
    device = sc.hardware.device
    many = layout.devices > 1
    per = "per GPU" if device.kind == "gpu" else "on device"
    lines.append(f"Hardware: {sc.hardware.label}; {layout.describe()}")
    lines.append("")
    stage = mem.fullest
    lines.append(_row("Memory (GiB = 2^30 bytes, GB = 10^9 bytes)", "whole model", per if many else "")[2:])
    lines.append(_row("weights", f"{gb(p.weights.total)} = {gib(p.weights.total)}", gib(stage.weights) if many else ""))
    lines.append(_row("KV cache per token", kib(p.kv_bytes_per_token), kib(stage.kv_per_token) if many else ""))
    lines.append(_row(f"KV cache, one sequence of {sc.context:,} tokens", gib(p.kv_bytes_per_sequence),
                      gib(stage.kv_per_token * sc.context) if many else ""))
    if sc.concurrency > 1:
        lines.append(_row(f"KV cache, {sc.concurrency} sequences", gib(p.kv_bytes_total), gib(stage.kv) if many else ""))
    o = mem.overhead
    lines.append(_row("runtime overhead (assumption, per device)", "", gib(o.total)))
    lines.append(f"      = {gib(o.fixed)} context/buffers/graphs + {gib(o.activations)} activations "
                 f"+ {gib(o.logits)} logits")
    lines.append(_row("total" + (" on the fullest GPU" if many else ""), "", gib(mem.per_device)))
    lines.append(_row(f"usable: {mem.fraction:.0%} of {gib(mem.capacity)}", "", gib(mem.usable)))
    if mem.fits:
        lines.append(f"  -> fits, {gib(mem.headroom)} to spare" + (" on the fullest GPU" if many else ""))
    else:
        lines.append(f"  -> does NOT fit: {gib(-mem.headroom)} short" + (" on the fullest GPU" if many else ""))
    if p.max_context is not None:
        if p.max_context == 0:
            lines.append("  largest context that fits: none (the weights alone do not fit)")
        else:
            capped = " (the model's maximum)" if p.max_context == sc.model.max_context else ""
            lines.append(f"  largest context for {sc.concurrency} sequence(s): {p.max_context:,} tokens{capped}; "
                         f"most sequences at {sc.context:,} tokens: {p.max_concurrency:,}")
    lines += _smallest_lines(p)
    lines.append("")
    lines.append("Decode speed: UPPER BOUND from memory bandwidth (real servers reach a fraction of it)")
    share = f"{sc.concurrency} / {dec.microbatches} micro-batches" if dec.microbatches > 1 else f"{sc.concurrency}"
    bw_text = f"{layout.tensor_parallel} x {device.bandwidth_bytes_per_s / GB:,.0f} GB/s" \
        if layout.tensor_parallel > 1 else f"{device.bandwidth_bytes_per_s / GB:,.1f} GB/s"
    lines.append(f"  per step: weights {gb(dec.weights_read)} (all but the embedding table) + {share} x KV "
                 f"{gb(dec.kv_read_per_sequence)} at {bw_text} = {dec.step_seconds * 1000:,.1f} ms")
    lines.append(f"  per sequence   {rate(dec.per_sequence)}   (alone at an empty context: {rate(dec.single_stream_peak)})")
    lines.append(f"  aggregate      {rate(dec.aggregate)} over {sc.concurrency} sequence(s)")
    lines.append("")
    pre = p.prefill
    if pre is None:
        lines.append("Prefill: no estimate (no TFLOPS figure for this hardware)")
    else:
        lines.append("Prefill: ESTIMATE from compute")
        count = f"{layout.devices} x " if layout.devices > 1 else ""
        lines.append(f"  {pre.flops:.3g} FLOP for a {pre.tokens:,}-token prompt at {pre.efficiency:.0%} of "
                     f"{count}{pre.peak_flops / layout.devices / 1e12:,.0f} TFLOPS {pre.math.upper()} dense")
        bound = " (weight streaming bound)" if pre.memory_seconds > pre.compute_seconds else ""
        lines.append(f"  -> {pre.seconds:,.2f} s to first token, {rate(pre.tokens_per_s)}{bound}")
    if p.cost is not None:
        lines.append("")
        lines.append(f"Cost per million tokens at ${p.cost.usd_per_hour:f}/hour")
        lines.append(_price_row("this plan (GPU time / the speeds above: floors)",
                                p.cost.input_usd_per_mtok, p.cost.output_usd_per_mtok))
        lines += _route_lines(sc, routes)
    elif routes:
        lines.append("")
        lines.append("Configured prices per million tokens (give --usd-per-hour to compare)")
        lines += _route_lines(sc, routes)
    lines += _notes(p.notes)
    return "\n".join(lines) + "\n"


def _price_row(label: str, inp: Decimal | None, out: Decimal | None, suffix: str = "") -> str:
    return f"  {label.ljust(LABEL + 4)}input {format_usd(inp, places=4).rjust(9)}   output {format_usd(out, places=4).rjust(9)}{suffix}"


def _route_lines(sc: Scenario, routes: Sequence[RoutePrice]) -> list[str]:
    if not routes:
        return [f"  (no routes configured for {sc.model.key})"]
    lines = [f"  configured routes for {sc.model.key}:"]
    for r in routes:
        source = "" if r.source == "config" else f"  ({r.source})"
        lines.append(_price_row("  " + r.label, r.input_usd_per_mtok, r.output_usd_per_mtok, source))
    return lines


def _smallest_lines(p: Plan) -> list[str]:
    s, sc = p.smallest, p.scenario
    if s is None or sc.hardware is None or p.memory is None:
        return []
    device = sc.hardware.device
    if device.kind == "gpu":
        if s.devices is None or s.layout is None:
            return [f"  smallest {device.key} count that fits: none up to {MAX_DEVICES}"]
        text = f"  smallest {device.key} count that fits: {s.devices} ({s.layout.short()})"
        if s.min_devices is not None and s.min_layout is not None and s.min_devices < s.devices:
            text += f"; fewest with pipeline parallelism: {s.min_devices} ({s.min_layout.short()})"
        return [text]
    lines = [f"  a machine like this needs {gib(s.memory_needed or 0)} of memory "
             f"({gib(p.memory.per_device)} / {p.memory.fraction:.0%} usable)"]
    if device.kind == "apple":
        lines.append(f"  smallest Apple system that fits: {s.apple_system.name if s.apple_system else 'none known'}")
    return lines


def _notes(notes: Sequence[str]) -> list[str]:
    lines = ["", "Notes"] if notes else [""]
    lines += [f"  - {n}" for n in notes]
    lines.append("Assumptions (runtime overhead, usable memory, prefill efficiency): see `hermes-proxy size --help`.")
    return lines


def render_overview(p: Plan, rows: Sequence[FitRow], routes: Sequence[RoutePrice] = ()) -> str:
    """No hardware given: memory, then the smallest of each known device that fits."""
    sc = p.scenario
    lines = header(sc)
    lines.append("")
    lines.append("Memory (GiB = 2^30 bytes, GB = 10^9 bytes)")
    lines.append(_row("weights", f"{gb(p.weights.total)} = {gib(p.weights.total)}"))
    lines.append(_row("KV cache per token", kib(p.kv_bytes_per_token)))
    lines.append(_row(f"KV cache, one sequence of {sc.context:,} tokens", gib(p.kv_bytes_per_sequence)))
    if sc.concurrency > 1:
        lines.append(_row(f"KV cache, {sc.concurrency} sequences", gib(p.kv_bytes_total)))
    lines.append(_row("weights + KV cache", gib(p.weights.total + p.kv_bytes_total)))
    lines.append("  (+ runtime overhead on each device; give --gpus, --apple or --cpu for the full plan)")
    lines.append("")
    lines.append("Smallest hardware that fits (usable: 90% of a GPU, 75% of a Mac; decode: bandwidth upper bound)")
    lines.append(f"  {'hardware'.ljust(36)}{'count'.rjust(6)}  {'layout'.ljust(30)}{'tok/s/seq'.rjust(10)}"
                 f"  fewest, with pipeline parallelism")
    for r in rows:
        if r.devices is None:
            count = "none" if r.layout is None and r.hardware.startswith("any") else f">{MAX_DEVICES}"
        else:
            count = str(r.devices)
        layout = r.layout.short() if r.layout else "-"
        speed = f"{r.decode_per_sequence:,.1f}" if r.decode_per_sequence is not None else "-"
        fewer = str(r.min_devices) if r.min_devices is not None and r.min_devices != r.devices else ""
        lines.append(f"  {r.hardware[:36].ljust(36)}{count.rjust(6)}  {layout.ljust(30)}{speed.rjust(10)}  {fewer}"
                     .rstrip())
    if routes:
        lines.append("")
        lines.append("Configured prices per million tokens")
        lines += _route_lines(sc, routes)
    lines += _notes(p.notes)
    return "\n".join(lines) + "\n"


def render_table(base: Scenario, rows: Sequence[TableRow], contexts: Sequence[int]) -> str:
    sc = base
    seqs = "sequence" if sc.concurrency == 1 else "sequences"
    lines = [f"{sc.model.name}: memory by quantization and context (KV cache {sc.kv.key}, "
             f"{sc.concurrency} {seqs}); GiB = 2^30 bytes, GB = 10^9 bytes"]
    hw = sc.hardware
    if hw is None:
        lines.append("cells: weights + KV cache in GiB, whole model, before runtime overhead")
    else:
        usable = hw.device.memory_bytes * sc.usable_fraction
        lines.append(f"cells: GiB on the fullest device of {hw.label}, runtime overhead included; "
                     f"usable {gib(usable)} each; * = does not fit")
    head = f"{'quant'.ljust(9)}{'bits/w'.rjust(7)}{'weights GB'.rjust(12)}{'weights GiB'.rjust(13)}"
    lines.append(head + "".join(ctx_label(c).rjust(10) for c in contexts)
                 + ("   layout" if hw is not None else ""))
    for row in rows:
        line = f"{row.quant.key.ljust(9)}{row.bits_per_weight:7.2f}{row.weight_bytes / GB:12.1f}" \
               f"{row.weight_bytes / GIB:13.1f}"
        for cell in row.cells:
            mark = "*" if cell.fits is False else " "
            line += f"{cell.total / GIB:9.1f}{mark}"
        if row.layout is not None:
            line += f"   {row.layout.short()}"
        lines.append(line.rstrip())
    unsupported = sorted({r.layout.runtime for r in rows if r.layout and not sc.kv.supported_by(r.layout.runtime)})
    if unsupported:
        lines.append(f"({' and '.join(unsupported)} has no {sc.kv.key} KV cache: those rows are sized as asked)")
    if hw is not None:
        lines.append("")
        lines.append(f"decode tok/s per sequence at that context (bandwidth upper bound) on {hw.label}; - = does not fit")
        lines.append(f"{'quant'.ljust(9)}" + "".join(ctx_label(c).rjust(10) for c in contexts))
        for row in rows:
            line = row.quant.key.ljust(9)
            for cell in row.cells:
                line += (f"{cell.decode_per_sequence:10.1f}" if cell.decode_per_sequence is not None else "-".rjust(10))
            lines.append(line)
    return "\n".join(lines) + "\n"


def render_vllm(launch: VllmLaunch, snippet: str) -> str:
    lines = ["vLLM launch command (matches the plan above)"]
    if not launch.fits:
        lines.append("# WARNING: the plan above does not fit; vLLM would fail to start with these settings")
    lines.append(launch.command())
    lines.append("# no --reasoning-parser: hermes-proxy splits <think> itself")
    lines.append("# --enable-auto-tool-choice --tool-call-parser hermes: vLLM parses tool calls itself, so the upstream")
    lines.append('# takes tools = "native" (below). Started without them, vLLM refuses any request with tools (400):')
    lines.append('# leave tools out of the upstream then (default "rendered": hermes-proxy renders tools itself).')
    lines.append("")
    lines.append("hermes-proxy config (paste into your config file)")
    lines.append(snippet.rstrip("\n"))
    return "\n".join(lines) + "\n"


def render_known() -> str:
    lines = ["Models:"]
    lines += [f"  {m.key.ljust(16)}{m.name}, {m.params / 1e9:.2f}B parameters, {m.max_context:,} context"
              for m in MODELS]
    lines.append("Quantizations (--quant):")
    lines += [f"  {q.key.ljust(10)}{q.runtime.ljust(11)}{q.label}" for q in QUANTS]
    lines.append("KV cache dtypes (--kv-cache-dtype):")
    lines += [f"  {k.key.ljust(10)}{k.label}" for k in KV_DTYPES]
    lines.append("GPUs (--gpus COUNTxNAME):")
    for g in GPUS:
        math = "/".join(f"{v:g}" if v is not None else "-" for v in (g.bf16_tflops, g.fp8_tflops, g.fp4_tflops))
        lines.append(f"  {g.key.ljust(14)}{g.name.ljust(38)}{g.memory_gib:>5g} GiB {g.bandwidth_gb_s:>6,.0f} GB/s"
                     f"  BF16/FP8/FP4 TFLOPS {math}")
    lines.append("Apple (--apple CHIP-MEMORY):")
    for c in APPLE_CHIPS:
        sizes = ", ".join(f"{c.key}-{m}" for m in c.memory_options_gib)
        lines.append(f"  {sizes.ljust(44)}{c.bandwidth_gb_s:,.0f} GB/s  {c.name}")
    lines.append(f"CPU RAM (--cpu KIND-MTSxCHANNELS --ram-gb N): KIND one of {', '.join(CPU_MEMORY_KINDS)}; "
                 "e.g. ddr5-5600x12")
    return "\n".join(lines) + "\n"
