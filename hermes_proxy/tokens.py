"""Token counting for Hermes 4 (Llama 3 tokenizer), with tiktoken.

:func:`load_token_counter` builds a :class:`TokenCounter` once, at start-up; the caller holds it. Three sources,
in order:

1. ``tokens.tokenizer_path``: a Hugging Face ``tokenizer.json`` (byte-level BPE). Its vocab becomes tiktoken ranks
   (rank = id, strings mapped back to bytes through GPT-2's ``bytes_to_unicode``), its ``added_tokens`` the special
   tokens, its ``Split`` regex the split pattern. Exact.
2. ``tokens.hf_repo`` (+ ``tokens.fetch``): the same file fetched once from the Hugging Face hub and cached under
   ``<data_dir>/tokenizers/<repo>/tokenizer.json``. Offline, it falls back to 3 and says why in ``warning``.
3. ``cl100k_base`` read offline from the copy in litellm's wheel (found without importing litellm), plus the Llama 3
   special tokens at their real ids. Llama 3's first 100k ranks are cl100k's, so English, code and JSON count within
   about 0.01%; scripts Llama 3 added ranks for (CJK, Cyrillic, ...) are overcounted, by about 40% for CJK.

The prompt is counted on the text the model really sees: the Hermes 4 chat template, rendered by :func:`render_prompt`.

What is confirmed about the Hermes 4 (70B/405B) template, and what is not
--------------------------------------------------------------------------
Confirmed (model card, the 14B template's text, public reports quoting the 70B ``chat_template.jinja``):

- Llama 3 framing: ``<|begin_of_text|>`` once (the template emits ``bos_token`` itself), then per message
  ``<|start_header_id|>{role}<|end_header_id|>\\n\\n{content}<|eot_id|>``; the generation prompt is
  ``<|start_header_id|>assistant<|end_header_id|>\\n\\n``.
- With no system message the template injects one: ``You are Hermes, created by Nous Research.``, or, with
  ``thinking=True``, the deep-thinking prompt. With a caller system message nothing is injected, so the proxy
  prepends its own prompt to the caller's (:func:`join_system_prompt`).
- ``thinking=True`` (and ``keep_cots`` false) rewrites every earlier assistant turn to
  ``'<think> </think>' + content.split('</think>', 1)[1]``, in both the plain and the tool-call assistant branches.
- With ``tools`` the template takes a separate branch that opens
  ``bos_token + '<|start_header_id|>system<|end_header_id|>\\n'`` (one newline) and renders the tools inside
  ``<tools></tools>``; calls are ``<tool_call>{json}</tool_call>``, results ``<tool_response>…</tool_response>``.

UNCONFIRMED (every such choice lives in the constants and helpers of the "template" section below):

- The text of the tools preamble. The branch opening (one newline after the header, as in a mechanical port of
  Qwen's ``<|im_start|>system\\n``) suggests a port of the Qwen 2.5 tools branch, which is what is rendered here,
  caller system text (or the injected default) first.
- Tool results: rendered as one ``tool`` turn per run of consecutive tool messages, each wrapped in
  ``<tool_response>\\n…\\n</tool_response>``; the real template may use the ``user`` role (same token count).
- Assistant tool calls: ``<tool_call>\\n{"name": …, "arguments": …}\\n</tool_call>`` after the content.
- Whether content is trimmed (Llama 3.1's template trims; Qwen's does not): not trimmed here.
- Content given as a list of parts: text parts concatenated with nothing between them. Hermes 4 takes no images,
  so image parts are ignored (they add nothing to the count; an upstream would reject or drop them).
- Whether ``<think>``/``</think>`` are single added tokens in the Hermes 4 tokenizer: a real ``tokenizer.json``
  answers that by itself; the cl100k fallback counts them as ordinary text (3 tokens each).
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import importlib.util
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import Any

import httpx
import tiktoken

from hermes_proxy.config import TokensConfig
from hermes_proxy.errors import ConfigError
from hermes_proxy.reasoning.prompts import DEEP_THINKING_PROMPT, EMPTY_THINK, THINK_CLOSE, THINK_OPEN

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "THINKING_SYSTEM_PROMPT",
    "TokenCounter",
    "join_system_prompt",
    "load_token_counter",
    "render_prompt",
]

# --- template (every UNCONFIRMED choice is here) ----------------------------------------------------------------

SEGMENT_CACHE_SIZE = 1024
SEGMENT_CACHE_MAX_CHARS = 32_768
_SPECIAL_LIKE = re.compile(r"<\|[^|<>\s]{1,64}\|>")
DEFAULT_SYSTEM_PROMPT = "You are Hermes, created by Nous Research."
THINKING_SYSTEM_PROMPT = DEEP_THINKING_PROMPT  # one source of truth, in reasoning/prompts.py
SYSTEM_PROMPT_SEPARATOR = "\n\n"  # between the proxy's injected prompt and the caller's system message

BOS = "<|begin_of_text|>"
EOT = "<|eot_id|>"
TOOLS_PREAMBLE = (  # UNCONFIRMED text (Qwen 2.5 tools branch, ported to Llama 3 headers)
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
TOOLS_POSTAMBLE = (  # UNCONFIRMED text
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)
TOOL_RESULT_ROLE = "tool"  # UNCONFIRMED: may be "user" in the real template (same token count)
ROLE_ALIASES = {"developer": "system"}  # OpenAI's newer name for the system role; the template knows only "system"


def _header(role: str) -> str:
    return f"<|start_header_id|>{role}<|end_header_id|>\n\n"


def _role(message: Mapping[str, Any]) -> str:
    role = str(message.get("role") or "user")
    return ROLE_ALIASES.get(role, role)


def join_system_prompt(injected: str, caller_system: str) -> str:
    """The system message when the proxy injects ``injected`` in front of the caller's own system message."""
    return injected + SYSTEM_PROMPT_SEPARATOR + caller_system


