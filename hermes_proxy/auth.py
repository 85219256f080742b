"""Who is calling: a team key (``Authorization: Bearer hp-…``), the admin key, or nobody when auth is off."""

from __future__ import annotations

import hmac

from aiohttp import web

from hermes_proxy import keys as keyutil
from hermes_proxy.appkeys import CONFIG, LEDGER, current_config
from hermes_proxy.config import Config
from hermes_proxy.errors import AuthenticationError, NotFound
from hermes_proxy.pipeline import Principal


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    for name in ("api-key", "x-api-key"):
        if request.headers.get(name):
            return request.headers[name].strip()
    return None


def is_admin_token(config: Config, token: str | None) -> bool:
    admin = config.server.admin_key
    if admin is None or not token:
        return False
    return hmac.compare_digest(keyutil.token_bytes(token), keyutil.token_bytes(admin.reveal()))


async def authenticate(request: web.Request) -> Principal:
    config = current_config(request.app)
    token = bearer_token(request)
    if config.server.auth == "none":
        team = config.team(config.chat.team)
        assert team is not None  # config guarantees the chat team exists
        return Principal(team=team)
    if not token:
        raise AuthenticationError("You didn't provide an API key. Send it as 'Authorization: Bearer hp-…'.")
    record = await request.app[LEDGER].verify_key(token)
    if record is None:
        raise AuthenticationError("Incorrect API key provided (unknown or revoked).")
    team = config.team(record.team)
    if team is None:
        raise AuthenticationError(f"This key belongs to team '{record.team}', which is no longer configured.")
    return Principal(team=team, key=record)


def require_admin(request: web.Request) -> None:
    """Admin-only endpoints do not exist (404) until an admin key is configured; then they need it (401)."""
    config = request.app[CONFIG]
    if config.server.admin_key is None:
        raise NotFound(f"Unknown endpoint {request.path} (admin endpoints are off: set ${config.server.admin_key_env} "
                       "to enable them)")
    if not is_admin_token(config, bearer_token(request)):
        raise AuthenticationError("This endpoint needs the admin key: send it as 'Authorization: Bearer …'.")
