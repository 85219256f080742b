"""The client libraries people point at an OpenAI-compatible endpoint, against the real proxy on a real local port:
the openai SDK's helpers, LangChain (``bind_tools``, ``with_structured_output``), pydantic-ai (structured output,
tools) and instructor. Two kinds of upstream behind it: the built-in demo (no pacing), and a host that answers in raw
Hermes text (``<tool_call>`` blocks, JSON) split across small chunks, as Nous Portal does. Each test asserts what the
user's code gets back: the parsed object's fields, the tool's name and arguments.

A library that is not installed is skipped (instructor is not in the test lock: every release caps rich<15 and
jiter<0.15, which would hold the project's openai and rich back). Nothing leaves the loopback interface.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from aiohttp.test_utils import TestServer
from pydantic import BaseModel, Field

from hermes_proxy.app import create_app
from hermes_proxy.tokens import TokenCounter
from tests.conftest import build_config
from tests.fake_upstream import Script, make_upstream_app

MODEL = "hermes-4-405b"
KEY = "sk-compat-dummy"


class GetWeather(BaseModel):
    """Current weather in a city."""

    city: str = Field(description="The city, e.g. Oslo")
    unit: str = Field(default="c", description="c or f")


class Person(BaseModel):
    """A person mentioned in the text."""

    name: str
    age: int = Field(ge=0, le=150)


class City(BaseModel):
    name: str
    country: str
    population: int


def raw_call(name: str, arguments: dict[str, Any]) -> str:
    """A tool call the way Hermes writes it in its text."""
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


OSLO = {"city": "Oslo", "unit": "c"}
ALICE = {"name": "Alice", "age": 30}


# --- the proxy on a real port, served from its own thread -------------------------------------------------------


@dataclass
class Running:
    base_url: str
    script: Script | None

    def sent(self) -> dict[str, Any]:
        """The last body the raw-text upstream received."""
        assert self.script is not None and self.script.requests
        return self.script.requests[-1]


class _Loop:
    """An event loop in a daemon thread; ``run`` waits for a coroutine from the test's (synchronous) thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=15)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


@pytest.fixture
def serve(counter: TokenCounter) -> Iterator[Callable[..., Running]]:
    """``serve()``: the proxy in front of the demo; ``serve(answer)``: in front of a Nous-style host that answers
    ``answer`` as raw text, three characters per event."""
    loop = _Loop()
    servers: list[TestServer] = []

    async def start(answer: str | None) -> Running:
        script = None
        if answer is None:
            config = build_config(None)
        else:
            script = Script(dialect="nous", answer=answer, piece=3)
            upstream = TestServer(make_upstream_app(script))
            await upstream.start_server()
            servers.append(upstream)
            config = build_config(str(upstream.make_url("/v1")), "nous")
        proxy = TestServer(create_app(config, counter=counter))
        await proxy.start_server()
        servers.append(proxy)
        return Running(str(proxy.make_url("/v1")), script)

    async def stop() -> None:
        for server in reversed(servers):
            await server.close()

    yield lambda answer=None: loop.run(start(answer))
    loop.run(stop())
    loop.close()


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No telemetry, no real key, no real host: a connection anywhere but the loopback interface fails the test."""
    for name, value in {"OPENAI_API_KEY": KEY, "LANGCHAIN_TRACING_V2": "false", "LANGSMITH_TRACING": "false",
                        "LANGCHAIN_TRACING": "false", "LOGFIRE_SEND_TO_LOGFIRE": "false",
                        "LOGFIRE_IGNORE_NO_CONFIG": "1", "INSTRUCTOR_DISABLE_TELEMETRY": "1"}.items():
        monkeypatch.setenv(name, value)
    for name in ("OPENAI_BASE_URL", "OPENAI_ORG_ID", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "LOGFIRE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(address: Any) -> None:
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"a test tried to reach {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


def sdk(running: Running) -> openai.OpenAI:
    return openai.OpenAI(base_url=running.base_url, api_key=KEY, max_retries=0, timeout=10)


def assert_rendered_tools(running: Running, *names: str) -> None:
    """The raw-text host got the tools as Hermes' <tools> text, not as native fields it does not take."""
    sent = running.sent()
    assert "tools" not in sent and "tool_choice" not in sent
    system = sent["messages"][0]["content"]
    assert "<tools>" in system and all(name in system for name in names)


