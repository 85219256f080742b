"""One error tree for hermes-proxy.

Every error a user can see is a :class:`HermesError`. It carries the HTTP status, the OpenAI error ``type`` and ``code``
and, where it helps, the offending ``param``. :func:`to_openai_error` is the only place that turns one into the
OpenAI error JSON body; the CLI and the TUI print ``str(error)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class HermesError(Exception):
    """Base of every error hermes-proxy reports to a user."""

    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = dict(headers or {})


# --- configuration (raised at start-up and by check-config, never on the request path) ---------------------------


class ConfigError(HermesError):
    """The configuration is invalid; ``key`` names the offending key (dotted path)."""

    type = "config_error"

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message, param=key)
        self.key = key


# --- the client's request -----------------------------------------------------------------------------------------


class InvalidRequest(HermesError):
    status = 400
    type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class PromptTooLong(InvalidRequest):
    """The prompt is over the team's ``max_prompt_tokens``."""

    code = "prompt_limit_exceeded"


class RequestTooLarge(InvalidRequest):
    status = 413
    code = "request_too_large"


class ModelNotFound(InvalidRequest):
    status = 404
    code = "model_not_found"


class NotFound(InvalidRequest):
    status = 404
    code = "not_found"


class MethodNotAllowed(InvalidRequest):
    status = 405
    code = "method_not_allowed"


class AuthenticationError(HermesError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(HermesError):
    status = 403
    type = "invalid_request_error"
    code = "permission_denied"


class PolicyDenied(PermissionDenied):
    """The team's policy forbids what the request explicitly asked for."""

    code = "policy_denied"


class BudgetExceeded(HermesError):
    """Admission refused: a budget window would go past its hard limit."""

    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


class RateLimited(HermesError):
    status = 429
    type = "requests"
    code = "rate_limit_exceeded"


# --- upstreams ----------------------------------------------------------------------------------------------------


class UpstreamError(HermesError):
    """An upstream failed. ``upstream`` names it (never its key); ``retryable`` says whether another try may work."""

    status = 502
    type = "upstream_error"
    code = "upstream_error"
    retryable = False

    def __init__(
        self,
        upstream: str,
        message: str,
        *,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(f"upstream {upstream!r}: {message}", code=code)
        self.upstream = upstream
        #: what went wrong, without the "upstream 'name':" prefix
        self.detail = message
        self.upstream_status = upstream_status
        self.retry_after = retry_after


class UpstreamUnavailable(UpstreamError):
    """Connection refused or reset, DNS failure: the upstream could not be reached."""

    status = 502
    code = "upstream_unavailable"
    retryable = True


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"
    retryable = True


class UpstreamOverloaded(UpstreamError):
    """The upstream answered 429 or 5xx."""

    status = 503
    code = "upstream_overloaded"
    retryable = True


class UpstreamRejected(UpstreamError):
    """The upstream refused the request itself (4xx other than 429): retrying elsewhere will not help."""

    status = 502
    code = "upstream_rejected"

    def __init__(self, upstream: str, message: str, **kwargs: Any) -> None:
        super().__init__(upstream, message, **kwargs)
        if self.upstream_status in (400, 404, 409, 413, 422):
            # the request itself was refused (a bad parameter, too long): the client's to fix, not a gateway failure
            self.status = 400
            self.type = "invalid_request_error"


class UpstreamStreamError(UpstreamError):
    """The upstream failed after the response had started; the stream ends with an error event."""

    code = "upstream_stream_error"


class RoutesExhausted(UpstreamError):
    """Every route of a model failed before the response started: the message names each route and why it failed."""

    status = 502
    code = "upstream_error"

    def __init__(self, failures: Sequence[tuple[str, str, UpstreamError]]) -> None:
        """``failures``: (upstream name, its model id, the last error of that route), in the order tried."""
        parts = "; ".join(f"{upstream} -> {model}: {error.detail}" for upstream, model, error in failures)
        message = f"all {len(failures)} routes failed: {parts}"
        HermesError.__init__(self, message)
        self.upstream = ", ".join(upstream for upstream, _, _ in failures)
        self.detail = message
        self.upstream_status = None
        self.retry_after = None
        self.failures = tuple(failures)


class StructuredOutputInvalid(HermesError):
    """The answer does not match the strict JSON schema the request asked for (the request is still billed: the
    model did generate it). 422, not 5xx: an SDK does not silently pay for a retry."""

    status = 422
    type = "invalid_response_error"
    code = "invalid_structured_output"


class ModelUnavailable(HermesError):
    """Every route of the model was left out at start (their upstreams' API keys are not set): no request is sent."""

    status = 503
    type = "server_error"
    code = "model_unavailable"


# --- internal ------------------------------------------------------------------------------------------------------


class LedgerUnavailable(HermesError):
    status = 503
    type = "server_error"
    code = "ledger_unavailable"


def to_openai_error(error: HermesError) -> dict[str, Any]:
    """The OpenAI error body for ``error``: ``{"error": {"message", "type", "param", "code"}}``."""
    body: dict[str, Any] = {
        "message": error.message,
        "type": error.type,
        "param": error.param,
        "code": error.code,
    }
    upstream = getattr(error, "upstream", None)
    if upstream is not None:
        body["upstream"] = upstream
    return {"error": body}


def internal_error(request_id: str) -> HermesError:
    """What a client sees for a bug: no traceback, and the request id to find the log line."""
    return HermesError(f"internal error; quote request id {request_id} when reporting it")
