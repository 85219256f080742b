"""``tools`` and ``tool_choice``: the request shapes OpenAI accepts (a malformed one is a 400, never sent upstream),
and, after the answer, whether the model honoured ``tool_choice`` (a note for an x-hermes header or the log).

Accepted shapes (OpenAI's chat completions API):

- ``tools``: an array of ``{"type": "function", "function": {"name", "description"?, "parameters"?, "strict"?}}``;
  ``name`` is 1-64 characters of ``a-z A-Z 0-9 _ -``, unique in the request; ``parameters`` a JSON-schema object.
- ``tool_choice``: ``"none"``, ``"auto"``, ``"required"``, or ``{"type": "function", "function": {"name"}}`` naming
  one of ``tools``. ``"required"`` and a named function need ``tools``.
- ``parallel_tool_calls``: a boolean.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from hermes_proxy.errors import InvalidRequest
from hermes_proxy.tools.render import forced_function, tool_name

NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
CHOICE_WORDS = ("none", "auto", "required")


def validate_tools(body: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidRequest` (with ``param``) when ``tools``, ``tool_choice`` or ``parallel_tool_calls`` is
    not a shape OpenAI accepts."""
    tools = body.get("tools")
    names: list[str] = []
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidRequest("'tools' must be an array of tool objects", param="tools")
        for index, tool in enumerate(tools):
            names.append(_validate_tool(tool, f"tools[{index}]", names))
    choice = body.get("tool_choice")
    if choice is not None:
        _validate_choice(choice, names)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise InvalidRequest("'parallel_tool_calls' must be a boolean", param="parallel_tool_calls")


def _validate_tool(tool: Any, where: str, seen: list[str]) -> str:
    if not isinstance(tool, dict):
        raise InvalidRequest(f"'{where}' must be an object", param=where)
    if tool.get("type") != "function":
        raise InvalidRequest(f"'{where}.type' must be 'function'; got {tool.get('type')!r}", param=f"{where}.type")
    function = tool.get("function")
    if not isinstance(function, dict):
        raise InvalidRequest(f"missing required parameter: '{where}.function'", param=f"{where}.function")
    name = function.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidRequest(f"'{where}.function.name' must be 1-64 characters of a-z, A-Z, 0-9, '_' or '-'; "
                             f"got {name!r}", param=f"{where}.function.name")
    if name in seen:
        raise InvalidRequest(f"'{where}.function.name': {name!r} is defined twice", param=f"{where}.function.name")
    description = function.get("description")
    if description is not None and not isinstance(description, str):
        raise InvalidRequest(f"'{where}.function.description' must be a string",
                             param=f"{where}.function.description")
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidRequest(f"'{where}.function.parameters' must be a JSON schema object",
                             param=f"{where}.function.parameters")
    if isinstance(parameters, dict) and "type" in parameters and parameters["type"] != "object":
        raise InvalidRequest(f"'{where}.function.parameters' must be a schema of type 'object'",
                             param=f"{where}.function.parameters")
    strict = function.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise InvalidRequest(f"'{where}.function.strict' must be a boolean", param=f"{where}.function.strict")
    return name


def _validate_choice(choice: Any, names: list[str]) -> None:
    if isinstance(choice, str):
        if choice not in CHOICE_WORDS:
            raise InvalidRequest(f"'tool_choice' must be one of {', '.join(CHOICE_WORDS)} or a function object; "
                                 f"got {choice!r}", param="tool_choice")
        if choice == "required" and not names:
            raise InvalidRequest("'tool_choice' is 'required' but no 'tools' are given", param="tool_choice")
        return
    if not isinstance(choice, dict) or choice.get("type") != "function":
        raise InvalidRequest("'tool_choice' must be a string or {\"type\": \"function\", \"function\": {\"name\"}}",
                             param="tool_choice")
    name = forced_function(choice)
    if name is None:
        raise InvalidRequest("missing required parameter: 'tool_choice.function.name'",
                             param="tool_choice.function.name")
    if name not in names:
        raise InvalidRequest(f"'tool_choice' names {name!r}, which is not one of 'tools'",
                             param="tool_choice.function.name")


def call_names(calls: Iterable[Any]) -> list[str]:
    """Function names of ``calls``: names, OpenAI ``tool_calls`` entries, or parser :class:`CallStart` events."""
    names: list[str] = []
    for call in calls:
        if isinstance(call, str):
            names.append(call)
        elif isinstance(call, Mapping):
            names.append(tool_name(call))
        elif isinstance(getattr(call, "name", None), str):
            names.append(call.name)
    return names


def check_tool_choice(tool_choice: Any, calls: Iterable[Any],
                      tools: Iterable[Mapping[str, Any]] | None = None) -> str | None:
    """``None`` when the answer's ``calls`` honour ``tool_choice`` (``None`` = ``"auto"``); else what went wrong.

    ``calls`` are the answer's calls (see :func:`call_names`). With ``tools`` given, a call to a function that is not
    one of them is reported too.
    """
    names = call_names(calls)
    if tools is not None:
        offered = {tool_name(t) for t in tools}
        unknown = sorted({n for n in names if n not in offered})
        if unknown:
            return f"the model called {', '.join(unknown)}, not among the request's tools"
    forced = forced_function(tool_choice)
    if forced is not None:
        if not names:
            return f"tool_choice named {forced!r} but the model called no function"
        others = sorted({n for n in names if n != forced})
        if others:
            return f"tool_choice named {forced!r} but the model called {', '.join(others)}"
        if len(names) > 1:
            return f"tool_choice named {forced!r}; the model called it {len(names)} times"
        return None
    if tool_choice == "required" and not names:
        return "tool_choice is 'required' but the model called no function"
    if tool_choice == "none" and names:
        return f"tool_choice is 'none' but the model called {', '.join(sorted(set(names)))}"
    return None
