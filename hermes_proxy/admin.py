"""Admin and spend endpoints.

- ``POST /admin/keys`` ``{team, name?, limit_usd?}`` -> 201 with the plaintext key (shown this once only);
- ``GET /admin/keys[?team=]``, ``DELETE /admin/keys/{id_or_name}[?team=]``, ``GET /admin/spend[?team=&by=&since=&until=]``;
- ``GET /v1/spend``: a team key sees its own team only; the admin key sees any team (``?team=``) or all.

Spend rows (and the total) carry ``requests``, tokens, ``cost_usd``, ``unknown_cost_requests``, ``estimated_requests``
and ``estimated_cost_usd`` (usage counted locally, or a hold that expired and was billed from its last checkpoint),
``learned_price_requests`` and ``learned_price_cost_usd`` (reserved at, or revealing, a price above the configured one),
``cached_requests`` and ``saved_usd`` (answered from the response cache; what they would have cost less their charge).

``/admin/*`` needs the admin key (``Authorization: Bearer …``, compared in constant time) and does not exist (404) when
no admin key is configured. Money goes out as decimal strings (``"0.0123"``), never as floats. Errors are raised as
:class:`~hermes_proxy.errors.HermesError`; the application's middleware renders them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from hermes_proxy import keys as keyutil
from hermes_proxy.appkeys import LEDGER, current_config
from hermes_proxy.auth import authenticate, bearer_token, is_admin_token, require_admin
from hermes_proxy.config import Config
from hermes_proxy.errors import InvalidRequest, NotFound, PermissionDenied
from hermes_proxy.ledger.base import SPEND_GROUPS, KeyRecord, budget_json, spend_row_json, spend_total
from hermes_proxy.routes import expect_handler, read_json
from policies.windows import parse_when, zone

#: who created or revoked which key, and through which surface (one JSON line each with the server's logging)
audit = logging.getLogger("hermes_proxy.audit")


def add_admin_routes(app: web.Application) -> None:
    app.router.add_post("/admin/keys", create_key, expect_handler=expect_handler)
    app.router.add_get("/admin/keys", list_keys, expect_handler=expect_handler)
    app.router.add_delete("/admin/keys/{ident}", revoke_key, expect_handler=expect_handler)
    app.router.add_get("/admin/spend", admin_spend, expect_handler=expect_handler)
    app.router.add_get("/v1/spend", own_spend, expect_handler=expect_handler)


# --- keys -------------------------------------------------------------------------------------------------------------


async def create_key(request: web.Request) -> web.Response:
    require_admin(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object {team, name?, limit_usd?}")
    unknown = set(body) - {"team", "name", "limit_usd"}
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(sorted(unknown))} (known: team, name, limit_usd)",
                             param=sorted(unknown)[0])
    plaintext, record = await new_team_key(request.app, body.get("team"), body.get("name"), body.get("limit_usd"),
                                           via="admin_api")
    return web.json_response({**record.to_json(), "key": plaintext}, status=201)


async def list_keys(request: web.Request) -> web.Response:
    require_admin(request)
    records = await request.app[LEDGER].list_keys(request.query.get("team") or None)
    return web.json_response({"object": "list", "data": [r.to_json() for r in records]})


async def revoke_key(request: web.Request) -> web.Response:
    require_admin(request)
    record = await revoke_team_key(request.app, request.match_info["ident"], request.query.get("team") or None,
                                   via="admin_api")
    return web.json_response(record.to_json())


async def new_team_key(app: web.Application, team: Any, name: Any, limit_usd: Any, *,
                       via: str) -> tuple[str, KeyRecord]:
    """Create a key with the admin API's checks (a configured team, a valid name, a USD limit) and log it to the
    ``hermes_proxy.audit`` logger; ``via`` says which surface asked (``admin_api``, ``dashboard``)."""
    checked_team = keyutil.check_team(current_config(app), team)
    checked_name = keyutil.check_name(name)
    limit = keyutil.parse_usd(limit_usd)
    plaintext, record = await app[LEDGER].create_key(checked_team, checked_name, limit)
    audit.info("key created", extra={"fields": {"event": "key_created", "via": via, "key_id": record.id,
                                                 "team": record.team, "name": record.name,
                                                 "limit_usd": None if limit is None else str(limit)}})
    return plaintext, record


async def revoke_team_key(app: web.Application, ident: str, team: str | None, *, via: str) -> KeyRecord:
    """Revoke by id or live name (in ``team`` when given), as ``DELETE /admin/keys``; logged to the audit logger."""
    record = await app[LEDGER].revoke_key(ident, team)
    if record is None:
        raise NotFound(f"no key with id or live name {ident!r}", param="ident")
    audit.info("key revoked", extra={"fields": {"event": "key_revoked", "via": via, "key_id": record.id,
                                                 "team": record.team, "name": record.name}})
    return record


# --- spend ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpendQuery:
    team: str | None
    by: str | None
    since: datetime | None
    until: datetime | None
    timezone: str


def spend_query(config: Config, team: str | None, params: dict[str, str], now: datetime) -> SpendQuery:
    """Read ``by``, ``since``, ``until``; times are read in the team's time zone (UTC for all teams)."""
    policy = config.team(team) if team is not None else None
    tz = params.get("timezone") or (policy.timezone if policy is not None else "UTC")
    try:
        zone(tz)
    except (ValueError, KeyError):
        raise InvalidRequest(f"unknown time zone {tz!r} (use an IANA name such as Europe/Berlin)",
                             param="timezone") from None
    by = params.get("by") or None
    if by is not None and by not in SPEND_GROUPS:
        raise InvalidRequest(f"by must be one of {', '.join(SPEND_GROUPS)}; got {by!r}", param="by")
    moments: dict[str, datetime | None] = {}
    for name in ("since", "until"):
        raw = params.get(name)
        try:
            moments[name] = parse_when(raw, now=now, tz=tz) if raw else None
        except (ValueError, KeyError) as exc:
            raise InvalidRequest(f"{name}: {exc}", param=name) from None
    return SpendQuery(team, by, moments["since"], moments["until"], tz)


