"""Shared fixtures. All on-disk state is isolated per test; nothing here reaches the network."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from hermes_proxy.config import Config, TokensConfig, parse_config
from hermes_proxy.tokens import TokenCounter, load_token_counter

# Bytecode caches even where PYTHONDONTWRITEBYTECODE is set (as in some containers): the xdist workers and every
# `hermes-proxy serve` a test starts would otherwise compile the project's ~40k lines again, ~3 s of CPU each, about a
# sixth of the suite's CPU. The caches go in the project's (git-ignored) __pycache__ directories.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# Property tests: a quick run on a developer's machine, a thorough one in CI (which sets CI=true). Tests leave
# max_examples to the profile; HYPOTHESIS_PROFILE picks one by hand.
settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile("ci", max_examples=400, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev"))



@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Freeze the heap once the tests are done. A worker ends holding ~500k objects (mostly Textual's bounded render
    caches); pytest's final unraisable-exception sweep collects them five times and the interpreter's shutdown once
    more, ~3 s of CPU per worker, all at the very end where the 2 cores are shared by 4 workers (5-6 s of the wall).
    Unraisable exceptions during the tests are still reported, test by test."""
    gc.freeze()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, each worker's share starts with its part of the ``slow`` tests. xdist's work stealing first deals
    the collection out in contiguous shares, then moves tests from the end of the longest queue; a test of several
    seconds dealt near the end of a share would run last, alone, while the other workers idle."""
    workers = getattr(config, "workerinput", {}).get("workercount", 0)
    slow = [item for item in items if item.get_closest_marker("slow")]
    if workers < 2 or not slow:
        return
    rest = [item for item in items if not item.get_closest_marker("slow")]
    shares: list[list[pytest.Item]] = [slow[i::workers] for i in range(workers)]
    left = len(items)
    for i, share in enumerate(shares):  # the sizes xdist deals: each worker gets what is left / workers left
        size = left // (workers - i)
        left -= size
        take = max(0, size - len(share))
        share += rest[:take]
        del rest[:take]
    items[:] = [item for share in shares for item in share] + rest


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two workers per core. A third of the suite's wall time is spent waiting (on subprocesses, sleeps
    that stand in for an upstream's pace, PostgreSQL and Redis); a second worker per core fills it. On this project's
    2-core reference machine 4 workers finish in 93 s where 2 take 118 s."""
    return 2 * (os.cpu_count() or 1)


_SECRET_ENVS = ("OPENROUTER_API_KEY", "NOUS_API_KEY", "HERMES_PROXY_CONFIG", "HERMES_ADMIN_KEY",
                "HERMES_PROXY_LEDGER_URL", "HERMES_PROXY_API_KEY")


@pytest.fixture(autouse=True)
def isolated_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the user's data and config dirs into tmp_path and forget any real keys from the environment."""
    home = tmp_path / "home"
    for name, sub in (("XDG_DATA_HOME", "data"), ("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache")):
        monkeypatch.setenv(name, str(home / sub))
    monkeypatch.setenv("HOME", str(home))
    for name in _SECRET_ENVS:
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(scope="session")
def counter(tmp_path_factory: pytest.TempPathFactory) -> TokenCounter:
    """The offline cl100k-based Hermes counter, loaded once per session (loading costs a few hundred ms)."""
    return load_token_counter(TokensConfig(), data_dir=tmp_path_factory.mktemp("tokens"))


def build_config(upstream_url: str | None = None, dialect: str = "vllm", *, env: dict[str, str] | None = None,
                 **sections: Any) -> Config:
    """A config with one fake HTTP upstream (or the demo) serving hermes-4-405b, an in-memory ledger, no pacing."""
    if upstream_url is None:
        upstreams = [{"name": "demo", "kind": "demo", "first_token_s": 0, "tokens_per_s": 0}]
        routes = [{"upstream": "demo", "model": "Hermes-4-405B", "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 3.0}]
    else:
        upstreams = [{"name": "primary", "kind": dialect, "base_url": upstream_url, "api_key_env": "UPSTREAM_KEY",
                      "max_retries": 1, "retry_backoff_s": 0, "read_timeout_s": 5, "connect_timeout_s": 2}]
        routes = [{"upstream": "primary", "model": "Hermes-4-405B", "input_usd_per_mtok": 1.0,
                   "output_usd_per_mtok": 3.0}]
    data: dict[str, Any] = {
        "server": {"auth": "none"},
        "upstreams": upstreams,
        "models": {"hermes-4-405b": {"routes": routes}},
        "ledger": {"url": "memory://"},
    }
    for key, value in sections.items():
        data[key] = value
    return parse_config(data, env=env if env is not None else {"UPSTREAM_KEY": "sk-upstream-secret-123"})


@pytest.fixture
def config_factory() -> Callable[..., Config]:
    return build_config


def environ_without_secrets() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _SECRET_ENVS}


from tests.proxy_harness import proxy  # noqa: E402, F401  (the end-to-end fixture, shared by the HTTP tests)
from tests.serve_harness import serve  # noqa: E402, F401  (hermes-proxy serve as a subprocess)
