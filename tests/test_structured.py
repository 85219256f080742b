"""response_format: validation, the JSON-mode instruction (read back), fences, the check of the answer; and example
values that validate against their schema."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hermes_proxy.errors import InvalidRequest
from hermes_proxy.tools.examples import example_value
from hermes_proxy.tools.structured import (
    JSON_OBJECT_INSTRUCTION,
    check_structured,
    format_instruction,
    response_format_from_system_prompt,
    strip_fence,
    validate_response_format,
)

PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
          "required": ["name", "age"], "additionalProperties": False}
STRICT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
LOOSE = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
OBJECT = {"type": "json_object"}


def test_strip_fence() -> None:
    assert strip_fence('```json\n{"a": 1}\n```') == '{"a": 1}'
    assert strip_fence('  ```\n[1]\n```\n') == "[1]"
    assert strip_fence('```JSON\n{"a": "```"}\n```') == '{"a": "```"}'
    assert strip_fence(' {"a": 1} ') == '{"a": 1}'
    assert strip_fence("Here:\n```json\n{}\n```") == "Here:\n```json\n{}\n```"  # prose around it is not a fence


def test_check_json_object() -> None:
    assert check_structured(OBJECT, '{"a": 1}') is None
    assert check_structured(OBJECT, '```json\n{"a": 1}\n```') is None
    assert "not valid JSON" in (check_structured(OBJECT, "Sure! {") or "")
    assert "array" in (check_structured(OBJECT, "[1, 2]") or "")
    assert check_structured(None, "anything") is None
    assert check_structured({"type": "text"}, "anything") is None


def test_check_json_schema_strict_validates_and_names_what_is_wrong() -> None:
    assert check_structured(STRICT, '{"name": "Ada", "age": 36}') is None
    assert check_structured(STRICT, '```json\n{"name": "Ada", "age": 36}\n```') is None
    wrong = check_structured(STRICT, '{"name": "Ada", "age": -1}') or ""
    assert "/age" in wrong and "minimum" in wrong
    assert "'age' is a required property" in (check_structured(STRICT, '{"name": "Ada"}') or "")
    assert "not valid JSON" in (check_structured(STRICT, "{'name': 'Ada'}") or "")
    # without strict, valid JSON is enough
    assert check_structured(LOOSE, '{"name": "Ada"}') is None
    assert check_structured(LOOSE, "nope") is not None


def test_instruction_is_hermes_json_mode_and_reads_back() -> None:
    text = format_instruction(STRICT)
    assert "<schema>\n" + json.dumps(PERSON) + "\n</schema>" in text
    read = response_format_from_system_prompt("Be brief.\n\n" + text)
    assert read is not None and read["json_schema"]["schema"] == PERSON and read["json_schema"]["strict"] is True
    assert format_instruction(OBJECT) == JSON_OBJECT_INSTRUCTION
    assert response_format_from_system_prompt("x " + JSON_OBJECT_INSTRUCTION) == OBJECT
    assert format_instruction({"type": "text"}) == "" and format_instruction(None) == ""
    assert response_format_from_system_prompt("You are Hermes.") is None


@pytest.mark.parametrize(("fmt", "param"), [
    ("json", "response_format"),
    ({"type": "yaml"}, "response_format.type"),
    ({"type": "json_schema"}, "response_format.json_schema"),
    ({"type": "json_schema", "json_schema": {"schema": PERSON}}, "response_format.json_schema.name"),
    ({"type": "json_schema", "json_schema": {"name": "p", "strict": 1}}, "response_format.json_schema.strict"),
    ({"type": "json_schema", "json_schema": {"name": "p", "schema": []}}, "response_format.json_schema.schema"),
    ({"type": "json_schema", "json_schema": {"name": "p", "schema": {"type": "nope"}}},
     "response_format.json_schema.schema"),
])
def test_malformed_response_format_is_a_400(fmt: Any, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        validate_response_format({"response_format": fmt})
    assert caught.value.param == param


def test_well_formed_response_formats_pass() -> None:
    for fmt in (None, {"type": "text"}, OBJECT, STRICT, LOOSE):
        validate_response_format({"response_format": fmt})


# --- example values -------------------------------------------------------------------------------------------------

WEATHER_ARGS = {"type": "object", "properties": {
    "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    "days": {"type": "integer", "minimum": 1, "maximum": 7},
    "query": {"type": "string"},
}, "required": ["location"]}


def test_examples_are_plausible() -> None:
    value = example_value(WEATHER_ARGS, hint="weather in Paris tomorrow")
    assert value == {"location": "San Francisco, CA", "unit": "celsius", "days": 3,
                     "query": "weather in Paris tomorrow"}
    jsonschema.validate(value, WEATHER_ARGS)


NESTED = {
    "$defs": {"point": {"type": "object", "properties": {"lat": {"type": "number", "minimum": -90, "maximum": 90},
                                                         "lon": {"type": "number"}}, "required": ["lat", "lon"],
                        "additionalProperties": False}},
    "type": "object",
    "properties": {
        "where": {"$ref": "#/$defs/point"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2, "uniqueItems": True},
        "when": {"type": "string", "format": "date-time"},
        "score": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "level": {"type": "integer", "multipleOf": 5, "minimum": 12},
        "maybe": {"anyOf": [{"type": "null"}, {"type": "boolean"}]},
        "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"const": "x"}], "minItems": 2},
        "short": {"type": "string", "minLength": 3, "maxLength": 4},
        "both": {"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                           {"properties": {"b": {"type": ["string", "null"]}}, "required": ["b"]}]},
        "extra": {"type": "object", "required": ["k"], "additionalProperties": {"type": "integer"}},
    },
    "required": ["where", "tags", "when", "score", "level", "maybe", "pair", "short", "both", "extra"],
    "additionalProperties": False,
}


def test_examples_validate_for_nested_schemas() -> None:
    value = example_value(NESTED)
    jsonschema.Draft202012Validator(NESTED, format_checker=jsonschema.FormatChecker()).validate(value)


leaf_schemas = st.one_of(
    st.builds(lambda lo, span, ex: {"type": "integer", "minimum": lo, "maximum": lo + span}
              if not ex else {"type": "integer", "exclusiveMinimum": lo, "exclusiveMaximum": lo + span + 2},
              st.integers(-1000, 1000), st.integers(0, 50), st.booleans()),
    st.builds(lambda lo, span: {"type": "number", "minimum": lo, "maximum": lo + span},
              st.floats(-1e6, 1e6), st.floats(0, 1e3)),
    st.builds(lambda lo, extra: {"type": "string", "minLength": lo, "maxLength": lo + extra},
              st.integers(0, 20), st.integers(0, 20)),
    st.sampled_from([{"type": "boolean"}, {"type": "null"}, {"enum": ["a", 1, None]}, {"const": {"k": [1]}},
                     {"type": "string", "format": "email"}, {"type": ["integer", "null"]}, {}]),
)
schemas = st.recursive(
    leaf_schemas,
    lambda inner: st.one_of(
        st.builds(lambda props, strict: {"type": "object", "properties": props, "required": sorted(props),
                                         **({"additionalProperties": False} if strict else {})},
                  st.dictionaries(st.sampled_from(["name", "city", "count", "query", "price", "tags", "x"]), inner,
                                  max_size=4), st.booleans()),
        st.builds(lambda items, lo: {"type": "array", "items": items, "minItems": lo}, inner, st.integers(0, 3)),
        st.builds(lambda a, b: {"anyOf": [a, b]}, inner, inner),
    ),
    max_leaves=10,
)


@given(schemas, st.text(max_size=20))
def test_examples_validate_against_any_schema(schema: dict[str, Any], hint: str) -> None:
    value = example_value(schema, hint=hint)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(value)
    json.dumps(value)  # plain JSON
