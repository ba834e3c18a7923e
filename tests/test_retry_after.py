"""unirg.common.retry_after: the one Retry-After parser of the clients and the judge backend."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from unirg.common.retry_after import parse_retry_after

NOW = 1_790_000_000.0  # a fixed "now", seconds since the epoch


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-5", 0.0),  # negative: no wait
        ("100000", 300.0),  # huge: the caller's bound
        ("1e400", 300.0),  # overflows to infinity: still the bound
        ("inf", 300.0),
    ],
)
def test_delta_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, max_s=300, now=NOW) == expected


def test_http_date_counts_from_now() -> None:
    assert parse_retry_after(formatdate(NOW + 90, usegmt=True), max_s=300, now=NOW) == 90.0
    assert parse_retry_after(formatdate(NOW - 90, usegmt=True), max_s=300, now=NOW) == 0.0  # past
    assert parse_retry_after(formatdate(NOW + 86400, usegmt=True), max_s=300, now=NOW) == 300.0
    # RFC 850 and asctime forms are HTTP-dates too; asctime carries no zone and means GMT.
    assert parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", max_s=1e12, now=784111717.0) == 60.0
    assert parse_retry_after("Sun Nov  6 08:49:37 1994", max_s=1e12, now=784111717.0) == 60.0


@pytest.mark.parametrize("value", [None, "", "   ", "soon", "nan", "12 seconds", "Someday, 99 Foo 2026"])
def test_garbage_says_nothing(value: str | None) -> None:
    assert parse_retry_after(value, max_s=300, now=NOW) is None


def test_the_bound_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="max_s"):
        parse_retry_after("1", max_s=-1)
