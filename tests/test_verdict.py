"""The broken-variant verdict: only a reported violation counts as a catch."""

from __future__ import annotations

import pytest
from support.verdict import fails, is_caught

from impl.errors import HeadOutOfRange


def test_assertions_and_typed_errors_are_catches() -> None:
    assert is_caught(AssertionError("refinement"))
    assert is_caught(HeadOutOfRange("head 9 >= 8"))
    assert is_caught(ExceptionGroup("two", [AssertionError(), HeadOutOfRange("x")]))


def test_a_crash_is_not_a_catch() -> None:
    assert not is_caught(TypeError("override with the wrong signature"))
    assert not is_caught(ExceptionGroup("mixed", [AssertionError(), AttributeError("gone")]))


def test_fails_reports_a_catch_and_passes_a_crash_on() -> None:
    def violation() -> None:
        raise AssertionError("invariant")

    def crash() -> None:
        raise TypeError("stale variant")

    assert fails(violation) is True
    assert fails(lambda: None) is False
    with pytest.raises(TypeError):
        fails(crash)
