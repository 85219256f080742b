"""Who is looking at the dashboard: a signed session cookie set by the login form, and the CSRF token of its forms.

- The admin key or a team key is typed into the login form (POST body, never a URL) and checked once; the cookie then
  holds an HMAC-signed token ``payload.signature`` naming the role (admin, or a team and its key id), an expiry and a
  random nonce. No key is in it. Cookie flags: ``HttpOnly``, ``SameSite=Strict``, ``Path=/ui``, ``Secure`` when the page
  was reached over https (directly or per ``X-Forwarded-Proto``).
- The signing secret is derived from the admin key (every process with the same admin key accepts the same cookies; a
  new admin key ends every session); without an admin key it is random per process (team logins only).
- A team session is checked against the ledger on every request: a revoked key ends it at once.
- Every POST carries a CSRF token (HMAC of the session nonce; the login form: of a pre-login cookie) and, when the
  browser sends one, an ``Origin`` equal to the page's own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from hermes_proxy import keys as keyutil
from hermes_proxy.config import Config

COOKIE = "hp_ui"
PRE_COOKIE = "hp_ui_login"
PATH = "/ui"
SESSION_S = 12 * 3600
_LOGGED_OUT_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class Session:
    role: str  # "admin" or "team"
    team: str | None  # the team of a team session
    key_id: str | None
    expires: int
    nonce: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"

    def may_see(self, team: str) -> bool:
        return self.admin or self.team == team


@dataclass(slots=True)
class Sessions:
    """Signs and reads session tokens; remembers (per process) the nonces of sessions logged out before expiry."""

    secret: bytes
    ttl_s: int = SESSION_S
    logged_out: OrderedDict[str, int] = field(default_factory=OrderedDict)

    @classmethod
    def for_config(cls, config: Config) -> Sessions:
        admin = config.server.admin_key
        if admin is None:
            return cls(os.urandom(32))
        return cls(hmac.new(keyutil.token_bytes(admin.reveal()), b"hermes-proxy dashboard session v1",
                            hashlib.sha256).digest())

    def _sign(self, text: bytes) -> str:
        return _b64(hmac.new(self.secret, text, hashlib.sha256).digest())

    def issue(self, role: str, team: str | None = None, key_id: str | None = None) -> tuple[str, Session]:
        session = Session(role, team, key_id, int(time.time()) + self.ttl_s, _b64(os.urandom(18)))
        payload = _b64(json.dumps({"r": role, "t": team, "k": key_id, "e": session.expires, "n": session.nonce},
                                  separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload.encode())}", session

    def read(self, token: str | None) -> Session | None:
        if not token or token.count(".") != 1:
            return None
        payload, signature = token.split(".")
        if not hmac.compare_digest(self._sign(payload.encode("ascii", "replace")).encode(),
                                   signature.encode("ascii", "replace")):
            return None
        try:
            data: Any = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = Session(str(data["r"]), data["t"], data["k"], int(data["e"]), str(data["n"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires < time.time() or session.nonce in self.logged_out or session.role not in ("admin", "team"):
            return None
        return session

    def log_out(self, session: Session) -> None:
        self.logged_out[session.nonce] = session.expires
        now = time.time()
        while self.logged_out and (len(self.logged_out) > _LOGGED_OUT_KEPT or next(iter(self.logged_out.values())) < now):
            self.logged_out.popitem(last=False)

    def csrf(self, nonce: str) -> str:
        return self._sign(b"csrf:" + nonce.encode())

    def csrf_ok(self, nonce: str, given: Any) -> bool:
        return isinstance(given, str) and hmac.compare_digest(self.csrf(nonce).encode(), given.encode("utf-8",
                                                                                                       "replace"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def is_https(request: web.Request) -> bool:
    return request.secure or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def set_cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=PATH, httponly=True, samesite="Strict",
                        secure=is_https(request))


def clear_cookie(response: web.StreamResponse, request: web.Request, name: str) -> None:
    response.del_cookie(name, path=PATH, secure=is_https(request), httponly=True, samesite="Strict")


def same_origin(request: web.Request) -> bool:
    """A POST from this site's own pages: no ``Origin`` (older browsers, non-browser clients; the CSRF token still
    decides) or an ``Origin`` equal to the host the request was sent to."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    scheme = "https" if is_https(request) else "http"
    return origin.lower() in (f"{scheme}://{request.host}".lower(), f"{request.scheme}://{request.host}".lower())
