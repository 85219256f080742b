"""Budget alerts: webhooks per team when a budget window crosses a configured percentage, its soft limit or its hard
limit (the first refusal), and when a route's reported price rises above its configured one.

``events`` decides and writes rows to a durable outbox in the ledger's database (``store``); ``sender`` posts them in
the background, at least once, with retries. The request path only inserts rows, in tracked background tasks.
"""

from __future__ import annotations

from hermes_proxy.alerts.events import EVENTS, BudgetAlerts, render, slack_text, spawn
from hermes_proxy.alerts.sender import AlertSender
from hermes_proxy.alerts.store import Alert, AlertRow, AlertStore, MemoryAlertStore, open_alert_store

__all__ = ["EVENTS", "Alert", "AlertRow", "AlertSender", "AlertStore", "BudgetAlerts", "MemoryAlertStore",
           "open_alert_store", "render", "slack_text", "spawn"]
