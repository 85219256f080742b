"""The vLLM launch command a plan implies, and the hermes-proxy config that points at it.

vLLM facts used (REFERENCE.md): serve with ``--tool-call-parser hermes`` (with ``--enable-auto-tool-choice``, which it
requires) and with no ``--reasoning-parser``: there is none for Hermes, and hermes-proxy splits ``<think>`` itself.
The quantization is read from the checkpoint's config, so no ``--quantization`` flag is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from hermes_proxy.errors import InvalidRequest
from hermes_proxy.sizing.plan import Plan

DEFAULT_UPSTREAM_NAME = "vllm-local"


@dataclass(frozen=True, slots=True)
class VllmLaunch:
    model_id: str
    served_name: str
    host: str
    port: int
    argv: tuple[str, ...]
    fits: bool

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}/v1"

    def command(self) -> str:
        """The command as a shell snippet, one flag per line."""
        lines = [" ".join(self.argv[:3])]
        rest = list(self.argv[3:])
        i = 0
        while i < len(rest):
            if i + 1 < len(rest) and not rest[i + 1].startswith("--"):
                lines.append(f"  {rest[i]} {rest[i + 1]}")
                i += 2
            else:
                lines.append(f"  {rest[i]}")
                i += 1
        return " \\\n".join(lines)


def vllm_launch(p: Plan, *, model_id: str | None = None, host: str = "127.0.0.1", port: int = 8000) -> VllmLaunch:
    sc = p.scenario
    if sc.hardware is None or sc.hardware.device.kind != "gpu" or p.layout is None or p.memory is None:
        raise InvalidRequest("--vllm needs --gpus: vLLM serves Hermes 4 on NVIDIA or AMD GPUs", param="--vllm")
    if sc.quant.is_gguf:
        raise InvalidRequest(
            f"--vllm: {sc.quant.key} is a GGUF build for llama.cpp; choose bf16, fp8, nvfp4 or awq-int4 for vLLM "
            f"(or serve the GGUF with llama-server)", param="--quant")
    if sc.kv.vllm_arg is None:
        raise InvalidRequest(f"--vllm: vLLM has no {sc.kv.key} KV cache; use --kv-cache-dtype bf16 or fp8",
                             param="--kv-cache-dtype")
    repo = model_id or sc.model.hf_repo(sc.quant.key)
    if repo is None:
        raise InvalidRequest(
            f"no known Hugging Face build of {sc.model.name} in {sc.quant.key}; pass --model-id OWNER/REPO",
            param="--model-id")
    if not 1 <= port <= 65535:
        raise InvalidRequest(f"--port must be 1..65535, got {port}", param="--port")
    layout = p.layout
    argv = ["vllm", "serve", repo,
            "--served-model-name", sc.model.served_name,
            "--tensor-parallel-size", str(layout.tensor_parallel)]
    if layout.pipeline_parallel > 1:
        argv += ["--pipeline-parallel-size", str(layout.pipeline_parallel)]
        if layout.nodes > 1:
            argv += ["--distributed-executor-backend", "ray"]
    argv += [
        "--max-model-len", str(sc.context),
        "--max-num-seqs", str(sc.concurrency),
        "--kv-cache-dtype", sc.kv.vllm_arg,
        "--gpu-memory-utilization", f"{p.memory.fraction:.2f}",
        "--enable-auto-tool-choice",
        "--tool-call-parser", "hermes",
        "--host", host,
        "--port", str(port),
    ]
    return VllmLaunch(model_id=repo, served_name=sc.model.served_name, host=host, port=port, argv=tuple(argv),
                      fits=p.memory.fits)


def config_snippet(p: Plan, launch: VllmLaunch, *, upstream_name: str = DEFAULT_UPSTREAM_NAME) -> str:
    """TOML for the hermes-proxy config: the upstream, and a route for the model alias with derived prices."""
    sc = p.scenario
    lines = [
        f"# a local vLLM serving {launch.model_id} (from `hermes-proxy size`)",
        "[[upstreams]]",
        f'name = "{upstream_name}"',
        'kind = "vllm"',
        f'base_url = "{launch.base_url}"',
        'tools = "native"   # vLLM parses <tool_call> (--enable-auto-tool-choice --tool-call-parser hermes)',
        "",
        "# Routes are tried in order: put this one first to prefer it. If your config writes the routes inline",
        "# (routes = [ ... ]), add these keys as one more { ... } entry there instead.",
        f"[[models.{sc.model.key}.routes]]",
        f'upstream = "{upstream_name}"',
        f'model = "{launch.served_name}"',
    ]
    cost = p.cost
    if cost is None:
        lines.append("# to price this route, add what these GPUs cost per hour (or rerun with --usd-per-hour):")
        lines.append("# gpu_usd_per_hour = ...")
        if p.decode is not None:
            lines.append(f"# tokens_per_s = {p.decode.aggregate:.2f}")
        if p.prefill is not None:
            lines.append(f"# prefill_tokens_per_s = {p.prefill.tokens_per_s:.1f}")
    else:
        lines.append(f"gpu_usd_per_hour = {cost.usd_per_hour:f}")
        lines.append(f"tokens_per_s = {cost.output_tokens_per_s:f}"
                     f"   # decode bound, all sequences: output ${cost.output_usd_per_mtok}/Mtok, a floor")
        if cost.prefill_tokens_per_s is not None:
            lines.append(f"prefill_tokens_per_s = {cost.prefill_tokens_per_s:f}"
                         f"   # prefill estimate: input ${cost.input_usd_per_mtok}/Mtok")
    return "\n".join(lines) + "\n"
