"""Loading the counter: the best tokenizer the config allows, built once at start-up.

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
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import httpx

from hermes_proxy.config import TokensConfig
from hermes_proxy.errors import ConfigError
from hermes_proxy.tokens.counter import TokenCounter
from hermes_proxy.tokens.encodings import cl100k_llama3_encoding, encoding_from_bytes, encoding_from_tokenizer_json

CL100K_NAME = "cl100k_base (approximate: overcounts non-Latin scripts ~40%)"
HF_RESOLVE_URL = "https://huggingface.co/{repo}/resolve/main/tokenizer.json"
FETCH_TIMEOUT_S = 10.0
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


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
        encoding = encoding_from_bytes(raw, source=f"{repo}/tokenizer.json", key="tokens.hf_repo")
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