def content_text(content: Any) -> str:
    """The text of a message ``content``: a string, ``None``, or a list of parts (text parts kept, images ignored)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"] for part in content
            if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    return ""


def render_tool_call(call: Mapping[str, Any]) -> str:
    """One OpenAI ``tool_calls`` entry as Hermes writes it (``<tool_call>\\n{"name", "arguments"}\\n</tool_call>``)."""
    function = call.get("function")
    if not isinstance(function, Mapping):
        function = call
    name = function.get("name", "")
    arguments = function.get("arguments", {})
    # OpenAI sends arguments as a JSON string: it goes in as written; an object is serialised like Jinja's tojson.
    args_json = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    name_json = json.dumps(name, ensure_ascii=False)
    return '<tool_call>\n{"name": ' + name_json + ', "arguments": ' + args_json + "}\n</tool_call>"


def _assistant_text(message: Mapping[str, Any], *, thinking: bool) -> str:
    text = content_text(message.get("content"))
    if thinking:
        # The template keeps only what follows </think>; history without it is sent as '<think> </think>' + text.
        text = EMPTY_THINK + (text.split(THINK_CLOSE, 1)[1] if THINK_CLOSE in text else text)
    calls = message.get("tool_calls")
    if isinstance(calls, list) and calls:
        rendered = "\n".join(render_tool_call(c) for c in calls if isinstance(c, Mapping))
        text = f"{text}\n{rendered}" if text else rendered
    return text


def render_prompt(
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    system_prompt: str | None = None,
    thinking: bool = False,
    add_generation_prompt: bool = True,
) -> str:
    """The Hermes 4 (Llama 3) chat-template text of a request, special tokens written out.

    ``system_prompt`` is what the proxy injects (the deep-thinking prompt): prepended to the caller's first system
    message, or the system message itself when there is none. ``thinking`` is the template's own flag (sent to vLLM as
    ``chat_template_kwargs``): it rewrites earlier assistant turns and picks the deep-thinking default prompt.
    """
    rest = list(messages)
    caller_system: str | None = None
    if rest and _role(rest[0]) == "system":
        caller_system = content_text(rest[0].get("content"))
        rest = rest[1:]
    if caller_system is not None:
        # as the request builder does: a caller system message that already holds the prompt gets it only once
        if system_prompt and system_prompt not in caller_system:
            system = join_system_prompt(system_prompt, caller_system)
        else:
            system = caller_system
    elif system_prompt:
        system = system_prompt
    else:
        system = THINKING_SYSTEM_PROMPT if thinking else DEFAULT_SYSTEM_PROMPT

    out: list[str] = [BOS]
    if tools:
        out.append("<|start_header_id|>system<|end_header_id|>\n")
        out.append(system + "\n\n" + TOOLS_PREAMBLE)
        out.extend("\n" + json.dumps(tool, ensure_ascii=False) for tool in tools)
        out.append(TOOLS_POSTAMBLE + EOT)
    else:
        out.append(_header("system") + system + EOT)

    index = 0
    while index < len(rest):
        message = rest[index]
        role = _role(message)
        if role == "tool":
            results: list[str] = []
            while index < len(rest) and _role(rest[index]) == "tool":
                results.append("<tool_response>\n" + content_text(rest[index].get("content")) + "\n</tool_response>")
                index += 1
            out.append(_header(TOOL_RESULT_ROLE) + "\n".join(results) + EOT)
            continue
        if role == "assistant":
            text = _assistant_text(message, thinking=thinking)
        else:
            text = content_text(message.get("content"))
        out.append(_header(role) + text + EOT)
        index += 1
    if add_generation_prompt:
        out.append(_header("assistant"))
    return "".join(out)


def render_completion(
    reasoning: str, content: str, tool_calls: Iterable[Mapping[str, Any]] | None = None
) -> tuple[str, str]:
    """(the whole generated text, its think block) as the model wrote them, ``<|eot_id|>`` included."""
    think = f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n" if reasoning else ""
    body = content
    calls = [render_tool_call(c) for c in tool_calls or () if isinstance(c, Mapping)]
    if calls:
        body = (body + "\n" if body else "") + "\n".join(calls)
    return think + body + EOT, think


# --- the counter ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class TokenCounter:
    """Counts Hermes 4 tokens. Immutable; build one with :func:`load_token_counter` and share it.

    ``exact`` is true with the model's own tokenizer, false with the cl100k approximation. ``warning`` says why an
    exact tokenizer that was asked for is not in use (to log at start-up), else ``None``.
    """

    name: str
    exact: bool
    encoding: tiktoken.Encoding
    warning: str | None = None
    _specials: frozenset[str] = field(init=False, repr=False)
    _cached_count: Callable[[str], int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_specials", frozenset(self.encoding.special_tokens_set))
        encode = self.encoding.encode_ordinary
        # Chat clients resend the whole history every turn: remembering the count of each message's text means a
        # long conversation is tokenised once, not once per turn. Bounded: at most SEGMENT_CACHE_SIZE segments of at
        # most SEGMENT_CACHE_MAX_CHARS characters each are kept (about 32 MB of text at worst).
        object.__setattr__(self, "_cached_count",
                           functools.lru_cache(maxsize=SEGMENT_CACHE_SIZE)(lambda text: len(encode(text))))

    def _count_ordinary(self, text: str) -> int:
        if len(text) <= SEGMENT_CACHE_MAX_CHARS:
            return self._cached_count(text)
        return len(self.encoding.encode_ordinary(text))

    def count_text(self, text: str) -> int:
        """Tokens of ``text``; special tokens written in it count as one token each, as the server tokenises the
        rendered prompt.

        Same result as ``encode(text, allowed_special="all")`` (tiktoken also cuts the text at special tokens and
        encodes the pieces separately), without handing tiktoken the whole special-token set on every call, which
        costs more than encoding a short prompt.
        """
        count = self._count_ordinary
        if "<|" not in text:
            return count(text)
        total, last = 0, 0
        for match in _SPECIAL_LIKE.finditer(text):
            if match.group() in self._specials:
                if match.start() > last:
                    total += count(text[last:match.start()])
                total += 1
                last = match.end()
        return total + (count(text[last:]) if last < len(text) else 0)

    def render_prompt(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        system_prompt: str | None = None,
        thinking: bool = False,
    ) -> str:
        return render_prompt(messages, tools, system_prompt=system_prompt, thinking=thinking)

    def count_prompt(
        self,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        system_prompt: str | None = None,
        thinking: bool = False,
    ) -> int:
        """Prompt tokens as the upstream counts them: template, injected system prompt, generation prompt included."""
        return self.count_text(render_prompt(messages, tools, system_prompt=system_prompt, thinking=thinking))

    def count_completion(
        self, reasoning: str, content: str, *, tool_calls: list[dict[str, Any]] | None = None
    ) -> tuple[int, int]:
        """(completion_tokens, reasoning_tokens) as generated: ``<think>\\n…\\n</think>\\n`` + answer + ``<|eot_id|>``.

        Reasoning tokens are the think block, a part of the completion tokens.
        """
        whole, think = render_completion(reasoning, content, tool_calls)
        completion = self.count_text(whole)
        return completion, min(self.count_text(think), completion) if think else 0


# --- loading --------------------------------------------------------------------------------------------------------

# Llama 3's pre-tokenizer split (its tokenizer.json "Split" regex; cl100k's pattern before the possessive rewrite)
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_NAMED_SPECIALS: dict[int, str] = {
    128000: "<|begin_of_text|>",
    128001: "<|end_of_text|>",
    128002: "<|reserved_special_token_0|>",
    128003: "<|reserved_special_token_1|>",
    128004: "<|finetune_right_pad_id|>",
    128005: "<|reserved_special_token_2|>",
    128006: "<|start_header_id|>",
    128007: "<|end_header_id|>",
    128008: "<|eom_id|>",
    128009: "<|eot_id|>",
    128010: "<|python_tag|>",
}
LLAMA3_SPECIAL_COUNT = 256

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
CL100K_NAME = "cl100k_base (approximate: overcounts non-Latin scripts ~40%)"
HF_RESOLVE_URL = "https://huggingface.co/{repo}/resolve/main/tokenizer.json"
FETCH_TIMEOUT_S = 10.0
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
# byte-level BPE strings never hold these characters (bytes_to_unicode maps those bytes above U+00FF)
_NOT_BYTE_LEVEL = re.compile("[\x00-\x20\x7f-\xa0\xad]")


def llama3_special_tokens() -> dict[str, int]:
    """The 256 Llama 3 special tokens at their ids (128000-128255)."""
    specials = {name: rank for rank, name in LLAMA3_NAMED_SPECIALS.items()}
    reserved = 3
    for rank in range(128011, 128000 + LLAMA3_SPECIAL_COUNT):
        specials[f"<|reserved_special_token_{reserved}|>"] = rank
        reserved += 1
    return specials


def load_token_counter(tokens: TokensConfig, *, data_dir: Path) -> TokenCounter:
    """The best counter ``tokens`` allows; raises :class:`ConfigError` when no tokenizer at all can be loaded."""
    if tokens.tokenizer_path is not None:
        path = Path(tokens.tokenizer_path)
        encoding = encoding_from_tokenizer_json(path, key="tokens.tokenizer_path")
        return TokenCounter(f"hermes-4 (tokenizer.json: {path})", True, encoding)
    warning: str | None = None
    if tokens.hf_repo:
        counter, warning = _from_hub(tokens.hf_repo, fetch=tokens.fetch, data_dir=data_dir)
        if counter is not None:
            return counter
    return TokenCounter(CL100K_NAME, False, cl100k_llama3_encoding(), warning)


def _from_hub(repo: str, *, fetch: bool, data_dir: Path) -> tuple[TokenCounter | None, str | None]:
    if not _REPO_RE.match(repo) or ".." in repo:
        raise ConfigError("tokens.hf_repo", f"must look like owner/name, got {repo!r}")
    cached = data_dir / "tokenizers" / repo / "tokenizer.json"
    name = f"hermes-4 (tokenizer.json: {repo}, cached at {cached})"
    reason: str | None = None
    if cached.is_file():
        try:
            return TokenCounter(name, True, encoding_from_tokenizer_json(cached, key="tokens.hf_repo")), None
        except ConfigError as exc:
            reason = f"cached {cached} is unusable ({exc.message})"
    if not fetch:
        return None, reason or (f"tokens.hf_repo = {repo!r} is not cached at {cached} and tokens.fetch is false; "
                                "using the cl100k_base approximation")
    try:
        raw = _download(HF_RESOLVE_URL.format(repo=repo))
        encoding = _encoding_from_bytes(raw, source=f"{repo}/tokenizer.json", key="tokens.hf_repo")
    except (httpx.HTTPError, ConfigError) as exc:
        detail = exc.message if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
        return None, f"could not fetch tokenizer.json for {repo} ({detail}); using the cl100k_base approximation"
    _write_atomically(cached, raw)
    return TokenCounter(name, True, encoding), None


def _download(url: str) -> bytes:
    with httpx.Client(timeout=FETCH_TIMEOUT_S, follow_redirects=True) as client:
        response = client.get(url)
        response.raise_for_status()
        return response.content


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tokenizer-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- tokenizer.json -> tiktoken -------------------------------------------------------------------------------------


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable characters (byte-level BPE vocab strings)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + shifted)
            shifted += 1
    return mapping


def encoding_from_tokenizer_json(path: Path, *, key: str) -> tiktoken.Encoding:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path}: {exc.strerror}") from None
    return _encoding_from_bytes(raw, source=str(path), key=key)


def _encoding_from_bytes(raw: bytes, *, source: str, key: str) -> tiktoken.Encoding:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(key, f"{source} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(key, f"{source} is not a tokenizer.json")
    return encoding_from_tokenizer_data(data, source=source, key=key)


def encoding_from_tokenizer_data(data: Mapping[str, Any], *, source: str, key: str = "tokens") -> tiktoken.Encoding:
    """A tiktoken encoding equal to a byte-level BPE ``tokenizer.json`` (ranks = ids, as for Llama 3)."""
    model = data.get("model")
    if not isinstance(model, Mapping) or model.get("type", "BPE") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise ConfigError(key, f"{source}: only byte-level BPE tokenizers are supported")
    if data.get("normalizer") is not None:
        raise ConfigError(key, f"{source}: tokenizers with a normalizer are not supported")
    pattern = _split_pattern(data.get("pre_tokenizer"), source=source, key=key)
    added = data.get("added_tokens") or []
    specials = {t["content"]: int(t["id"]) for t in added if isinstance(t, Mapping) and "content" in t and "id" in t}
    special_ids = set(specials.values())
    vocab: dict[str, Any] = model["vocab"]
    pieces = {piece: rank for piece, rank in vocab.items() if rank not in special_ids} if special_ids else vocab
    if not all(type(rank) is int for rank in pieces.values()):
        raise ConfigError(key, f"{source}: vocab ids must be integers")
    # One translate/encode over the whole vocab (C speed), then cut it back into tokens: the map is 1 char -> 1 byte.
    strings = list(pieces)
    joined = "".join(strings)
    if _NOT_BYTE_LEVEL.search(joined):
        raise ConfigError(key, f"{source}: vocab is not byte-level (GPT-2 byte-to-unicode)")
    try:
        blob = joined.translate({ord(ch): byte for byte, ch in bytes_to_unicode().items()}).encode("latin-1")
    except UnicodeEncodeError:
        raise ConfigError(key, f"{source}: vocab is not byte-level (GPT-2 byte-to-unicode)") from None
    ends = list(accumulate(map(len, strings)))
    tokens = map(blob.__getitem__, map(slice, [0, *ends[:-1]], ends))
    ranks: dict[bytes, int] = dict(zip(tokens, pieces.values(), strict=True))
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise ConfigError(key, f"{source}: vocab lacks {len(missing)} of the 256 single bytes")
    return tiktoken.Encoding(name=f"tokenizer.json:{source}", pat_str=pattern, mergeable_ranks=ranks,
                             special_tokens=specials)


def _split_pattern(pre: Any, *, source: str, key: str) -> str:
    steps = pre.get("pretokenizers", []) if isinstance(pre, Mapping) and pre.get("type") == "Sequence" else [pre]
    pattern: str | None = None
    byte_level = False
    for step in steps:
        if not isinstance(step, Mapping):
            continue
        if step.get("type") == "Split" and isinstance(step.get("pattern"), Mapping) and "Regex" in step["pattern"]:
            if step.get("behavior", "Isolated") != "Isolated" or step.get("invert"):
                raise ConfigError(key, f"{source}: unsupported Split pre-tokenizer settings")
            pattern = step["pattern"]["Regex"]
        elif step.get("type") == "ByteLevel":
            byte_level = True
            if step.get("add_prefix_space"):
                raise ConfigError(key, f"{source}: ByteLevel add_prefix_space is not supported")
            if step.get("use_regex", True):
                pattern = pattern or GPT2_PATTERN
    if not byte_level:
        raise ConfigError(key, f"{source}: not a byte-level BPE tokenizer (no ByteLevel pre-tokenizer)")
    return pattern or LLAMA3_PATTERN


# --- cl100k_base, offline, from litellm's wheel -------------------------------------------------------------------


def cl100k_candidates() -> list[Path]:
    """Where a cl100k_base.tiktoken copy may sit: litellm's wheel (without importing litellm), tiktoken's own cache."""
    name = hashlib.sha1(CL100K_URL.encode()).hexdigest()
    found: list[Path] = []
    try:
        spec = importlib.util.find_spec("litellm")
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        found.append(Path(location) / "litellm_core_utils" / "tokenizers" / name)
    found.append(Path(tempfile.gettempdir()) / "data-gym-cache" / name)
    return found


def parse_tiktoken_file(raw: bytes) -> dict[bytes, int]:
    """A ``.tiktoken`` file: one ``<base64 token> <rank>`` per line."""
    fields = raw.split()
    if len(fields) % 2:
        raise ValueError("a .tiktoken file has two fields per line")
    return dict(zip(map(binascii.a2b_base64, fields[0::2]), map(int, fields[1::2]), strict=True))


def cl100k_llama3_encoding() -> tiktoken.Encoding:
    """cl100k_base ranks, the Llama 3 split pattern and the Llama 3 special tokens at their real ids."""
    tried: list[str] = []
    for path in cl100k_candidates():
        try:
            raw = path.read_bytes()
        except OSError:
            tried.append(f"{path} (missing)")
            continue
        if hashlib.sha256(raw).hexdigest() != CL100K_SHA256:
            tried.append(f"{path} (checksum mismatch)")
            continue
        try:
            ranks = parse_tiktoken_file(raw)
        except (ValueError, binascii.Error):
            tried.append(f"{path} (unreadable)")
            continue
        return tiktoken.Encoding(name="cl100k_base+llama3", pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks,
                                 special_tokens=llama3_special_tokens())
    raise ConfigError(
        "tokens",
        "no tokenizer available offline: set tokens.tokenizer_path to the Hermes 4 tokenizer.json, or tokens.hf_repo "
        "with tokens.fetch = true, or install litellm (its wheel carries cl100k_base). Looked in: " + "; ".join(tried),
    )
