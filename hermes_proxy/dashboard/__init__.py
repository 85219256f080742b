"""The spend dashboard, ``GET /ui``: for whoever pays the bill.

Server-rendered HTML with inline SVG charts, one vendored style sheet and one small script (live figures), no external
origin: it works in an air-gapped network. Served when ``[server] dashboard = true`` (the default); sign-in takes the
admin key (every team, keys) or, with ``auth = "keys"``, a team key (that team only, read-only keys).

Modules: ``session`` (signed cookie, CSRF), ``guard`` (who sees what), ``reads`` (roll-up reads), ``report`` (a team's
numbers), ``charts`` (SVG), ``html`` (layout), ``pages``, ``keys``, ``live``, ``exports``, ``static``.
"""

from __future__ import annotations

from aiohttp import web

from hermes_proxy.appkeys import CONFIG
from hermes_proxy.dashboard import exports, keys, live, pages, static
from hermes_proxy.dashboard.guard import SESSIONS
from hermes_proxy.dashboard.session import PATH, Sessions

#: no inline script or style, nothing from another origin, no framing, forms post only here
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path != PATH and not request.path.startswith(PATH + "/"):
        return
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"  # no-referrer would make form posts send Origin: null
    response.headers.setdefault("Cache-Control", "no-store")


def add_dashboard_routes(app: web.Application) -> None:
    """Add ``/ui`` when the config turns the dashboard on (``[server] dashboard``, default true)."""
    config = app[CONFIG]
    if not config.server.dashboard:
        return
    app[SESSIONS] = Sessions.for_config(config)
    app.on_response_prepare.append(_security_headers)
    router = app.router
    router.add_get("/ui", pages.overview)
    router.add_get("/ui/", pages.overview)
    router.add_get("/ui/login", pages.login_form)
    router.add_post("/ui/login", pages.login)
    router.add_post("/ui/logout", pages.logout)
    router.add_get("/ui/team", pages.team_page)
    router.add_get("/ui/keys", keys.keys_page)
    router.add_post("/ui/keys", keys.create_key)
    router.add_post("/ui/keys/revoke", keys.revoke_key)
    router.add_get("/ui/live", live.live)
    router.add_get(r"/ui/export/{table:[a-z-]+}.{format:[a-z]+}", exports.export)
    router.add_get("/ui/static/{name}", static.static_file)
