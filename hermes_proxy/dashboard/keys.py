"""Keys: list (a team session sees its own team's, read-only), create (the plaintext shown once, in the answer to the
POST, never stored) and revoke, through the same functions as ``/admin/keys`` (same checks, same audit log)."""

from __future__ import annotations

from aiohttp import web

from hermes_proxy.admin import new_team_key, revoke_team_key
from hermes_proxy.appkeys import LEDGER, current_config
from hermes_proxy.dashboard.guard import SESSIONS, Viewer
from hermes_proxy.dashboard.html import csrf_field, esc, message_page, page, table, url
from hermes_proxy.dashboard.pages import exports, signed_in, usd
from hermes_proxy.dashboard.session import same_origin
from hermes_proxy.errors import HermesError
from hermes_proxy.ledger.base import KeyRecord


async def _render(request: web.Request, who: Viewer, team: str | None, *, notice: str = "", error: str = "",
                  status: int = 200) -> web.Response:
    config = current_config(request.app)
    if not who.session.admin:
        team = who.session.team
    elif team is not None and config.team(team) is None:
        team = None
    records = await request.app[LEDGER].list_keys(team)
    admin = who.session.admin

    def row(k: KeyRecord) -> list[str]:
        state = ('<span class="tag ok">active</span>' if k.active else
                 f'<span class="tag revoked">revoked {esc(f"{k.revoked_at:%Y-%m-%d %H:%M}")}</span>')
        action = ""
        if admin and k.active:
            action = (f'<form class="inline revoke" method="post" action="/ui/keys/revoke">{csrf_field(who.csrf)}'
                      f'<input type="hidden" name="key_id" value="{esc(k.id)}">'
                      f'<input type="hidden" name="back" value="{esc(team or "")}">'
                      f'<button class="danger" type="submit" data-key="{esc(k.name)}">Revoke</button></form>')
        return [f"<code>{esc(k.id)}</code>", esc(k.team), esc(k.name), f"<code>{esc(k.prefix)}…</code>",
                "-" if k.limit_usd is None else usd(k.limit_usd, 2), esc(f"{k.created_at:%Y-%m-%d %H:%M}"), state,
                action]

    listing = table(["Id", "Team", "Name", "Prefix", "Limit", "Created (UTC)", "Status", ""],
                    [row(k) for k in records], table_id="keys") if records else '<p class="muted">No keys.</p>'
    teams = [t.name for t in config.teams]
    filters = ""
    if admin:
        links = [f'<a class="{"current" if team is None else ""}" href="/ui/keys">all</a>'] + [
            f'<a class="{"current" if t == team else ""}" href="{esc(url("/ui/keys", team=t))}">{esc(t)}</a>'
            for t in teams]
        filters = f'<nav class="periods">Team: {"".join(links)}</nav>'
    create = ""
    if admin:
        options = "".join(f'<option value="{esc(t)}"{" selected" if t == team else ""}>{esc(t)}</option>'
                          for t in teams)
        create = (
            '<section><h2>Create a key</h2><form class="create" method="post" action="/ui/keys" autocomplete="off">'
            f'{csrf_field(who.csrf)}<label>Team<select name="team" id="new-team">{options}</select></label>'
            '<label>Name (optional)<input name="name" id="new-name" maxlength="64"></label>'
            '<label>Spend limit, USD (optional)<input name="limit_usd" id="new-limit" inputmode="decimal"></label>'
            '<button type="submit" id="create-key">Create</button></form>'
            '<p class="small muted">The key is shown once, on the next page. Only its hash is stored.</p></section>')
    boxes = ""
    if notice:
        boxes += f'<section class="notice">{notice}</section>'
    if error:
        boxes += f'<section class="error" id="form-error">{esc(error)}</section>'
    content = (f"<h1>Keys</h1>{filters}{boxes}{create}"
               f'<section><h2>{esc(team or "Every team")}\'s keys {exports("keys", team=team)}</h2>{listing}</section>')
    response = page("Keys", content, session=who.session, csrf=who.csrf, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


async def keys_page(request: web.Request) -> web.StreamResponse:
    who = await signed_in(request)
    return await _render(request, who, request.query.get("team") or None)


async def _admin_form(request: web.Request) -> tuple[Viewer, dict[str, str]] | web.Response:
    who = await signed_in(request)
    form = await request.post()
    if not who.session.admin:
        return message_page("Not allowed", "Only the admin can create or revoke keys.", 403, who.session, who.csrf)
    if not same_origin(request) or not request.app[SESSIONS].csrf_ok(who.session.nonce, form.get("csrf")):
        return message_page("Refused", "The form came from another site or has expired: reload the page.", 403,
                            who.session, who.csrf)
    return who, {k: v.strip() for k, v in form.items() if isinstance(v, str)}


async def create_key(request: web.Request) -> web.StreamResponse:
    checked = await _admin_form(request)
    if isinstance(checked, web.Response):
        return checked
    who, form = checked
    team = form.get("team") or None
    try:
        plaintext, record = await new_team_key(request.app, team, form.get("name") or None,
                                               form.get("limit_usd") or None, via="dashboard")
    except HermesError as exc:
        return await _render(request, who, team, error=exc.message, status=exc.status)
    notice = (f"<h2>New key for {esc(record.team)}: {esc(record.name)}</h2>"
              f'<p>Copy it now: it is not shown again.</p><code class="key" id="new-key">{esc(plaintext)}</code>')
    return await _render(request, who, record.team, notice=notice, status=201)


async def revoke_key(request: web.Request) -> web.StreamResponse:
    checked = await _admin_form(request)
    if isinstance(checked, web.Response):
        return checked
    who, form = checked
    back = form.get("back") or None
    ident = form.get("key_id") or ""
    try:
        record = await revoke_team_key(request.app, ident, None, via="dashboard")
    except HermesError as exc:
        return await _render(request, who, back, error=exc.message, status=exc.status)
    return await _render(request, who, back,
                         notice=f'<p id="revoked">Revoked {esc(record.name)} (<code>{esc(record.id)}</code>, team '
                                f"{esc(record.team)}). It stops working at once.</p>")
