"""A plausible example value for a JSON schema (the demo's tool arguments and structured answers).

Deterministic, and valid against the schema for the keywords it knows: ``type`` (one or a list), ``const``,
``enum``, ``$ref`` (local ``#/...``), ``anyOf``/``oneOf`` (the first usable branch), ``allOf`` (merged),
``properties`` (every property present, required or not), ``items``/``prefixItems``, ``minItems``/``maxItems``,
``uniqueItems``, ``minLength``/``maxLength``, ``format`` (date, date-time, time, email, uri, uuid, ipv4, hostname),
``minimum``/``maximum`` (exclusive too) and ``multipleOf``. ``pattern`` is not honoured (a schema that needs it
gets a string that may not match).

Strings come from, in order: an ``e.g. …`` in the description, the property name (``city`` -> ``Paris``), the
caller's ``hint`` for free-text fields (``query``, ``text``…), else ``example <name>``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

_BY_NAME = {
    "location": "Paris, France", "city": "Paris", "country": "France", "state": "CA", "address": "1 Main Street",
    "name": "Ada Lovelace", "first_name": "Ada", "last_name": "Lovelace", "username": "ada", "title": "Hello",
    "email": "ada@example.com", "url": "https://example.com", "unit": "celsius", "units": "metric",
    "language": "en", "lang": "en", "currency": "USD", "symbol": "AAPL", "ticker": "AAPL", "timezone": "UTC",
    "date": "2025-01-15", "time": "09:30", "color": "blue", "status": "active", "category": "general",
    "id": "item-1", "path": "/tmp/example.txt", "filename": "example.txt", "file": "example.txt", "tag": "example",
}
_FREE_TEXT = ("query", "q", "search", "prompt", "text", "question", "message", "content", "input", "topic", "body")
_BY_FORMAT = {
    "date": "2025-01-15", "date-time": "2025-01-15T09:30:00Z", "time": "09:30:00Z", "email": "ada@example.com",
    "uri": "https://example.com", "url": "https://example.com", "uuid": "123e4567-e89b-12d3-a456-426614174000",
    "ipv4": "192.0.2.1", "ipv6": "2001:db8::1", "hostname": "example.com",
}
_NUMBER_BY_NAME = {
    "latitude": 48.8566, "lat": 48.8566, "longitude": 2.3522, "lon": 2.3522, "lng": 2.3522, "temperature": 21.5,
    "price": 9.99, "amount": 42.0, "year": 2025, "age": 30, "count": 3, "limit": 5, "days": 3, "quantity": 2,
    "page": 1, "top_k": 5, "n": 3,
}
_EXAMPLE_RE = re.compile(r"\be\.g\.,?\s*['\"]?([^.;)'\"\n]+)")
_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")


def example_value(schema: Any, name: str = "", *, hint: str = "", root: Any = None) -> Any:
    """An example instance of ``schema``; ``name`` is the property (or function) it is for, ``hint`` free text."""
    root = schema if root is None else root
    if not isinstance(schema, Mapping):
        return _string({}, name, hint)
    schema = _resolved(schema, root)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return next((v for v in enum if v is not None), enum[0])
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            usable = [b for b in branches if not (isinstance(b, Mapping) and _resolved(b, root).get("type") == "null")]
            return example_value((usable or branches)[0], name, hint=hint, root=root)
    if isinstance(schema.get("allOf"), list):
        return example_value(_merged_all_of(schema, root), name, hint=hint, root=root)
    kind = _type_of(schema)
    if kind == "object":
        return _object(schema, hint, root)
    if kind == "array":
        return _array(schema, name, hint, root)
    if kind in ("integer", "number"):
        return _number(schema, name, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, name, hint)


def _resolved(schema: Mapping[str, Any], root: Any) -> Mapping[str, Any]:
    seen = 0
    while isinstance(schema.get("$ref"), str) and schema["$ref"].startswith("#") and seen < 32:
        target: Any = root
        for part in schema["$ref"][1:].split("/"):
            if part:
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, Mapping) else None
        if not isinstance(target, Mapping):
            break
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        seen += 1
    return schema


def _merged_all_of(schema: Mapping[str, Any], root: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        if not isinstance(part, Mapping):
            continue
        part = _resolved(part, root)
        for key, value in part.items():
            if key == "properties" and isinstance(value, Mapping):
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _type_of(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if kind in _TYPES:
        return str(kind)
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")):
        return "number"
    return "string"


def _object(schema: Mapping[str, Any], hint: str, root: Any) -> dict[str, Any]:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    out = {key: example_value(sub, key, hint=hint, root=root) for key, sub in properties.items()}
    for key in schema.get("required") or ():
        if isinstance(key, str) and key not in out:
            extra = schema.get("additionalProperties")
            out[key] = example_value(extra if isinstance(extra, Mapping) else {}, key, hint=hint, root=root)
    return out


def _array(schema: Mapping[str, Any], name: str, hint: str, root: Any) -> list[Any]:
    prefix = schema.get("prefixItems")
    prefix = prefix if isinstance(prefix, list) else []
    minimum = _int(schema, "minItems") or 0
    maximum = _int(schema, "maxItems")
    count = max(minimum, len(prefix), 1)
    if maximum is not None:
        count = min(count, maximum)
    singular = name[:-1] if name.endswith("s") and len(name) > 1 else name
    items = schema.get("items")
    out: list[Any] = []
    for index in range(count):
        sub = prefix[index] if index < len(prefix) else items
        value = example_value(sub if isinstance(sub, Mapping) else {}, singular, hint=hint, root=root)
        if schema.get("uniqueItems") and value in out:
            value = _vary(value, index)
        out.append(value)
    return out


def _vary(value: Any, index: int) -> Any:
    if isinstance(value, str):
        return f"{value} {index + 1}"
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + index
    return value


def _number(schema: Mapping[str, Any], name: str, *, integer: bool) -> int | float:
    value: float = _NUMBER_BY_NAME.get(name.lower(), 1 if integer else 1.5)
    step = _float(schema.get("multipleOf"))
    step = step if step and step > 0 else None
    gap = step or (1 if integer else 0.5)  # how far inside an exclusive bound
    lows = [v for v in (_float(schema.get("minimum")),) if v is not None]
    lows += [v + gap for v in (_float(schema.get("exclusiveMinimum")),) if v is not None]
    highs = [v for v in (_float(schema.get("maximum")),) if v is not None]
    highs += [v - gap for v in (_float(schema.get("exclusiveMaximum")),) if v is not None]
    lower = max(lows) if lows else None
    upper = min(highs) if highs else None
    if lower is not None and value < lower:
        value = lower
    if upper is not None and value > upper:
        value = upper if lower is None or upper >= lower else (lower + upper) / 2
    if step:
        value = math.ceil(value / step) * step
        if upper is not None and value > upper:
            value -= step
    if integer:
        return math.ceil(value) if lower is not None and value < lower else int(value)
    return value


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int(schema: Mapping[str, Any], key: str) -> int | None:
    value = schema.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _string(schema: Mapping[str, Any], name: str, hint: str) -> str:
    key = name.lower()
    fmt = schema.get("format")
    description = schema.get("description")
    example = _EXAMPLE_RE.search(description) if isinstance(description, str) else None
    if isinstance(fmt, str) and fmt in _BY_FORMAT:
        text = _BY_FORMAT[fmt]
    elif example:
        text = example.group(1).strip()
    elif key in _BY_NAME:
        text = _BY_NAME[key]
    elif key in _FREE_TEXT and hint.strip():
        text = " ".join(hint.split())[:80]
    else:
        text = f"example {name}".strip()
    low = _int(schema, "minLength") or 0
    high = _int(schema, "maxLength")
    if len(text) < low:
        text += "x" * (low - len(text))
    if high is not None:
        text = text[:high]
    return text