# --- the openai SDK's own helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize("upstream", ["demo", "raw"])
def test_openai_parse_and_stream_helpers_give_parsed_tool_arguments(serve: Callable[..., Running],
                                                                    upstream: str) -> None:
    running = serve(None if upstream == "demo" else raw_call("GetWeather", OSLO))
    client = sdk(running)
    request: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "What is the weather in Oslo?"}],
                               "tools": [openai.pydantic_function_tool(GetWeather)]}
    parsed = client.chat.completions.parse(**request).choices[0].message.tool_calls or []
    with client.chat.completions.stream(**request) as stream:
        final = stream.get_final_completion()
    streamed = final.choices[0].message.tool_calls or []
    assert final.choices[0].finish_reason == "tool_calls"
    for calls in (parsed, streamed):
        assert [c.function.name for c in calls] == ["GetWeather"]
        arguments = calls[0].function.parsed_arguments
        assert isinstance(arguments, GetWeather) and arguments.city
        if upstream == "raw":
            assert arguments == GetWeather.model_validate(OSLO)
            assert_rendered_tools(running, "GetWeather")


@pytest.mark.parametrize("upstream", ["demo", "raw"])
def test_openai_parse_with_a_response_format_gives_the_model(serve: Callable[..., Running], upstream: str) -> None:
    running = serve(None if upstream == "demo" else json.dumps(ALICE))
    completion = sdk(running).chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": "Alice is 30 years old."}], response_format=Person)
    person = completion.choices[0].message.parsed
    assert isinstance(person, Person) and person.name
    if upstream == "raw":
        assert person == Person.model_validate(ALICE)


# --- LangChain ---------------------------------------------------------------------------------------------------


def chat_openai(running: Running) -> Any:
    langchain_openai = pytest.importorskip("langchain_openai")
    return langchain_openai.ChatOpenAI(base_url=running.base_url, api_key=KEY, model=MODEL, max_retries=0,
                                       timeout=10)


def weather_function() -> Any:
    """A LangChain @tool function (its schema comes from the signature and the docstring)."""
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str, unit: str = "c") -> str:
        """Current weather in a city.

        Args:
            city: The city, e.g. Oslo
            unit: c or f
        """
        return json.dumps({"city": city, "temperature": 3, "sky": "snow"})

    return get_weather


def merged(chunks: Iterator[Any]) -> Any:
    total = None
    for chunk in chunks:
        total = chunk if total is None else total + chunk
    assert total is not None
    return total


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("kind", ["pydantic", "function"])
def test_langchain_bind_tools_against_the_demo(serve: Callable[..., Running], kind: str, stream: bool) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage

    llm = chat_openai(serve())
    tool = GetWeather if kind == "pydantic" else weather_function()
    name = "GetWeather" if kind == "pydantic" else "get_weather"
    bound = llm.bind_tools([tool])
    question = HumanMessage("What is the weather in Oslo?")
    message = merged(bound.stream([question])) if stream else bound.invoke([question])
    assert len(message.tool_calls) == 1, message.tool_calls  # a streamed call is one call, not a name and its args
    call = message.tool_calls[0]
    assert call["name"] == name and call["id"].startswith("call_")
    assert isinstance(call["args"]["city"], str) and call["args"]["city"]
    assert message.response_metadata.get("finish_reason") == "tool_calls"
    # the conversation goes on with the tool's result; the demo answers from it
    result = ToolMessage(json.dumps({"temperature": 3, "sky": "snow"}), tool_call_id=call["id"])
    answer = bound.invoke([question, message, result])
    assert not answer.tool_calls and "snow" in answer.content and "3" in answer.content


@pytest.mark.parametrize("stream", [False, True])
def test_langchain_bind_tools_against_raw_hermes_text(serve: Callable[..., Running], stream: bool) -> None:
    running = serve("Let me check.\n" + raw_call("get_weather", OSLO))
    bound = chat_openai(running).bind_tools([weather_function()])
    message = merged(bound.stream("Weather in Oslo?")) if stream else bound.invoke("Weather in Oslo?")
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [("get_weather", OSLO)]
    assert message.content.strip() == "Let me check."
    assert_rendered_tools(running, "get_weather")


@pytest.mark.parametrize("method", [None, "json_schema", "function_calling"])
def test_langchain_structured_output_against_the_demo(serve: Callable[..., Running], method: str | None) -> None:
    llm = chat_openai(serve())
    structured = llm.with_structured_output(Person, **({"method": method} if method else {}))
    person = structured.invoke("Alice is 30 years old.")
    assert isinstance(person, Person) and person.name and 0 <= person.age <= 150


