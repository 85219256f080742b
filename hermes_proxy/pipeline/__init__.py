"""One chat completion, read top to bottom: :mod:`.parse` -> :mod:`.plan` -> :mod:`.admit` -> :mod:`.connect` ->
:mod:`.answer` -> :mod:`.outcome` -> :mod:`.settle`, sequenced by :class:`.call.ChatCall`; :class:`.gateway.Gateway`
is the facade the HTTP routes and the terminal chat use. Every upstream-kind difference is the route's dialect's
(:mod:`hermes_proxy.upstreams`)."""

from hermes_proxy.pipeline.call import ChatCall
from hermes_proxy.pipeline.gateway import Gateway
from hermes_proxy.pipeline.types import CallInfo, Outcome, Piece, Principal

__all__ = ["CallInfo", "ChatCall", "Gateway", "Outcome", "Piece", "Principal"]
