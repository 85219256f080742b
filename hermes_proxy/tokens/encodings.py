"""Tokenizers as tiktoken encodings: a Hugging Face ``tokenizer.json`` converted exactly, or cl100k_base read offline
(from litellm's wheel, without importing litellm) with the Llama 3 split pattern and special tokens.

A byte-level BPE ``tokenizer.json``'s vocab becomes tiktoken ranks (rank = id, strings mapped back to bytes through
GPT-2's ``bytes_to_unicode``), its ``added_tokens`` the special tokens, its ``Split`` regex the split pattern.
"""

from __future__ import annotations

import binascii
import hashlib
import importlib.util
import json
import re
import tempfile
from collections.abc import Mapping
from itertools import accumulate
from pathlib import Path
from typing import Any

import tiktoken

from hermes_proxy.errors import ConfigError

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
#: Hermes 4's own added tokens, for the cl100k fallback (a real tokenizer.json lists its added tokens itself). The model
#: card names ``<tool_call>``/``</tool_call>`` as added tokens, so they count as one token each here too. Whether
#: ``<think>``/``</think>`` and ``<tool_response>``/``</tool_response>`` are added tokens is UNCONFIRMED: they are left
#: out (counted as text, 3-5 tokens each) until a Hermes 4 tokenizer.json says otherwise; add them here if it does.
#: Their ids are placed after Llama 3's 256 specials (the counter never uses them; they only must not collide).
HERMES4_ADDED_TOKENS: tuple[str, ...] = ("<tool_call>", "</tool_call>")

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
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


def fallback_special_tokens() -> dict[str, int]:
    """The cl100k fallback's special tokens: Llama 3's 256, then :data:`HERMES4_ADDED_TOKENS`."""
    specials = llama3_special_tokens()
    first = 128000 + LLAMA3_SPECIAL_COUNT
    specials.update({token: first + offset for offset, token in enumerate(HERMES4_ADDED_TOKENS)})
    return specials


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
    return encoding_from_bytes(raw, source=str(path), key=key)


def encoding_from_bytes(raw: bytes, *, source: str, key: str) -> tiktoken.Encoding:
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
    """cl100k_base ranks, the Llama 3 split pattern, the Llama 3 special tokens at their real ids and Hermes 4's
    known added tokens (:data:`HERMES4_ADDED_TOKENS`) after them."""
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
                                 special_tokens=fallback_special_tokens())
    raise ConfigError(
        "tokens",
        "no tokenizer available offline: set tokens.tokenizer_path to the Hermes 4 tokenizer.json, or tokens.hf_repo "
        "with tokens.fetch = true, or install litellm (its wheel carries cl100k_base). Looked in: " + "; ".join(tried),
    )