@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")  # LangChain's own, streaming json_schema
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_langchain_structured_output_against_raw_hermes_text(serve: Callable[..., Running], method: str,
                                                             stream: bool) -> None:
    answer = json.dumps(ALICE) if method == "json_schema" else raw_call("Person", ALICE)
    running = serve(answer)
    structured = chat_openai(running).with_structured_output(Person, method=method)
    if stream:
        person = list(structured.stream("Alice is 30 years old."))[-1]
    else:
        person = structured.invoke("Alice is 30 years old.")
    assert person == Person.model_validate(ALICE)
    if method == "function_calling":
        assert_rendered_tools(running, "Person")


# --- pydantic-ai -------------------------------------------------------------------------------------------------


def agent_for(running: Running, **kwargs: Any) -> Any:
    pydantic_ai = pytest.importorskip("pydantic_ai")
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel(MODEL, provider=OpenAIProvider(base_url=running.base_url, api_key=KEY))
    return pydantic_ai.Agent(model, **kwargs)


@pytest.mark.parametrize("mode", ["tool", "native"])
def test_pydantic_ai_structured_output_against_the_demo(serve: Callable[..., Running], mode: str) -> None:
    NativeOutput = pytest.importorskip("pydantic_ai").NativeOutput

    agent = agent_for(serve(), output_type=City if mode == "tool" else NativeOutput(City))
    city = agent.run_sync("Tell me about Oslo.").output
    assert isinstance(city, City) and city.name and city.country


@pytest.mark.parametrize("stream", [False, True])
def test_pydantic_ai_structured_output_against_raw_hermes_text(serve: Callable[..., Running], stream: bool) -> None:
    oslo = {"name": "Oslo", "country": "Norway", "population": 717710}
    running = serve(raw_call("final_result", oslo))
    agent = agent_for(running, output_type=City)
    if stream:
        async def streamed() -> City:
            async with agent.run_stream("Tell me about Oslo.") as result:
                output: City = await result.get_output()
                return output
        city = asyncio.run(streamed())
    else:
        city = agent.run_sync("Tell me about Oslo.").output
    assert city == City.model_validate(oslo)
    assert_rendered_tools(running, "final_result")


def test_pydantic_ai_agent_calls_a_plain_tool_then_answers_from_it(serve: Callable[..., Running]) -> None:
    agent = agent_for(serve())
    calls: list[str] = []

    @agent.tool_plain
    def get_weather(city: str) -> dict[str, Any]:
        """Current weather in a city."""
        calls.append(city)
        return {"city": city, "temperature_c": 3, "sky": "snow"}

    result = agent.run_sync("What is the weather in Oslo?")
    assert len(calls) == 1 and calls[0]
    assert "get_weather" in result.output and "snow" in result.output and "3" in result.output
    kinds = [type(part).__name__ for message in result.all_messages() for part in message.parts]
    assert kinds == ["UserPromptPart", "ToolCallPart", "ToolReturnPart", "TextPart"]


# --- instructor --------------------------------------------------------------------------------------------------


def instructor_client(running: Running, mode_name: str) -> Any:
    instructor = pytest.importorskip("instructor")
    return instructor.from_openai(sdk(running), mode=getattr(instructor.Mode, mode_name))


@pytest.mark.parametrize("mode", ["TOOLS", "JSON", "JSON_SCHEMA"])
def test_instructor_against_the_demo(serve: Callable[..., Running], mode: str) -> None:
    client = instructor_client(serve(), mode)
    person = client.chat.completions.create(model=MODEL, response_model=Person, max_retries=0,
                                            messages=[{"role": "user", "content": "Alice is 30 years old."}])
    assert isinstance(person, Person) and person.name and 0 <= person.age <= 150


@pytest.mark.parametrize("stream", [False, True])
def test_instructor_tools_mode_against_raw_hermes_text(serve: Callable[..., Running], stream: bool) -> None:
    running = serve(raw_call("Person", ALICE))
    client = instructor_client(running, "TOOLS")
    request: dict[str, Any] = {"model": MODEL, "response_model": Person, "max_retries": 0,
                               "messages": [{"role": "user", "content": "Alice is 30 years old."}]}
    if stream:
        person = list(client.chat.completions.create_partial(**request))[-1]
    else:
        person = client.chat.completions.create(**request)
    assert isinstance(person, BaseModel) and person.model_dump() == ALICE  # instructor's own subclass of Person
    assert_rendered_tools(running, "Person")
