"""The request log of ``hermes-proxy serve``: JSON lines on stderr, written off the event loop."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import aiohttp

from tests.serve_harness import DEMO_CONFIG, cli_env

REQUESTS = 300  # ~0.5 KB of log each: several times what a pipe holds (64 KiB on Linux)


async def test_a_stderr_nobody_reads_stalls_no_request_and_every_line_is_written_at_exit(tmp_path: Path) -> None:
    (tmp_path / "demo.toml").write_text(DEMO_CONFIG.format(server="workers = 1"))
    unread, stderr_end = os.pipe()  # a plain pipe: nothing drains it until the end (asyncio's PIPE would)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hermes_proxy.cli", "serve", "--config", "demo.toml", "--port", "0", cwd=tmp_path,
        env=cli_env(tmp_path / "home"), stdout=asyncio.subprocess.PIPE, stderr=stderr_end)
    os.close(stderr_end)
    pipe = os.fdopen(unread, "rb")
    assert process.stdout is not None
    try:
        port = None
        while port is None:
            line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
            assert line, "serve exited before listening"
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)/v1", line)
            port = int(found.group(1)) if found else None
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        body = {"model": "hermes-4-405b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
        # nobody reads the proxy's stderr meanwhile: with the log written on the event loop, the loop would block on
        # the full pipe and these requests would never finish
        async with aiohttp.ClientSession() as session:

            async def one() -> str:
                async with session.post(url, json=body) as response:
                    assert response.status == 200, await response.text()
                    return response.headers["x-request-id"]

            ids = set(await asyncio.wait_for(asyncio.gather(*(one() for _ in range(REQUESTS))), 20))
        process.send_signal(signal.SIGTERM)
        stderr = await asyncio.wait_for(asyncio.to_thread(pipe.read), 30)  # reading lets the writer thread finish
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        pipe.close()
    logged = [json.loads(line) for line in stderr.decode().splitlines() if line.startswith("{")]
    requests = [entry for entry in logged if entry.get("msg") == "request"]
    assert {entry["request_id"] for entry in requests} == ids and len(requests) == REQUESTS
    assert all(entry["status"] == "ok" and entry["completion_tokens"] > 0 for entry in requests)
