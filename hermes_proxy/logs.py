"""Logging set-up: one JSON object per line on stderr, never a secret."""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import queue
import sys
import time
from collections.abc import Iterator
from typing import Any

from hermes_proxy.config import Config


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class _HandOver(logging.handlers.QueueHandler):
    """Queues the record as it is: the JSON formatting and the write happen on the writer thread."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


@contextlib.contextmanager
def configure_logging(config: Config, *, level: int = logging.INFO) -> Iterator[None]:
    """JSON lines on stderr, written by a thread of their own: a request's log line costs the event loop only its
    record, and a slow reader of stderr (a full pipe to a log shipper) never stalls the requests. Every queued line is
    written before the block exits."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    writer = logging.handlers.QueueListener(records, handler)
    root = logging.getLogger()
    previous = root.handlers[:]
    root.handlers[:] = [_HandOver(records)]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "LiteLLM", "litellm", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    writer.start()
    try:
        yield
    finally:
        writer.stop()  # writes what is queued
        root.handlers[:] = previous
