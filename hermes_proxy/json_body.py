"""Parse a request body as JSON that everything downstream can handle, or refuse it with a 400 naming the problem.

``json.loads`` accepts more than the rest of the proxy can carry: a lone UTF-16 surrogate escape (``"\\ud800"``) parses
to a ``str`` that cannot be encoded again (the upstream client, the token counter and the ledger would fail later),
``NaN`` / ``Infinity`` and ``1e400`` are not JSON numbers any upstream accepts, and nesting a thousand levels deep
exhausts the recursion limit. :func:`parse_json_body` parses once and then checks the result iteratively (no
recursion), so no code after it ever sees such a value or a structure deeper than :data:`MAX_JSON_DEPTH`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from hermes_proxy.errors import InvalidRequest

#: containers nested deeper than this are refused (tool schemas rarely go past 10)
MAX_JSON_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")
#: an ASCII body can only carry a surrogate as a \uD800-\uDFFF escape (json.loads also reads surrogates encoded as
#: UTF-8 bytes, and UTF-16/32 bodies, so any other body is checked string by string)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")

Path = tuple[str | int, ...]


def parse_json_body(raw: bytes) -> Any:
    """The JSON value in ``raw`` (UTF-8), checked as described in the module docstring; raises :class:`InvalidRequest`."""
    try:
        value = json.loads(raw)
    except UnicodeDecodeError:
        raise InvalidRequest("the request body is not UTF-8") from None
    except RecursionError:
        raise InvalidRequest(f"the JSON body is nested too deeply (at most {MAX_JSON_DEPTH} levels)") from None
    except ValueError as exc:
        raise InvalidRequest(f"could not parse the JSON body of your request: {exc}") from None
    check_json_value(value, strings=not raw.isascii() or _SURROGATE_ESCAPE.search(raw) is not None)
    return value


def check_json_value(value: Any, *, strings: bool = True) -> None:
    """Refuse containers deeper than :data:`MAX_JSON_DEPTH`, non-finite numbers and (when ``strings``) strings holding
    a lone surrogate. Iterative: safe on any depth."""
    stack: list[tuple[Any, Path]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            items: Any = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            _check_scalar(node, path, strings)
            continue
        if len(path) >= MAX_JSON_DEPTH:
            raise InvalidRequest(f"the JSON body is nested too deeply at {describe(path)} "
                                 f"(at most {MAX_JSON_DEPTH} levels)", param=param(path))
        for key, child in items:
            if strings and isinstance(key, str) and _SURROGATE.search(key):
                raise InvalidRequest(f"a key of {describe(path)} holds a lone UTF-16 surrogate escape "
                                     f"(\\ud800-\\udfff without its pair); send valid Unicode", param=param(path))
            if isinstance(child, (dict, list)):
                stack.append((child, (*path, key)))
            else:
                _check_scalar(child, (*path, key), strings)


def _check_scalar(value: Any, path: Path, strings: bool) -> None:
    if strings and isinstance(value, str) and _SURROGATE.search(value):
        raise InvalidRequest(f"{describe(path)} holds a lone UTF-16 surrogate escape (\\ud800-\\udfff without its "
                             "pair); send valid Unicode", param=param(path))
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequest(f"{describe(path)} is {value}: JSON numbers must be finite (no NaN, Infinity, or "
                             "values beyond 1.8e308)", param=param(path))


def param(path: Path) -> str | None:
    """``("messages", 0, "content")`` -> ``"messages[0].content"`` (the body itself -> ``None``)."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or None


def describe(path: Path) -> str:
    where = param(path)
    return "the body" if where is None else f"'{where}'"
