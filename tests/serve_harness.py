"""``hermes-proxy serve`` as a subprocess, as a user runs it: its own HOME and XDG dirs, no secrets from the
environment, stdout read line by line. The ``serve`` fixture is shared through conftest.py."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: the upstream key variables config.example.toml names: never inherited by a served process
EXAMPLE_KEY_ENVS = ("OPENROUTER_API_KEY", "NOUS_API_KEY", "VLLM_API_KEY", "NEBIUS_API_KEY")

DEMO_CONFIG = """
[server]
auth = "none"
{server}
[ledger]
url = "memory://"
[[upstreams]]
name = "demo"
kind = "demo"
first_token_s = 0
tokens_per_s = 0
[models.hermes-4-405b]
routes = [{{ upstream = "demo", model = "Hermes-4-405B", input_usd_per_mtok = 1.0, output_usd_per_mtok = 3.0 }}]
"""


def cli_env(home: Path) -> dict[str, str]:
    from tests.conftest import environ_without_secrets  # here: conftest imports this module

    env = {k: v for k, v in environ_without_secrets().items() if k not in EXAMPLE_KEY_ENVS}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"),
               XDG_CACHE_HOME=str(home / "cache"), PYTHONPATH=str(ROOT))
    return env


class Served:
    """A ``hermes-proxy serve`` subprocess: stdout read line by line, stderr in a file."""

    def __init__(self, process: asyncio.subprocess.Process, stderr: Path) -> None:
        self.process = process
        self.stderr_path = stderr
        self.stdout: list[str] = []

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    async def line_matching(self, pattern: str, within_s: float = 30) -> re.Match[str]:
        assert self.process.stdout is not None
        deadline = time.monotonic() + within_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r}; stdout so far: {self.stdout}; "
                                     f"stderr: {self.stderr[-2000:]}")
            raw = await asyncio.wait_for(self.process.stdout.readline(), remaining)
            if not raw:
                raise AssertionError(f"serve exited ({await self.process.wait()}) before {pattern!r}; "
                                     f"stdout: {self.stdout}; stderr: {self.stderr[-2000:]}")
            line = raw.decode().rstrip("\n")
            self.stdout.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), 20)
        except TimeoutError:
            self.process.kill()
            return await self.process.wait()


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Any]:
    started: list[Served] = []

    async def start(*argv: str) -> Served:
        stderr = tmp_path / f"serve-{len(started)}.stderr"
        with stderr.open("wb") as err:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hermes_proxy.cli", "serve", *argv, cwd=tmp_path, env=cli_env(tmp_path / "home"),
                stdout=asyncio.subprocess.PIPE, stderr=err)
        served = Served(process, stderr)
        started.append(served)
        return served

    yield start
    for served in started:
        await served.stop()
