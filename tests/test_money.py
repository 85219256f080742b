"""The one place dollars become text: exact for machines (``usd_text``), rounded for people (``format_usd``)."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hermes_proxy.money import UNKNOWN_USD, format_usd, usd_text


@pytest.mark.parametrize(("amount", "text"), [
    ("0", "0.00"),
    ("12.5", "12.50"),
    ("0.000091", "0.000091"),
    ("0.100000000", "0.10"),
    ("1E+1", "10.00"),
    ("0.000000001", "0.000000001"),
])
def test_usd_text_is_exact(amount: str, text: str) -> None:
    assert usd_text(D(amount)) == text


@given(st.decimals(min_value=0, max_value=10**9, places=9, allow_nan=False, allow_infinity=False))
def test_usd_text_reads_back_as_the_same_amount(amount: D) -> None:
    text = usd_text(amount)
    assert D(text) == amount and "E" not in text and len(text.partition(".")[2]) >= 2


@pytest.mark.parametrize(("amount", "places", "text"), [
    ("0", 6, "$0.00"),
    ("0.106", 6, "$0.106"),
    ("12.5", 6, "$12.50"),
    ("12", 6, "$12.00"),
    ("1.5", 6, "$1.50"),
    ("0.1312098", 6, "$0.13121"),
    ("1234.5678912", 6, "$1,234.567891"),
    ("0.000123000", 6, "$0.000123"),
    ("0.0000004", 6, "$0.0000004"),
    ("0.000000123456", 6, "$0.00000012"),
    ("-0.5", 6, "-$0.50"),
    # the chat's running costs: 4 places, but a tiny cost never reads as free
    ("0.0042", 4, "$0.0042"),
    ("0.000274", 4, "$0.0003"),
    ("0.000091", 4, "$0.0001"),
    ("0.00004", 4, "$0.00004"),
    ("12.345678", 4, "$12.3457"),
    # budgets and prices per Mtok in the chat: cents
    ("0.42", 2, "$0.42"),
    ("0.37", 2, "$0.37"),
    ("0.004", 2, "$0.004"),
    ("1000", 2, "$1,000.00"),
])
def test_format_usd(amount: str, places: int, text: str) -> None:
    assert format_usd(D(amount), places=places) == text


def test_format_usd_of_an_unknown_amount() -> None:
    assert format_usd(None) == UNKNOWN_USD


@given(st.decimals(min_value=D("0.000000001"), max_value=10**6, places=9, allow_nan=False, allow_infinity=False),
       st.sampled_from([2, 4, 6]))
def test_format_usd_never_shows_a_cost_as_free(amount: D, places: int) -> None:
    assert format_usd(amount, places=places) != "$0.00"


def test_importing_money_imports_nothing_heavy() -> None:
    code = "import sys; import hermes_proxy.money; print(sorted(m for m in sys.modules if m.startswith('hermes_proxy')))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "['hermes_proxy', 'hermes_proxy.money']"
