"""Waiting in tests: poll a condition until it holds, or fail with a message saying what never happened.

Every wait in the tests goes through :func:`wait_until` (threads, processes, sockets) or
:func:`wait_until_async` (tasks on the test's event loop), so none can hang a run: each has a deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class _Deadline:
    """The deadline of one wait; :meth:`check` fails the test once it has passed."""

    def __init__(self, timeout: float, what: str, describe: Callable[[], str] | None) -> None:
        self.timeout = timeout
        self.what = what
        self.describe = describe
        self.end = time.monotonic() + timeout

    def check(self, last: object) -> None:
        if time.monotonic() < self.end:
            return
        message = f"{self.what}: did not happen within {self.timeout:g}s (last value: {last!r})"
        if self.describe is not None:
            message += f"\n{self.describe()}"
        raise AssertionError(message)


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    *,
    interval: float = 0.01,
    describe: Callable[[], str] | None = None,
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy, and return that.

    After ``timeout`` seconds the test fails with ``what`` (the awaited event, e.g. "the service answers
    /readyz 200"), the last value and, when given, ``describe()`` (a log to show). An exception raised
    by ``predicate`` ends the wait at once: raise one when waiting has become pointless (a process exited).
    """
    deadline = _Deadline(timeout, what, describe)
    while not (value := predicate()):
        deadline.check(value)
        time.sleep(interval)
    return value


async def wait_until_async(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    *,
    interval: float = 0.0,
    describe: Callable[[], str] | None = None,
) -> T:
    """:func:`wait_until` for a condition that tasks on the running event loop make true: it sleeps with
    ``asyncio.sleep`` (0 by default: one turn of the loop) so those tasks run between checks."""
    deadline = _Deadline(timeout, what, describe)
    while not (value := predicate()):
        deadline.check(value)
        await asyncio.sleep(interval)
    return value
