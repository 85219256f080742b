"""Config: the example loads, defaults run on the demo, every error names its key, secrets never print."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from hermes_proxy.cli import main
from hermes_proxy.config import default_config, load_config, parse_config
from hermes_proxy.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
BASE: dict[str, Any] = {"upstreams": [{"name": "d", "kind": "demo"}],
                        "models": {"m": {"routes": [{"upstream": "d", "model": "x"}]}}}


def test_example_config_loads_and_documents_every_key() -> None:
    config = load_config(ROOT / "config.example.toml")
    assert {m.alias for m in config.models} >= {"hermes-4-405b", "hermes-4-70b"}
    assert config.team("research") is not None
    example = (ROOT / "config.example.toml").read_text()
    documented = (set(re.findall(r"^\s*#?\s*([a-z_]+)\s*=", example, re.M)) | set(re.findall(r"\b([a-z_]+) =", example))
                  | set(re.findall(r"^\[+([a-z_]+)", example, re.M)))
    known: set[str] = set()
    for module in (ROOT / "hermes_proxy" / "config").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "no_unknown" and len(node.args) == 3:
                known |= {elt.value for elt in node.args[2].elts if isinstance(elt, ast.Constant)}  # type: ignore[attr-defined]
    assert {"host", "api_key_env", "budgets", "soft_limit_usd", "tokens_per_minute", "newline_key"} <= known
    missing = {key for key in known if key not in documented}
    assert not missing, f"keys not documented in config.example.toml: {sorted(missing)}"


def test_no_file_no_key_runs_the_demo_and_a_key_switches_to_the_real_upstream() -> None:
    demo = default_config(env={})
    assert demo.simulated_only and demo.is_default and demo.server.auth == "none"
    real = default_config(env={"OPENROUTER_API_KEY": "sk-or-1"})
    assert not real.simulated_only
    assert real.model("hermes-4-405b").routes[0].model == "nousresearch/hermes-4-405b"  # type: ignore[union-attr]


@pytest.mark.parametrize(("patch", "key"), [
    ({"server": {"port": "80"}}, "server.port"),
    ({"server": {"prot": 80}}, "server.prot"),
    ({"upstreams": [{"name": "d", "kind": "gpt"}]}, "upstreams[0].kind"),
    ({"upstreams": [{"name": "v", "kind": "vllm", "base_url": "localhost:8000"}]}, "upstreams[0].base_url"),
    ({"models": {"m": {"routes": [{"upstream": "nope", "model": "x"}]}}}, "models.m.routes[0].upstream"),
    ({"models": {"m": {"routes": [{"upstream": "d", "model": "x", "input_usd_per_mtok": -1,
                                   "output_usd_per_mtok": 1}]}}}, "models.m.routes[0].input_usd_per_mtok"),
    ({"models": {"m": {"routes": [{"upstream": "d", "model": "x", "input_usd_per_mtok": 1}]}}},
     "models.m.routes[0].output_usd_per_mtok"),
    ({"teams": {"t": {"budgets": [{"window": "hourly", "limit_usd": 1}]}}}, "teams.t.budgets[0].window"),
    ({"teams": {"t": {"budgets": [{"window": "daily", "limit_usd": "lots"}]}}}, "teams.t.budgets[0].limit_usd"),
    ({"teams": {"t": {"budgets": [{"window": "daily", "limit_usd": 1, "soft_limit_usd": 2}]}}},
     "teams.t.budgets[0].soft_limit_usd"),
    ({"teams": {"t": {"timezone": "Mars/Olympus"}}}, "teams.t.timezone"),
    ({"teams": {"t": {"models": ["gpt-5"]}}}, "teams.t.models"),
    ({"teams": {"t": {"reasoning": "sometimes"}}}, "teams.t.reasoning"),
    ({"ledger": {"url": "mysql://x"}}, "ledger.url"),
    ({"rate_limits": {"url": "http://redis"}}, "rate_limits.url"),
    ({"rate_limits": {"url": "sqlite:///"}}, "rate_limits.url"),
    ({"rate_limits": {"url": "sqlite:///:memory:"}}, "rate_limits.url"),
    ({"server": {"cors_origins": ["https://app.example.com/"]}}, "server.cors_origins"),
    ({"server": {"allow_public_without_auth": "yes"}}, "server.allow_public_without_auth"),
    ({"server": {"auth": "none", "host": "0.0.0.0"}}, "server.auth"),
])
def test_errors_name_the_offending_key(patch: dict[str, Any], key: str) -> None:
    data = {**BASE, **patch}
    with pytest.raises(ConfigError) as caught:
        parse_config(data, env={})
    assert caught.value.key == key
    assert str(caught.value).startswith(key)


def test_secrets_are_read_from_env_and_never_printed() -> None:
    data = {"upstreams": [{"name": "o", "kind": "openrouter", "api_key_env": "MY_KEY"}],
            "models": {"m": {"routes": [{"upstream": "o", "model": "x"}]}}}
    config = parse_config(data, env={"MY_KEY": "sk-or-v1-verysecret"})
    upstream = config.upstreams[0]
    assert upstream.api_key is not None and upstream.api_key.reveal() == "sk-or-v1-verysecret"
    assert "verysecret" not in repr(config) and "verysecret" not in str(upstream)


def test_secret_given_inline_instead_of_env_name_is_refused() -> None:
    data = {"upstreams": [{"name": "o", "kind": "openrouter", "api_key_env": "sk-or-v1-abc"}],
            "models": {"m": {"routes": [{"upstream": "o", "model": "x"}]}}}
    with pytest.raises(ConfigError, match="NAME of an environment variable"):
        parse_config(data, env={})


def test_config_is_frozen() -> None:
    config = parse_config(BASE, env={})
    with pytest.raises(AttributeError):
        config.server.port = 1  # type: ignore[misc]


def test_check_config_cli_reports_errors_readably(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nport = "eighty"\n')
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: server.port") and "Traceback" not in err
    assert main(["check-config", str(tmp_path / "missing.toml")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["check-config", str(ROOT / "config.example.toml")]) == 0
    out = capsys.readouterr().out
    assert "config OK" in out and "tokenizer:" in out and "SIMULATED" in out


def test_no_reservation_warning_for_long_streams_any_more() -> None:
    # running requests extend their holds (pipeline/hold.py): a stream longer than the TTL keeps its reservation
    from hermes_proxy.cli import warnings_for
    from hermes_proxy.pricing import resolve_prices

    data = {**BASE, "ledger": {"url": "memory://", "reservation_ttl_s": 60},
            "teams": {"t": {"budgets": [{"window": "daily", "limit_usd": 5}], "max_tokens": 32768}}}
    config = parse_config(data, env={})
    assert config.ledger.reservation_ttl_s == 60
    assert not [w for w in warnings_for(config, resolve_prices(config)) if "reservation_ttl_s" in w]
    assert parse_config({**BASE}, env={}).ledger.reservation_ttl_s == 120


@pytest.mark.parametrize(("kind", "key_env", "needs"), [
    ("nous", None, True), ("openrouter", None, True),    # their default api_key_env
    ("vllm", None, False), ("vllm", "VLLM_API_KEY", True),
    ("litellm", None, False), ("litellm", "NEBIUS_API_KEY", True),
    ("demo", "ANY_KEY", False),
])
def test_which_upstreams_need_a_key_and_are_left_out_without_it(kind: str, key_env: str | None, needs: bool) -> None:
    upstream: dict[str, Any] = {"name": "u", "kind": kind}
    if key_env:
        upstream["api_key_env"] = key_env
    data = {"upstreams": [upstream, {"name": "d", "kind": "demo"}],
            "models": {"m": {"routes": [{"upstream": "u", "model": "x"}, {"upstream": "d", "model": "x"}]}}}
    without = parse_config(data, env={})
    assert without.upstreams[0].needs_key is needs
    assert [r.upstream for r in without.usable_routes(without.models[0])] == (["d"] if needs else ["u", "d"])
    assert [u.name for u in without.keyless_upstreams] == (["u"] if needs else [])
    env_name = key_env or {"nous": "NOUS_API_KEY", "openrouter": "OPENROUTER_API_KEY"}.get(kind, "UNUSED")
    with_key = parse_config(data, env={env_name: "sk-1"})
    assert [r.upstream for r in with_key.usable_routes(with_key.models[0])] == ["u", "d"]
    assert with_key.keyless_upstreams == ()


@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.4", False), ("proxy.internal", False), ("", False),
])
def test_auth_none_is_for_loopback_hosts_unless_explicitly_allowed(host: str, allowed: bool) -> None:
    data = {**BASE, "server": {"auth": "none", "host": host}}
    if allowed:
        assert parse_config(data, env={}).server.host == host
    else:
        with pytest.raises(ConfigError, match="allow_public_without_auth = true"):
            parse_config(data, env={})
    opted_in = parse_config({**BASE, "server": {"auth": "none", "host": host, "allow_public_without_auth": True}},
                            env={})
    assert opted_in.server.allow_public_without_auth
    keyed = parse_config({**BASE, "server": {"auth": "keys", "host": host}}, env={})
    assert keyed.server.auth == "keys"
