from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from artifacts_shared.expiry import (
    InvalidExpiredAt,
    expiry_after,
    format_expired_at,
    is_expired,
    parse_expired_at,
    to_datetime,
)


@given(st.integers(min_value=0, max_value=10**15))
def test_expired_at_round_trips(value: int) -> None:
    assert parse_expired_at(format_expired_at(value)) == value
    assert parse_expired_at(format_expired_at(value).encode()) == value


@pytest.mark.parametrize("raw", [b"1700000000\n", b"  1700000000  ", b"\t1700000000\r\n"])
def test_surrounding_whitespace_is_tolerated(raw: bytes) -> None:
    assert parse_expired_at(raw) == 1_700_000_000


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   \n",
        b"-1",
        b"+5",
        b"1.5",
        b"1e9",
        b"17 00",
        b"2026-01-01T00:00:00Z",
        b"abc",
        b"\xff\xfe",
        b"0x10",
        "\uff11\uff12\uff13".encode(),
        b"1" * 21,
    ],
)
def test_anything_but_decimal_seconds_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidExpiredAt):
        parse_expired_at(raw)


def test_format_is_digits_and_nothing_else() -> None:
    assert format_expired_at(1_700_000_000) == "1700000000"
    with pytest.raises(ValueError, match="negative"):
        format_expired_at(-1)


def test_retention_zero_means_no_expiry() -> None:
    assert expiry_after(1000.7, 0) is None
    assert expiry_after(1000.7, 60) == 1060


def test_expired_is_a_moment_in_the_past_or_now() -> None:
    assert is_expired(100, now=100)
    assert is_expired(100, now=101)
    assert not is_expired(100, now=99.9)


def test_far_future_has_no_datetime_but_no_crash() -> None:
    assert to_datetime(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert to_datetime(10**19) is None
