"""Who may see what: the session of a request, and the team a page is about (a team session sees its own only)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from hermes_proxy.appkeys import LEDGER, current_config
from hermes_proxy.dashboard.session import COOKIE, Session, Sessions
from hermes_proxy.errors import AuthenticationError, NotFound, PermissionDenied
from hermes_proxy.ledger.base import KeyRecord
from policies.types import TeamPolicy

SESSIONS: web.AppKey[Sessions] = web.AppKey("dashboard_sessions", Sessions)


@dataclass(frozen=True, slots=True)
class Viewer:
    session: Session
    csrf: str
    key: KeyRecord | None  # a team session's key, as stored now


async def viewer(request: web.Request) -> Viewer | None:
    """The signed-in viewer, or None (no cookie, a bad or expired one, a revoked key, a team no longer configured)."""
    sessions = request.app[SESSIONS]
    session = sessions.read(request.cookies.get(COOKIE))
    if session is None:
        return None
    config = current_config(request.app)
    key = None
    if session.admin:
        if config.server.admin_key is None:
            return None
    else:
        if session.team is None or config.team(session.team) is None or config.server.auth != "keys":
            return None
        live = [k for k in await request.app[LEDGER].list_keys(session.team) if k.id == session.key_id and k.active]
        if not live:
            return None
        key = live[0]
    return Viewer(session, sessions.csrf(session.nonce), key)


async def api_viewer(request: web.Request) -> Viewer:
    """For the JSON and download endpoints: 401 (JSON) without a session."""
    found = await viewer(request)
    if found is None:
        raise AuthenticationError("sign in at /ui/login first")
    return found


def team_of(request: web.Request, who: Viewer, name: str | None) -> TeamPolicy:
    """The team ``name`` if this viewer may see it: 404 for an unknown team, 403 for another team's."""
    config = current_config(request.app)
    if name is None and not who.session.admin:
        name = who.session.team
    policy = config.team(name) if name else None
    if policy is None:
        raise NotFound(f"no team {name!r}", param="team")
    if not who.session.may_see(policy.name):
        raise PermissionDenied("a team key can only see its own team", param="team")
    return policy
