"""Hosts litellm reaches (Nebius and others) know Hermes 4 through its text: the deep-thinking prompt switches
reasoning on and ``<think>`` comes back in the content. Kept apart from the transport so that choosing the dialect
never imports litellm (4.5 s)."""

from __future__ import annotations

from hermes_proxy.upstreams.dialect import Dialect


class LiteLLMDialect(Dialect):
    kind = "litellm"
    uses_litellm_prices = True

    def describe(self) -> str:
        return f"litellm{' at ' + self.config.base_url if self.config.base_url else ''}"
