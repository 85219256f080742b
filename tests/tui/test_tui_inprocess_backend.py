"""The in-process backend builds the same chat body a client would send to the proxy."""

from __future__ import annotations

from typing import Any

import pytest

from hermes_proxy.config.defaults import default_config
from hermes_proxy.errors import InvalidRequest
from hermes_proxy.pipeline import Principal
from tui.backend import BackendError
from tui.inprocess_backend import InProcessBackend


class RecordingGateway:
    """Takes the body and refuses it, as the gateway refuses an invalid request."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def chat(self, body: dict[str, Any], principal: Principal) -> RecordingGateway:
        self.bodies.append(body)
        return self

    async def __aenter__(self) -> None:
        raise InvalidRequest("recorded")

    async def __aexit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize(("options", "expected"), [
    ({"temperature": 0.3, "max_tokens": 256}, {"temperature": 0.3, "max_tokens": 256}),
    ({}, {}),
])
async def test_the_conversations_settings_go_into_the_body(options: dict[str, Any],
                                                           expected: dict[str, Any]) -> None:
    gateway = RecordingGateway()
    backend = InProcessBackend(default_config(env={}), gateway, ledger=None)  # type: ignore[arg-type]
    with pytest.raises(BackendError, match="recorded"):
        [e async for e in backend.stream(model="hermes-4-405b", messages=[{"role": "user", "content": "hi"}],
                                         reasoning=True, **options)]
    (body,) = gateway.bodies
    assert body["reasoning"] is True
    assert {k: body[k] for k in ("temperature", "max_tokens") if k in body} == expected
