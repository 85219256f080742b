"""The newcomer's first hour, through the real CLI: `cp config.example.toml hermes.toml && hermes-proxy serve`, keys,
ports, versions, public binds without auth, empty files. `serve` runs as a real subprocess in a temp HOME."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hermes_proxy.app import create_app
from hermes_proxy.appkeys import LEDGER
from hermes_proxy.cli import main
from hermes_proxy.commands.serve import first_key_hint
from tests.conftest import build_config
from tests.serve_harness import DEMO_CONFIG, EXAMPLE_KEY_ENVS, ROOT, cli_env

HELLO = [{"role": "user", "content": "hello"}]


def run_cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hermes_proxy.cli", *argv], cwd=tmp_path, capture_output=True,
                          text=True, env=cli_env(tmp_path / "home"), timeout=60, check=False)


# --- the newcomer's path -------------------------------------------------------------------------------------------


async def test_example_config_without_keys_starts_says_what_is_left_out_and_answers_at_once(
        tmp_path: Path, serve: Any) -> None:
    shutil.copy(ROOT / "config.example.toml", tmp_path / "hermes.toml")
    served = await serve("--config", "hermes.toml", "--port", "0")
    port = int((await served.line_matching(r"listening on http://127\.0\.0\.1:(\d+)/v1")).group(1))
    assert port != 0
    stdout = "\n".join(served.stdout)
    # the first key: one exact command, printed before the listening line
    command = next(line.strip() for line in served.stdout if line.strip().startswith("hermes-proxy keys create"))
    assert command == "hermes-proxy keys create --team research --config hermes.toml"
    assert "No team key yet" in stdout
    # upstreams without a key: said once, loudly, with the export to run
    stderr = served.stderr
    assert stderr.count("4 upstreams LEFT OUT") == 1
    for name in EXAMPLE_KEY_ENVS:
        assert f"export {name}=..." in stderr
    assert "model 'hermes-4-405b': no route left" in stderr and "models that answer now: hermes-demo" in stderr
    # workers = "auto", but the example's rate limits are counted in-process: one worker, and why
    workers = next(line for line in served.stdout if line.startswith("workers:"))
    assert workers.startswith("workers:   1 (") and "workers;" not in stdout
    if len(os.sched_getaffinity(0)) > 1:
        assert workers.startswith('workers:   1 ("auto", but team research has rate limits')
        assert "[rate_limits] url" in workers

    created = run_cli(tmp_path, *shlex.split(command)[1:])
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("hp-")
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", headers=headers,
                                json={"model": "hermes-4-405b", "messages": HELLO}) as response:
            elapsed = time.perf_counter() - started
            error = (await response.json())["error"]
        assert response.status == 503 and elapsed < 2
        assert error["code"] == "model_unavailable"
        assert "$NOUS_API_KEY" in error["message"] and "$OPENROUTER_API_KEY" in error["message"]
        async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", headers=headers,
                                json={"model": "hermes-demo", "messages": HELLO, "max_tokens": 5}) as demo:
            assert demo.status == 200
    assert await served.stop() == 0


async def test_port_zero_prints_the_port_bound_and_a_public_bind_needs_the_explicit_setting(
        tmp_path: Path, serve: Any) -> None:
    (tmp_path / "open.toml").write_text(DEMO_CONFIG.format(server="allow_public_without_auth = true"))
    served = await serve("--config", "open.toml", "--host", "0.0.0.0", "--port", "0")
    port = int((await served.line_matching(r"listening on http://0\.0\.0\.0:(\d+)/v1")).group(1))
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/healthz") as response:
        assert response.status == 200
    assert not any("keys create" in line for line in served.stdout)  # auth = "none": no key to create
    assert await served.stop() == 0


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to read the listen queue's size")
async def test_the_listen_queue_holds_a_burst_not_aiohttps_128(tmp_path: Path, serve: Any) -> None:
    (tmp_path / "demo.toml").write_text(DEMO_CONFIG.format(server="listen_backlog = 1500"))
    served = await serve("--config", "demo.toml", "--port", "0")
    port = int((await served.line_matching(r"listening on http://127\.0\.0\.1:(\d+)/v1")).group(1))
    ss = await asyncio.create_subprocess_exec("ss", "-ltnH", f"sport = :{port}", stdout=asyncio.subprocess.PIPE)
    listing = (await ss.communicate())[0].decode()
    somaxconn = int(await asyncio.to_thread(Path("/proc/sys/net/core/somaxconn").read_text))
    # for a listening socket, ss's Send-Q column is the backlog the socket was given
    assert listing.split()[2] == str(min(1500, somaxconn))
    assert await served.stop() == 0


async def test_a_port_in_use_is_a_one_line_error_and_no_listening_line(tmp_path: Path, serve: Any) -> None:
    (tmp_path / "demo.toml").write_text(DEMO_CONFIG.format(server=""))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        served = await serve("--config", "demo.toml", "--port", str(port))
        assert await asyncio.wait_for(served.process.wait(), 30) == 2
    assert served.process.stdout is not None
    stdout = (await served.process.stdout.read()).decode()
    assert "listening" not in stdout
    human = [line for line in served.stderr.splitlines() if not line.startswith("{")]
    assert len(human) == 1 and human[0].startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert "Traceback" not in served.stderr


@pytest.mark.parametrize("port", ["70000", "-1", "eighty"])
def test_serve_port_is_validated_like_the_config(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", port])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --port: must be" in err and "0 for any free port" in err


def test_version_is_the_installed_distributions(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"hermes-proxy {metadata.version('hermes-proxy')}"


# --- auth = "none" on a public host ---------------------------------------------------------------------------------


def test_serve_refuses_auth_none_on_a_public_host_and_says_what_to_do(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "local.toml"
    path.write_text(DEMO_CONFIG.format(server=""))
    assert main(["serve", "--config", str(path), "--host", "0.0.0.0", "--port", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: --host: auth = \"none\" on host '0.0.0.0'")
    assert 'auth = "keys"' in captured.err and "allow_public_without_auth = true" in captured.err
    assert "listening" not in captured.out


def test_check_config_refuses_auth_none_on_a_public_host_unless_allowed(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    public = tmp_path / "public.toml"
    public.write_text(DEMO_CONFIG.format(server='host = "0.0.0.0"'))
    assert main(["check-config", str(public)]) == 2
    assert capsys.readouterr().err.startswith("error: server.auth: auth = \"none\" on host '0.0.0.0'")
    public.write_text(DEMO_CONFIG.format(server='host = "0.0.0.0"\nallow_public_without_auth = true'))
    assert main(["check-config", str(public)]) == 0
    assert "config OK" in capsys.readouterr().out


# --- check-config --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "[server]\nport = 8787\n"])
def test_check_config_warns_on_an_empty_file(text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "empty.toml"
    path.write_text(text)
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    warning = next(line for line in out.splitlines() if "configures no upstreams and no models" in line)
    assert "404 model_not_found" in warning and "built-in defaults" in warning and "config.example.toml" in warning


def test_check_config_warns_on_upstreams_without_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "half.toml"
    path.write_text('[[upstreams]]\nname = "demo"\nkind = "demo"\n')
    assert main(["check-config", str(path)]) == 0
    assert "configures no models" in capsys.readouterr().out


def test_check_config_shows_the_cache_and_never_a_password(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cached.toml"
    path.write_text('[[upstreams]]\nname = "demo"\nkind = "demo"\n'
                    '[models.hermes-demo]\nroutes = [{ upstream = "demo", model = "Hermes-4-405B" }]\n'
                    '[ledger]\nurl = "postgresql://hermes:s3cret-pw@db.internal:5432/ledger"\n'
                    '[cache]\nurl = "redis://:r3dis-pw@cache.internal:6379/1"\nttl_s = 7200\nhit_cost_fraction = 0.1\n'
                    '[teams.research]\ncache = true\n[teams.ops]\n')
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "s3cret-pw" not in out and "r3dis-pw" not in out
    assert "postgresql://hermes:***@db.internal:5432/ledger" in out
    cache_line = next(line for line in out.splitlines() if line.startswith("cache:"))
    assert "teams research;" in cache_line and "Redis redis://:***@cache.internal:6379/1" in cache_line
    assert "kept 2 h" in cache_line and "hits 10% of the first cost" in cache_line


def test_check_config_reports_the_upstreams_left_out(capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name in EXAMPLE_KEY_ENVS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-or-test")
    assert main(["check-config", str(ROOT / "config.example.toml")]) == 0
    out = capsys.readouterr().out
    assert "3 upstreams LEFT OUT" in out and "export NOUS_API_KEY=..." in out
    assert "export OPENROUTER_API_KEY" not in out
    assert "LEFT OUT nous -> Hermes-4-405B: $NOUS_API_KEY is not set" in out
    assert "primary  openrouter -> nousresearch/hermes-4-405b" in out
    assert "model 'hermes-4-405b': served by openrouter only" in out
    assert out.rstrip().endswith("3 upstreams left out)")


# --- the first key hint ---------------------------------------------------------------------------------------------


async def test_first_key_hint_goes_away_once_a_key_exists(aiohttp_client: Any, counter: Any) -> None:
    config = build_config(None, server={"auth": "keys"})  # memory ledger: the CLI cannot reach it
    client = await aiohttp_client(create_app(config, counter=counter))
    hint = await first_key_hint(client.app, config)
    assert len(hint) == 1 and "POST /admin/keys" in hint[0] and '"team": "default"' in hint[0]
    await client.app[LEDGER].create_key("default", "first")
    assert await first_key_hint(client.app, config) == []
