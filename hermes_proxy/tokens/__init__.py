"""Token counting for Hermes 4 (Llama 3 tokenizer), with tiktoken.

:func:`load_token_counter` builds a :class:`TokenCounter` once, at start-up; the caller holds it. The prompt is counted
on the text the model really sees: the Hermes 4 chat template, rendered by :func:`render_prompt`.

- :mod:`.template`   the chat template (every UNCONFIRMED choice about it is there)
- :mod:`.counter`    :class:`TokenCounter`: text, prompt and completion counts
- :mod:`.loading`    :func:`load_token_counter`: which tokenizer, fetched and cached from the hub when allowed
- :mod:`.encodings`  ``tokenizer.json`` -> tiktoken, and cl100k_base offline with the Llama 3 specials

Import from here (``from hermes_proxy.tokens import TokenCounter``); the modules are an inner layout.
"""

from hermes_proxy.tokens.counter import TokenCounter
from hermes_proxy.tokens.encodings import (
    GPT2_PATTERN,
    LLAMA3_PATTERN,
    bytes_to_unicode,
    cl100k_candidates,
    cl100k_llama3_encoding,
    encoding_from_tokenizer_data,
    encoding_from_tokenizer_json,
    llama3_special_tokens,
    parse_tiktoken_file,
)
from hermes_proxy.tokens.loading import CL100K_NAME, load_token_counter
from hermes_proxy.tokens.template import (
    DEFAULT_SYSTEM_PROMPT,
    THINKING_SYSTEM_PROMPT,
    content_text,
    join_system_prompt,
    render_completion,
    render_prompt,
    render_tool_call,
)

__all__ = [
    "CL100K_NAME",
    "DEFAULT_SYSTEM_PROMPT",
    "GPT2_PATTERN",
    "LLAMA3_PATTERN",
    "THINKING_SYSTEM_PROMPT",
    "TokenCounter",
    "bytes_to_unicode",
    "cl100k_candidates",
    "cl100k_llama3_encoding",
    "content_text",
    "encoding_from_tokenizer_data",
    "encoding_from_tokenizer_json",
    "join_system_prompt",
    "llama3_special_tokens",
    "load_token_counter",
    "parse_tiktoken_file",
    "render_completion",
    "render_prompt",
    "render_tool_call",
]
