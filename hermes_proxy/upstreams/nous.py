"""Nous Portal: OpenAI-compatible, no documented reasoning field. The deep-thinking system prompt switches reasoning
on (the mechanism that works on every host); the reasoning comes back in ``<think>`` or ``reasoning_content``."""

from __future__ import annotations

from hermes_proxy.upstreams.dialect import Dialect


class NousDialect(Dialect):
    kind = "nous"
