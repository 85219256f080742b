"""How a vLLM upstream gets tools: ``size --vllm`` starts vLLM with its tool flags and says ``tools = "native"``;
``check-config`` warns when a native-tools vLLM may lack the flags, and says (without warning) when the proxy renders
tools itself."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from hermes_proxy.commands.check import describe, warnings_for
from hermes_proxy.config import TokensConfig, parse_config
from hermes_proxy.pricing import resolve_prices
from hermes_proxy.tokens import load_token_counter
from tests.test_size_command import _run

FLAGS = "make sure vLLM runs with --enable-auto-tool-choice --tool-call-parser hermes"


def test_size_vllm_starts_the_hermes_tool_parser_and_the_snippet_takes_native_tools(
        capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(capsys, "--gpus", "8xH200", "--context", "32k", "--concurrency", "16", "--kv-cache-dtype", "fp8",
               "--vllm")
    command = out.split("vLLM launch command", 1)[1].split("hermes-proxy config", 1)[0]
    assert "  --enable-auto-tool-choice \\\n" in command and "  --tool-call-parser hermes \\\n" in command
    assert 'tools = "native"' in command and '"rendered"' in command     # the comment says both ways
    snippet = out.split("hermes-proxy config (paste into your config file)\n", 1)[1]
    config = parse_config(tomllib.loads(snippet), env={})
    assert config.upstream("vllm-local").tools == "native"


def _config(tools: str | None, kind: str = "vllm") -> Any:
    upstream: dict[str, Any] = {"name": "local", "kind": kind, "base_url": "http://127.0.0.1:8000/v1"}
    if kind == "nous":
        upstream = {"name": "local", "kind": "nous", "api_key_env": "K"}
    if tools is not None:
        upstream["tools"] = tools
    data = {"upstreams": [upstream], "models": {"m": {"routes": [{"upstream": "local", "model": "M"}]}}}
    return parse_config(data, env={"K": "x"})


def _tool_warnings(config: Any) -> list[str]:
    return [w for w in warnings_for(config, resolve_prices(config)) if "tool" in w]


def test_check_config_warns_for_a_native_tools_vllm(tmp_path: Any) -> None:
    config = _config("native")
    warnings = _tool_warnings(config)
    assert len(warnings) == 1 and FLAGS in warnings[0] and "400" in warnings[0] and "'local'" in warnings[0]
    counter = load_token_counter(TokensConfig(), data_dir=tmp_path)
    assert "tools native" in describe(config, counter, resolve_prices(config))


@pytest.mark.parametrize("tools", [None, "rendered"])
def test_rendered_tools_on_vllm_is_a_note_not_a_warning(tmp_path: Any, tools: str | None) -> None:
    config = _config(tools)
    assert _tool_warnings(config) == []
    counter = load_token_counter(TokensConfig(), data_dir=tmp_path)
    text = describe(config, counter, resolve_prices(config))
    assert "local (vllm): http://127.0.0.1:8000/v1; tools rendered by the proxy" in text


@pytest.mark.parametrize("tools", [None, "native"])
def test_other_kinds_say_nothing_about_tools(tmp_path: Any, tools: str | None) -> None:
    config = _config(tools, kind="nous")
    assert _tool_warnings(config) == []
    counter = load_token_counter(TokensConfig(), data_dir=tmp_path)
    assert "tools" not in describe(config, counter, resolve_prices(config))