async def spend_body(request: web.Request, query: SpendQuery, key: KeyRecord | None = None) -> dict[str, Any]:
    config, ledger = current_config(request.app), request.app[LEDGER]
    try:
        rows = await ledger.spend(team=query.team, by=query.by, since=query.since, until=query.until,
                                  tz=query.timezone)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    body: dict[str, Any] = {
        "object": "spend",
        "team": query.team,
        "by": query.by or "team",
        "since": None if query.since is None else query.since.isoformat(),
        "until": None if query.until is None else query.until.isoformat(),
        "timezone": query.timezone,
        "data": [spend_row_json(row) for row in rows],
        "total": spend_row_json(spend_total(rows)),
    }
    policy = config.team(query.team) if query.team is not None else None
    if policy is not None:
        # a team key also sees its own lifetime limit (window "key"), when one applies
        body["budgets"] = [budget_json(b) for b in await ledger.budget_status(policy, key=key)]
    return body


async def admin_spend(request: web.Request) -> web.Response:
    require_admin(request)
    params = dict(request.query)
    query = spend_query(current_config(request.app), params.get("team") or None, params, datetime.now(UTC))
    return web.json_response(await spend_body(request, query))


async def own_spend(request: web.Request) -> web.Response:
    """A team's own spend. The admin key may name any team (or none: all teams); a team key only its own."""
    config = current_config(request.app)
    params = dict(request.query)
    asked = params.get("team") or None
    record: KeyRecord | None = None
    if is_admin_token(config, bearer_token(request)):
        team = asked
    else:
        principal = await authenticate(request)
        team, record = principal.team.name, principal.key
        if asked is not None and asked != team:
            raise PermissionDenied("a team key can only see its own team's spend", param="team")
    query = spend_query(config, team, params, datetime.now(UTC))
    return web.json_response(await spend_body(request, query, record))
