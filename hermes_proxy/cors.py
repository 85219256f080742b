"""Opt-in CORS, for browser apps calling the proxy directly: ``[server] cors_origins``.

Off (no CORS header at all) unless origins are configured. For an allowed ``Origin``:
- a preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered here with 204, before routing;
- every actual response (JSON, SSE streams, errors) carries ``Access-Control-Allow-Origin`` (the request's origin,
  echoed) and ``Access-Control-Expose-Headers`` listing the proxy's own headers on that response, so that a browser
  app can read ``x-hermes-*``, ``x-ratelimit-*``, ``x-request-id`` and ``Retry-After``.
A request from any other origin gets no CORS header: the browser then refuses it, which is the point.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ALLOW_METHODS = "GET, POST, DELETE, OPTIONS"
#: request headers a browser app may send: auth, body type, request id, the proxy's own request headers
ALLOW_HEADERS = ("authorization", "content-type", "x-request-id", "x-hermes-reasoning", "api-key", "x-api-key")
EXPOSED_PREFIXES = ("x-hermes-", "x-ratelimit-")
ALWAYS_EXPOSED = ("x-request-id",)
#: how long a browser may cache a preflight (Chromium caps it at 2 hours)
MAX_AGE_S = 7200


class CorsPolicy:
    """Which origins may call the API from a browser; ``*`` allows any."""

    def __init__(self, origins: tuple[str, ...]) -> None:
        self.any = "*" in origins
        self.origins = frozenset(o.lower() for o in origins if o != "*")

    def allows(self, origin: str | None) -> bool:
        if not origin:
            return False
        return self.any or origin.lower() in self.origins

    @web.middleware
    async def preflight(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if (request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers
                or not self.allows(origin)):
            return await handler(request)
        asked = request.headers.get("Access-Control-Request-Headers", "")
        headers = list(ALLOW_HEADERS)
        # anything else the app sends (the OpenAI JS SDK adds x-stainless-*) carries no authority here: allow it
        headers += [h for h in (part.strip().lower() for part in asked.split(",")) if h and h not in headers]
        response = web.Response(status=204, headers={
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Allow-Headers": ", ".join(headers),
            "Access-Control-Max-Age": str(MAX_AGE_S),
        })
        if request.headers.get("Access-Control-Request-Private-Network") == "true":
            # Chromium's Private Network Access: a public web page calling a proxy on localhost or a LAN
            response.headers["Access-Control-Allow-Private-Network"] = "true"
        return response

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if not self.allows(origin):
            return
        assert origin is not None
        response.headers["Access-Control-Allow-Origin"] = origin
        vary = response.headers.get("Vary", "")
        if "origin" not in vary.lower():
            response.headers["Vary"] = f"{vary}, Origin" if vary else "Origin"
        exposed = list(ALWAYS_EXPOSED)
        exposed += [name.lower() for name in response.headers
                    if name.lower().startswith(EXPOSED_PREFIXES) and name.lower() not in exposed]
        if "Retry-After" in response.headers:
            exposed.append("retry-after")
        response.headers["Access-Control-Expose-Headers"] = ", ".join(exposed)


def install_cors(app: web.Application, origins: tuple[str, ...]) -> None:
    """Answer preflights (outermost middleware) and mark responses, when any origin is configured."""
    if not origins:
        return
    policy = CorsPolicy(origins)
    app.middlewares.insert(0, policy.preflight)
    app.on_response_prepare.append(policy.on_prepare)
