"""Charts as inline SVG, rendered on the server (no script, no external font or style): bars of spend over time and
a budget gauge. Pure functions of their numbers; every text is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from html import escape

from hermes_proxy.money import format_usd
from policies.budget import BudgetStatus

WIDTH, HEIGHT = 760, 180
_LEFT, _BOTTOM, _TOP = 64, 22, 10


def _label(moment: datetime | date, hourly: bool) -> str:
    if hourly and isinstance(moment, datetime):
        return f"{moment:%m-%d %H:00}"
    return f"{moment:%Y-%m-%d}"


def _nice(top: Decimal) -> Decimal:
    """A round upper bound for the axis (1, 2 or 5 times a power of ten) at or above ``top``."""
    if top <= 0:
        return Decimal(1)
    exponent = top.adjusted()
    for step in (1, 2, 5, 10):
        bound = Decimal(step).scaleb(exponent)
        if bound >= top:
            return bound
    return Decimal(10).scaleb(exponent)  # pragma: no cover - the loop always returns


def bars(points: Sequence[tuple[datetime | date, Decimal, int]], *, title: str, hourly: bool,
         chart_id: str) -> str:
    """A bar per point (start, cost, requests), oldest on the left; each bar's tooltip gives the figures."""
    top = _nice(max((cost for _, cost, _ in points), default=Decimal(0)))
    inner_w, inner_h = WIDTH - _LEFT - 8, HEIGHT - _BOTTOM - _TOP
    slot = inner_w / max(len(points), 1)
    parts = [f'<svg id="{escape(chart_id)}" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>"]
    for fraction in (Decimal(0), Decimal("0.5"), Decimal(1)):
        y = _TOP + inner_h - float(fraction) * inner_h
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{escape(format_usd(top * fraction, places=2))}</text>")
    for i, (start, cost, count) in enumerate(points):
        h = float(cost / top) * inner_h if top else 0.0
        x = _LEFT + i * slot + slot * 0.1
        tip = f"{_label(start, hourly)}: {format_usd(cost)} in {count:,} request{'s' if count != 1 else ''}"
        parts.append(f'<rect class="bar" x="{x:.2f}" y="{_TOP + inner_h - h:.2f}" width="{max(slot * 0.8, 0.5):.2f}" '
                     f'height="{h:.2f}" data-cost="{cost:f}"><title>{escape(tip)}</title></rect>')
    if points:
        for i in sorted({0, len(points) // 2, len(points) - 1}):
            x = _LEFT + i * slot + slot / 2
            anchor = "start" if i == 0 else "end" if i == len(points) - 1 else "middle"
            parts.append(f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}">'
                         f"{escape(_label(points[i][0], hourly))}</text>")
    else:
        parts.append(f'<text class="axis" x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no spend</text>')
    parts.append("</svg>")
    return "".join(parts)


def gauge(budget: BudgetStatus) -> str:
    """Spent (solid) and reserved (lighter) against the limit, with the soft limit as a mark."""
    w, h = 320, 18
    limit = budget.limit_usd

    def x(amount: Decimal) -> float:
        return 0.0 if limit <= 0 else min(float(amount / limit), 1.0) * w

    spent_w = x(budget.spent_usd)
    reserved_w = min(x(budget.spent_usd + budget.reserved_usd), w) - spent_w
    state = "over" if budget.remaining_usd <= 0 else "soft" if budget.soft_exceeded else "ok"
    parts = [f'<svg class="gauge {state}" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
             f'aria-label="{escape(budget.window)} budget" xmlns="http://www.w3.org/2000/svg">',
             f'<rect class="track" x="0" y="0" width="{w}" height="{h}"/>',
             f'<rect class="spent" x="0" y="0" width="{spent_w:.1f}" height="{h}"/>',
             f'<rect class="reserved" x="{spent_w:.1f}" y="0" width="{max(reserved_w, 0):.1f}" height="{h}"/>']
    if budget.soft_limit_usd is not None:
        sx = x(budget.soft_limit_usd)
        parts.append(f'<line class="soft" x1="{sx:.1f}" x2="{sx:.1f}" y1="0" y2="{h}"><title>soft limit '
                     f"{escape(format_usd(budget.soft_limit_usd))}</title></line>")
    parts.append("</svg>")
    return "".join(parts)
