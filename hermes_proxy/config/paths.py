"""Where the proxy keeps its files by default (per-user, as the platform expects)."""

from __future__ import annotations

from pathlib import Path

import platformdirs


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("hermes-proxy", appauthor=False))


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir("hermes-proxy", appauthor=False)) / "config.toml"
