"""Upstreams: a transport (:class:`~hermes_proxy.upstreams.base.Upstream`) and a
:class:`~hermes_proxy.upstreams.dialect.Dialect` per kind, which owns everything that differs by kind.

A new kind is one module with its dialect (and its transport if it is not OpenAI-compatible HTTP), and a line in
:func:`dialect_for` and :func:`build_upstream`.
"""

from __future__ import annotations

from typing import Any

from hermes_proxy.config import UpstreamConfig
from hermes_proxy.upstreams.base import Upstream
from hermes_proxy.upstreams.dialect import Dialect


def dialect_for(config: UpstreamConfig) -> Dialect:
    """How the configured upstream's kind is spoken to."""
    if config.kind == "vllm":
        from hermes_proxy.upstreams.vllm import VLLMDialect

        return VLLMDialect(config)
    if config.kind == "openrouter":
        from hermes_proxy.upstreams.openrouter import OpenRouterDialect

        return OpenRouterDialect(config)
    if config.kind == "litellm":
        from hermes_proxy.upstreams.litellm_dialect import LiteLLMDialect

        return LiteLLMDialect(config)
    if config.kind == "demo":
        from hermes_proxy.upstreams.demo import DemoDialect

        return DemoDialect(config)
    from hermes_proxy.upstreams.nous import NousDialect

    return NousDialect(config)


def build_upstream(config: UpstreamConfig, *, counter: Any) -> Upstream:
    """The client for one configured upstream (``counter`` is the token counter the demo reports usage with)."""
    dialect = dialect_for(config)
    if config.kind == "demo":
        from hermes_proxy.upstreams.demo import DemoUpstream

        return DemoUpstream(config, counter, dialect)
    if config.kind == "litellm":
        from hermes_proxy.upstreams.litellm_upstream import LiteLLMUpstream

        return LiteLLMUpstream(config, dialect)
    from hermes_proxy.upstreams.openai_compat import OpenAICompatibleUpstream

    return OpenAICompatibleUpstream(config, dialect)


__all__ = ["Dialect", "Upstream", "build_upstream", "dialect_for"]
