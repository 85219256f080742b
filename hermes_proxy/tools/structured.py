"""``response_format`` (structured output): the request shape, the instruction for hosts without native support, and
the check of the answer.

- ``{"type": "text"}`` (or none): nothing to do.
- ``{"type": "json_object"}``: the answer is one JSON object.
- ``{"type": "json_schema", "json_schema": {"name", "schema"?, "strict"?, "description"?}}``: the answer is JSON;
  with ``strict: true`` it must validate against ``schema``.

The instruction is Hermes' trained JSON-mode prompt (``<schema>…</schema>`` in the system prompt, as in Nous'
Hermes 2 Pro / Hermes 3 model cards); :func:`response_format_from_system_prompt` reads it back (the demo does).
Hermes often fences its JSON (```` ```json … ``` ````): :func:`strip_fence` returns the JSON inside, and the check
accepts it.

Schema validation uses ``jsonschema`` (imported on first use, never at import time: it is not on the hot path of a
request without ``response_format``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from hermes_proxy.errors import InvalidRequest

JSON_OBJECT_INSTRUCTION = ("You are a helpful assistant that answers in JSON. Answer with one JSON object and "
                           "nothing else: no prose before or after it.")
JSON_SCHEMA_INSTRUCTION = ("You are a helpful assistant that answers in JSON. Here's the json schema you must "
                           "adhere to:\n<schema>\n{schema}\n</schema>")
_SCHEMA_RE = re.compile(r"Here's the json schema you must adhere to:\n<schema>\n(.*?)\n</schema>", re.DOTALL)
_FENCE_RE = re.compile(r"\A\s*```[ \t]*(?:json|JSON)?[ \t]*\r?\n(.*?)\r?\n?[ \t]*```\s*\Z", re.DOTALL)
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
FORMAT_TYPES = ("text", "json_object", "json_schema")


def validate_response_format(body: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidRequest` (with ``param``) when ``response_format`` is not a shape OpenAI accepts, or its
    schema is not a valid JSON schema."""
    if body.get("response_format") is None:
        return
    fmt = body["response_format"]
    if not isinstance(fmt, dict) or fmt.get("type") not in FORMAT_TYPES:
        raise InvalidRequest(f"'response_format.type' must be one of {', '.join(FORMAT_TYPES)}",
                             param="response_format.type" if isinstance(fmt, dict) else "response_format")
    if fmt["type"] != "json_schema":
        return
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict):
        raise InvalidRequest("missing required parameter: 'response_format.json_schema'",
                             param="response_format.json_schema")
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidRequest("'response_format.json_schema.name' must be 1-64 characters of a-z, A-Z, 0-9, '_' or '-'",
                             param="response_format.json_schema.name")
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise InvalidRequest("'response_format.json_schema.strict' must be a boolean",
                             param="response_format.json_schema.strict")
    schema = spec.get("schema")
    if schema is None:
        return
    if not isinstance(schema, dict):
        raise InvalidRequest("'response_format.json_schema.schema' must be a JSON schema object",
                             param="response_format.json_schema.schema")
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidRequest(f"'response_format.json_schema.schema' is not a valid JSON schema: {exc.message}",
                             param="response_format.json_schema.schema") from None


def _schema(response_format: Mapping[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
    """(schema, strict) of a json_schema format."""
    spec = response_format.get("json_schema") if response_format else None
    if not isinstance(spec, Mapping):
        return None, False
    schema = spec.get("schema")
    return (dict(schema) if isinstance(schema, Mapping) else None), spec.get("strict") is True


def format_instruction(response_format: Mapping[str, Any] | None) -> str:
    """The system-prompt text asking for ``response_format``; ``""`` for text (or none)."""
    kind = response_format.get("type") if response_format else None
    if kind == "json_object":
        return JSON_OBJECT_INSTRUCTION
    if kind == "json_schema":
        schema, _ = _schema(response_format)
        if schema is None:
            return JSON_OBJECT_INSTRUCTION
        return JSON_SCHEMA_INSTRUCTION.format(schema=json.dumps(schema, ensure_ascii=False))
    return ""


def response_format_from_system_prompt(text: str) -> dict[str, Any] | None:
    """The ``response_format`` a system prompt written with :func:`format_instruction` asks for (``strict`` is not
    part of the instruction: a schema read back is taken as strict); ``None`` when it asks for none."""
    found = _SCHEMA_RE.search(text)
    if found:
        try:
            schema = json.loads(found.group(1))
        except ValueError:
            schema = None
        if isinstance(schema, dict):
            return {"type": "json_schema", "json_schema": {"name": "from_system_prompt", "schema": schema,
                                                           "strict": True}}
    if found or JSON_OBJECT_INSTRUCTION in text:
        return {"type": "json_object"}
    return None


def strip_fence(text: str) -> str:
    """``text`` without one surrounding Markdown code fence (```` ```json ```` or ```` ``` ````), and stripped."""
    fenced = _FENCE_RE.match(text)
    return (fenced.group(1) if fenced else text).strip()


def check_structured(response_format: Mapping[str, Any] | None, text: str) -> str | None:
    """``None`` when ``text`` conforms to ``response_format``; else a short message saying what is wrong."""
    kind = response_format.get("type") if response_format else None
    if kind not in ("json_object", "json_schema"):
        return None
    try:
        value = json.loads(strip_fence(text))
    except ValueError as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        return f"the answer is not valid JSON: {getattr(exc, 'msg', str(exc))}{where}"
    if kind == "json_object":
        return None if isinstance(value, dict) else f"the answer is a JSON {_json_type(value)}, not an object"
    schema, strict = _schema(response_format)
    if schema is None or not strict:
        return None
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    path = "/".join(str(part) for part in error.absolute_path)
    return f"the answer does not match the schema at /{path}: {error.message}"


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
