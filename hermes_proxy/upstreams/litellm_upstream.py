"""Any host litellm supports (for example ``nebius/NousResearch/Hermes-4-405B``).

litellm costs about 4.5 s and 170 MB to import, so it is imported on the first request of a litellm route only,
with its network price-map fetch switched off.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

from hermes_proxy.config import UpstreamConfig
from hermes_proxy.errors import (
    UpstreamError,
    UpstreamOverloaded,
    UpstreamRejected,
    UpstreamStreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from hermes_proxy.upstreams.base import Chunk, message_to_chunk
from hermes_proxy.upstreams.dialect import Dialect

#: request fields litellm understands as arguments; anything else goes through ``extra_body``
_KNOWN = {
    "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "n", "seed", "tools",
    "tool_choice", "user", "stream_options", "presence_penalty", "frequency_penalty", "logit_bias", "response_format",
    "parallel_tool_calls", "logprobs", "top_logprobs",
}


class LiteLLMUpstream:
    simulated = False

    def __init__(self, config: UpstreamConfig, dialect: Dialect) -> None:
        self.config = config
        self.dialect = dialect
        self._module: ModuleType | None = None
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self.config.name

    async def _litellm(self) -> ModuleType:
        if self._module is None:
            async with self._lock:
                if self._module is None:
                    self._module = await asyncio.to_thread(_import_litellm)
        return self._module

    def _arguments(self, payload: dict[str, Any], stream: bool) -> dict[str, Any]:
        arguments: dict[str, Any] = {"model": payload["model"], "stream": stream, "drop_params": True,
                                     "timeout": self.config.read_timeout_s, "num_retries": 0}
        extra: dict[str, Any] = {}
        for key, value in self.dialect.request_body(payload, stream=stream).items():
            if key in ("model", "stream"):
                continue
            (arguments if key in _KNOWN else extra)[key] = value
        if self.config.base_url:
            arguments["api_base"] = self.config.base_url
        if self.config.api_key is not None:
            arguments["api_key"] = self.config.api_key.reveal()
        if self.config.headers:
            arguments["extra_headers"] = dict(self.config.headers)
        if extra:
            arguments["extra_body"] = extra
        return arguments

    async def chat(self, payload: dict[str, Any], *, stream: bool) -> AsyncIterator[Chunk]:
        litellm = await self._litellm()
        arguments = self._arguments(payload, stream)
        try:
            response = await litellm.acompletion(**arguments)
        except Exception as exc:
            raise self._map(exc, started=False) from None
        if not stream:
            yield message_to_chunk(response.model_dump(exclude_none=True))
            return
        started = False
        try:
            async for part in response:
                started = True
                yield part.model_dump(exclude_none=True)
        except UpstreamError:
            raise
        except Exception as exc:
            raise self._map(exc, started=started) from None

    def _map(self, exc: Exception, *, started: bool) -> UpstreamError:
        status = getattr(exc, "status_code", None)
        message = str(getattr(exc, "message", None) or exc) or type(exc).__name__
        key = self.config.api_key
        if key is not None and key.reveal():
            message = message.replace(key.reveal(), "***")
        message = message[:2000]
        if started:
            return UpstreamStreamError(self.name, message, upstream_status=status)
        name = type(exc).__name__
        if "Timeout" in name:
            return UpstreamTimeout(self.name, message, upstream_status=status)
        if "Connection" in name:
            return UpstreamUnavailable(self.name, message, upstream_status=status)
        if isinstance(status, int) and (status == 429 or status >= 500):
            return UpstreamOverloaded(self.name, message, upstream_status=status)
        return UpstreamRejected(self.name, message, upstream_status=status if isinstance(status, int) else None)

    async def ping(self) -> None:
        # litellm has no uniform health endpoint; a litellm route is ready when its module can be loaded lazily.
        return None

    async def aclose(self) -> None:
        return None


def _import_litellm() -> ModuleType:
    # Without this, importing litellm fetches its price map over the network.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    return litellm
