"""Stage 7, settle: the ledger (the reservation becomes the actual cost), rate-limit token counts, metrics and the
request log line. Never raises: a settle the ledger cannot write is retried, then kept in the outbox until it can be."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hermes_proxy.alerts.events import spawn
from hermes_proxy.errors import HermesError
from hermes_proxy.ledger.base import Admission, RequestRecord
from hermes_proxy.ledger.outbox import settle_durably
from hermes_proxy.pipeline.types import Outcome, Principal, Services

log = logging.getLogger("hermes_proxy.gateway")
request_log = logging.getLogger("hermes_proxy.requests")


@dataclass(frozen=True, slots=True)
class Timings:
    total_s: float
    overhead_s: float
    ttft_s: float | None


async def settle(services: Services, principal: Principal, admission: Admission, record: RequestRecord,
                 outcome: Outcome, timings: Timings, *, extra_log: dict[str, Any]) -> None:
    # retried while the store is down, then kept in the outbox until it is back; never raises
    await settle_durably(services.ledger, services.outbox, admission.hold, record, sleep=services.sleep)
    if services.alerts is not None and principal.team.alerts:  # budget thresholds crossed: outbox rows, in the background
        spawn(services.tracker, services.alerts.after_settle(services.ledger, principal.team), "budget threshold")
    if services.rate_limiter is not None:
        try:
            await services.rate_limiter.record_completion(principal.team, record.key_id, record.completion_tokens)
        except Exception:
            log.exception("request %s: could not record completion tokens for rate limits", record.request_id)
    metrics = services.metrics
    if metrics is not None:
        metrics.request_finished(
            team=record.team, model=record.model, route=record.route, status=record.status,
            prompt_tokens=record.prompt_tokens, completion_tokens=record.completion_tokens,
            reasoning_tokens=record.reasoning_tokens, cost_usd=record.cost_usd,
            overhead_s=timings.overhead_s, ttft_s=timings.ttft_s, total_s=timings.total_s)
        spent = outcome.cost_usd or Decimal(0)
        for status in admission.budgets:
            metrics.set_budget_remaining(record.team, status.window,
                                         status.remaining_usd + admission.hold.amount_usd - spent)
    if services.config.server.request_log:
        request_log.info("request", extra={"fields": _log_fields(record, timings, outcome.error, extra_log)})


def _log_fields(record: RequestRecord, timings: Timings, error: HermesError | None,
                extra_log: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "request_id": record.request_id, "team": record.team, "key": record.key_name, "model": record.model,
        "route": record.route, "reasoning": record.reasoning, "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens, "reasoning_tokens": record.reasoning_tokens,
        "cost_usd": None if record.cost_usd is None else str(record.cost_usd), "estimated": record.estimated,
        "status": record.status, "overhead_ms": round(timings.overhead_s * 1000, 3),
        "ttft_ms": None if timings.ttft_s is None else round(timings.ttft_s * 1000, 1),
        "total_ms": round(timings.total_s * 1000, 1),
    }
    if error is not None:
        fields["error"] = error.message
    fields.update(extra_log)
    return fields
