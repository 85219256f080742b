"""Pure policy rules: budget windows (DST-safe), the admission decision, model and max_tokens decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.budget import (
    KEY_WINDOW,
    Usage,
    decide,
    effective_key_limit,
    soft_warning,
    tidy,
    window_usages,
)
from policies.models import cap_max_tokens, check_model
from policies.types import BudgetRule, TeamPolicy
from policies.windows import local_midnight, parse_when, resets_at, window_bounds, window_start

D = Decimal


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- windows -----------------------------------------------------------------------------------------------------------


def test_daily_window_in_team_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    before = datetime(2025, 1, 15, 23, 59, 59, tzinfo=berlin)
    after = datetime(2025, 1, 16, 0, 0, 1, tzinfo=berlin)
    start_before, end_before = window_bounds("daily", before, "Europe/Berlin")
    start_after, _ = window_bounds("daily", after, "Europe/Berlin")
    assert start_before == utc(2025, 1, 14, 23)  # midnight in Berlin (UTC+1)
    assert end_before == start_after == utc(2025, 1, 15, 23)
    # the same two instants fall into ONE UTC day: the zone decides
    assert window_start("daily", before) == window_start("daily", after) == utc(2025, 1, 15)


def test_weekly_starts_monday_and_monthly_first() -> None:
    now = utc(2025, 3, 13, 12)  # a Thursday
    assert window_bounds("weekly", now) == (utc(2025, 3, 10), utc(2025, 3, 17))
    assert window_bounds("monthly", now) == (utc(2025, 3, 1), utc(2025, 4, 1))
    assert window_bounds("monthly", utc(2025, 12, 31, 23)) == (utc(2025, 12, 1), utc(2026, 1, 1))
    assert window_bounds("total", now) == (None, None)
    assert resets_at("total", now) is None


def test_dst_days_are_23_and_25_hours_long() -> None:
    tz = "America/New_York"
    start, end = window_bounds("daily", utc(2025, 3, 9, 15), tz)  # spring forward
    assert end - start == timedelta(hours=23)
    start, end = window_bounds("daily", utc(2025, 11, 2, 15), tz)  # fall back
    assert end - start == timedelta(hours=25)


def test_midnight_inside_a_dst_gap_starts_the_day_at_the_transition() -> None:
    # Santiago springs forward at 24:00 -> 01:00: local midnight of 2024-09-08 never exists
    tz = ZoneInfo("America/Santiago")
    start = local_midnight(datetime(2024, 9, 8).date(), tz)
    assert start.astimezone(tz).hour == 1
    assert (start - timedelta(microseconds=1)).astimezone(tz).date() < start.astimezone(tz).date()


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        window_start("daily", datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="unknown budget window"):
        window_start("hourly", utc(2025, 1, 1))


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "America/Santiago", "Asia/Kolkata", "Asia/Kathmandu",
         "Australia/Lord_Howe", "Pacific/Chatham", "America/Havana", "Asia/Beirut", "Pacific/Apia"]


@given(
    moment=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)),
    tz=st.sampled_from(ZONES),
    window=st.sampled_from(["daily", "weekly", "monthly"]),
)
def test_window_is_the_floor_of_now_in_any_zone(moment: datetime, tz: str, window: str) -> None:
    start, end = window_bounds(window, moment, tz)
    assert start is not None and end is not None
    assert start <= moment < end
    zone = ZoneInfo(tz)
    # the instant before the start is in an earlier window, the end is in a later one
    assert window_start(window, start - timedelta(microseconds=1), tz) < start
    assert window_start(window, end, tz) == end
    if window == "daily":
        assert start.astimezone(zone).date() == moment.astimezone(zone).date()


def test_parse_when_forms() -> None:
    now = utc(2025, 6, 10, 12, 30)
    assert parse_when("7d", now=now) == now - timedelta(days=7)
    assert parse_when("12h", now=now) == now - timedelta(hours=12)
    assert parse_when("2025-06-01", now=now, tz="Europe/Berlin") == utc(2025, 5, 31, 22)
    assert parse_when("2025-06-01T10:00", now=now, tz="Europe/Berlin") == utc(2025, 6, 1, 8)
    assert parse_when("2025-06-01T10:00Z", now=now, tz="Europe/Berlin") == utc(2025, 6, 1, 10)
    assert parse_when("today", now=now, tz="UTC") == utc(2025, 6, 10)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_when("last tuesday", now=now)


# --- the admission decision --------------------------------------------------------------------------------------------


def test_refuses_when_any_window_would_pass_its_hard_limit() -> None:
    usages = [
        Usage("daily", D("10"), spent_usd=D("9.50"), reserved_usd=D("0.30"), resets_at=utc(2025, 1, 2)),
        Usage("monthly", D("100"), spent_usd=D("20"), reserved_usd=D("0.30"), resets_at=utc(2025, 2, 1)),
    ]
    decision = decide(usages, D("0.25"), team="research")
    assert not decision.allowed
    assert decision.rule == "daily"
    text = decision.explanation
    for part in ("team 'research'", "daily budget", "spent $9.50", "reserved in flight $0.30", "$0.25", "limit $10.00",
                 "resets 2025-01-02 00:00 UTC"):
        assert part in text
    # the status reported on refusal is the measured one (nothing reserved)
    assert decision.budgets[0].reserved_usd == D("0.30")


def test_reaching_the_limit_exactly_is_allowed() -> None:
    usages = [Usage("daily", D("10"), spent_usd=D("9.50"), reserved_usd=D("0.30"))]
    decision = decide(usages, D("0.20"), team="t")
    assert decision.allowed
    assert decision.remaining_usd == D(0)
    assert decision.budgets[0].reserved_usd == D("0.50")


def test_soft_limit_warns_and_remaining_is_the_tightest() -> None:
    usages = [
        Usage("daily", D("10"), spent_usd=D("7.90"), reserved_usd=D(0), soft_limit_usd=D("8")),
        Usage("monthly", D("100"), spent_usd=D("95"), reserved_usd=D(0), soft_limit_usd=D("99")),
    ]
    decision = decide(usages, D("0.20"), team="t")
    assert decision.allowed
    assert decision.remaining_usd == D("1.90")  # daily: 10 - 8.10
    assert decision.warning == "daily soft limit $8.00 passed: $8.10 used of $10.00"
    assert decision.warning.isascii()
    assert soft_warning(decision.budgets[1:]) is None


def test_key_limit_is_a_lifetime_limit() -> None:
    usages = [Usage(KEY_WINDOW, D("5"), spent_usd=D("4.99"), reserved_usd=D(0))]
    decision = decide(usages, D("0.02"), team="t", key_name="ci")
    assert not decision.allowed
    assert decision.rule == KEY_WINDOW
    assert "key 'ci'" in decision.explanation and "never" in decision.explanation
    assert effective_key_limit(None, D("3")) == D("3")
    assert effective_key_limit(D("10"), D("3")) == D("10")
    assert effective_key_limit(None, None) is None


def test_no_budgets_always_allowed_and_bad_amounts_rejected() -> None:
    decision = decide([], D("1000"), team="t")
    assert decision.allowed and decision.remaining_usd is None and decision.warning is None
    with pytest.raises(ValueError):
        decide([], D("-1"), team="t")
    with pytest.raises(ValueError):
        decide([], D("NaN"), team="t")


def test_window_usages_counts_holds_in_every_window() -> None:
    rules = (BudgetRule("daily", D("1")), BudgetRule("total", D("5")))
    usages = window_usages(rules, [D("0.1"), D("2")], D("0.5"), now=utc(2025, 1, 1, 5), tz="UTC")
    assert [u.reserved_usd for u in usages] == [D("0.5"), D("0.5")]
    assert usages[0].resets_at == utc(2025, 1, 2) and usages[1].resets_at is None


@given(
    spent=st.decimals(min_value=0, max_value=20, places=4),
    reserved=st.decimals(min_value=0, max_value=20, places=4),
    amount=st.decimals(min_value=0, max_value=20, places=4),
)
def test_decision_matches_the_rule(spent: Decimal, reserved: Decimal, amount: Decimal) -> None:
    decision = decide([Usage("daily", D("10"), spent, reserved)], amount, team="t")
    assert decision.allowed == (spent + reserved + amount <= D("10"))


def test_tidy_amounts() -> None:
    assert str(tidy(D("0.100000000"))) == "0.10"
    assert str(tidy(D("0E-9"))) == "0.00"


# --- models and max_tokens ---------------------------------------------------------------------------------------------


def test_model_decisions_explain_themselves() -> None:
    open_team = TeamPolicy(name="a")
    assert check_model(open_team, "hermes-4-405b").allowed
    closed = TeamPolicy(name="b", models=("hermes-4-70b",))
    refused = check_model(closed, "hermes-4-405b")
    assert not refused.allowed
    assert refused.rule == "teams.b.models"
    assert "hermes-4-70b" in refused.explanation and "hermes-4-405b" in refused.explanation


def test_max_tokens_capped_injected_or_room() -> None:
    team = TeamPolicy(name="t", max_tokens=1000)
    capped = cap_max_tokens(team, 5000, prompt_tokens=100, context_window=8192)
    assert (capped.max_tokens, capped.source, capped.capped, capped.fits) == (1000, "policy", True, True)
    assert "teams.t.max_tokens" in capped.explanation
    asked = cap_max_tokens(team, 500, prompt_tokens=100, context_window=8192)
    assert (asked.max_tokens, asked.source, asked.capped) == (500, "request", False)
    injected = cap_max_tokens(team, None, prompt_tokens=100, context_window=8192)
    assert (injected.max_tokens, injected.source) == (1000, "policy")
    room = cap_max_tokens(TeamPolicy(name="u"), None, prompt_tokens=100, context_window=8192)
    assert (room.max_tokens, room.source, room.fits) == (8092, "context", True)
    too_long = cap_max_tokens(TeamPolicy(name="u"), 200, prompt_tokens=8100, context_window=8192)
    assert not too_long.fits and "does not fit" in too_long.explanation
    full = cap_max_tokens(TeamPolicy(name="u"), None, prompt_tokens=9000, context_window=8192)
    assert not full.fits and full.max_tokens == 0
