"""Team API keys: generation, hashing, and the checks shared by the CLI and the admin API.

A key is ``hp-`` + 32 random bytes (url-safe base64). Only its SHA-256 is stored; the plaintext is shown once, at
creation. A key is found by its hash and the stored hash is then compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from decimal import Decimal, InvalidOperation
from typing import Any

from hermes_proxy.config import Config
from hermes_proxy.errors import InvalidRequest

KEY_PREFIX = "hp-"
DISPLAY_CHARS = 10  # "hp-" and 7 characters: enough to tell keys apart, far too few to guess one
KEY_ID_PREFIX = "key_"
#: SQLite keeps money as signed 64-bit nano-dollars (at most ~9.2e9 USD); PostgreSQL's NUMERIC(24, 9) holds < 1e15
MAX_USD = Decimal("1e9")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
#: what a key can look like: the prefix and url-safe base64 (header bytes that are not UTF-8 never match)
_KEY = re.compile(r"hp-[A-Za-z0-9_-]{17,197}")


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return KEY_ID_PREFIX + secrets.token_hex(8)


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def display_prefix(plaintext: str) -> str:
    return plaintext[:DISPLAY_CHARS]


def hashes_match(stored: str, candidate: str) -> bool:
    return hmac.compare_digest(stored.encode("ascii"), candidate.encode("ascii"))


def looks_like_key(plaintext: str) -> bool:
    return _KEY.fullmatch(plaintext) is not None


def token_bytes(token: str) -> bytes:
    """A token from a header (or the environment) as bytes to compare: never raises, even for undecodable bytes that
    Python carries as lone surrogates."""
    return token.encode("utf-8", "surrogatepass")


def parse_usd(value: Any, what: str = "limit_usd") -> Decimal | None:
    """A non-negative USD amount from user input (number or numeric string); ``None`` stays ``None``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise InvalidRequest(f"{what} must be a number of USD, got {value!r}", param=what)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidRequest(f"{what} must be a number of USD, got {value!r}", param=what) from None
    if not amount.is_finite():
        raise InvalidRequest(f"{what} must be a finite number of USD, got {value!r}", param=what)
    if amount < 0:
        raise InvalidRequest(f"{what} must not be negative, got {value!r}", param=what)
    if amount >= MAX_USD:
        raise InvalidRequest(f"{what} must be below {MAX_USD:f} USD, got {value!r}", param=what)
    if amount != amount.quantize(Decimal("1e-9")):
        raise InvalidRequest(f"{what} has more than 9 decimal places: {value!r}", param=what)
    return amount


def check_name(name: str | None) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidRequest(
            f"key name must be 1-64 characters of letters, digits, '.', '_', '@' or '-', "
            f"starting with a letter or digit; got {name!r}", param="name")
    if name.startswith(KEY_ID_PREFIX):
        raise InvalidRequest(f"key name may not start with {KEY_ID_PREFIX!r} (that is how key ids look)", param="name")
    return name


def check_team(config: Config, team: Any) -> str:
    """``team`` must be configured: a key for an unknown team could never be used."""
    known = ", ".join(sorted(t.name for t in config.teams)) or "none"
    if not isinstance(team, str) or not team:
        raise InvalidRequest(f"a team is required (configured teams: {known})", param="team")
    if config.team(team) is None:
        raise InvalidRequest(f"unknown team {team!r} (configured teams: {known})", param="team")
    return team
