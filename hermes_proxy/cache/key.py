"""Whether a request uses the response cache, and its key.

A team uses the cache only when its own table says ``cache = true``: nothing a request sends can make the proxy keep
a team's prompts and answers otherwise. Within such a team, the request decides with the ``x-hermes-cache`` header or
the ``cache`` body field (the header wins): ``on`` (look up, and keep the answer on a miss), ``off`` (neither),
``refresh`` (do not look up; keep the new answer in place of the old). A request that says nothing is cached only
when it is deterministic: temperature 0 (its own, or the configured default) or a seed.

The key is a SHA-256 of everything that changes the answer, as the proxy will send it: the team (two teams never
share an entry), the model alias and the route first tried, the reasoning decision, the planned ``max_tokens``, the
effective sampling defaults, and every other field of the body (messages, tools, tool_choice, response_format, stop,
penalties, seed...), less those that only change how the answer travels (``stream``, ``stream_options``, ``user``,
``metadata``, ``store``, ``cache``). An unknown field is part of the key: a miss is cheap, a wrong hit is not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

from hermes_proxy.config import Config
from hermes_proxy.errors import InvalidRequest
from hermes_proxy.reasoning import ReasoningDecision
from policies.types import TeamPolicy

CacheMode = Literal["on", "off", "refresh"]
CACHE_MODES: tuple[CacheMode, ...] = ("on", "off", "refresh")
CACHE_HEADER = "x-hermes-cache"
#: fields that change how the answer travels, never what it says (``max_tokens`` enters as the planned value)
_NOT_IN_KEY = frozenset({"stream", "stream_options", "user", "metadata", "store", "cache", "model", "max_tokens",
                         "max_completion_tokens"})
KEY_VERSION = 1


def requested_mode(body: Mapping[str, Any], header: str | None) -> CacheMode | None:
    """What the request asked (the header wins over the body's ``cache``); ``None`` when it says nothing."""
    if header is not None:
        value = header.strip().lower()
        if value not in CACHE_MODES:
            raise InvalidRequest(f"the {CACHE_HEADER} header must be on, off or refresh; got {header[:40]!r}",
                                 param=CACHE_HEADER)
        return value  # type: ignore[return-value]
    raw = body.get("cache")
    if raw is None:
        return None
    if raw not in CACHE_MODES:
        raise InvalidRequest(f"'cache' must be \"on\", \"off\" or \"refresh\"; got {str(raw)[:40]!r}", param="cache")
    return raw  # type: ignore[no-any-return]


def is_deterministic(body: Mapping[str, Any], config: Config) -> bool:
    temperature = body.get("temperature")
    if temperature is None:
        temperature = config.sampling.temperature
    return temperature == 0 or isinstance(body.get("seed"), int)


def cache_mode(team: TeamPolicy, body: Mapping[str, Any], header: str | None, config: Config) -> CacheMode:
    """``on``, ``off`` or ``refresh`` for this request (``off`` for a team without the cache, whatever it asks; a
    malformed header or field is still a 400, so that a typo is not silently ignored)."""
    asked = requested_mode(body, header)
    if not team.cache:
        return "off"
    if asked is not None:
        return asked
    return "on" if is_deterministic(body, config) else "off"


def cache_key(*, team: str, model: str, route: str, decision: ReasoningDecision, max_tokens: int,
              body: Mapping[str, Any], config: Config) -> str:
    sampling = config.sampling
    material = {
        "v": KEY_VERSION, "team": team, "model": model, "route": route,
        "reasoning": [decision.enabled, decision.format, decision.max_reasoning_tokens],
        "max_tokens": max_tokens,
        "defaults": [str(sampling.temperature), str(sampling.top_p), str(sampling.top_k)],
        "body": {k: v for k, v in body.items() if k not in _NOT_IN_KEY},
    }
    canonical = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
