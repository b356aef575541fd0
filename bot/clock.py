"""What time it is for the code running now: the wall clock, or a simulated one set for a task.

Everything that stamps or compares a time reads `now()` (through `bot.store.models.utcnow`). A
simulated clock (`simulated`) is set in a context variable, so it holds for the task that set it
and the tasks it starts, and the store's worker threads run that task's transactions under it
(`carried`); every other task (the server's turns, the outbox) keeps the wall clock. The demo
history (`service/demo_history.py`) runs its shoppers' conversations under one, in the past."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class SimulatedClock:
    """A clock that stands still until it is moved on."""

    def __init__(self, at: datetime) -> None:
        self.at = at if at.tzinfo else at.replace(tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> datetime:
        self.at += delta
        return self.at

    def set(self, at: datetime) -> None:
        self.at = at if at.tzinfo else at.replace(tzinfo=UTC)


_CLOCK: ContextVar[SimulatedClock | None] = ContextVar("clock", default=None)


def now() -> datetime:
    """The simulated time of this task if it has one, else the wall clock (UTC)."""
    clock = _CLOCK.get()
    return clock.at if clock is not None else datetime.now(UTC)


@contextmanager
def simulated(at: datetime) -> Iterator[SimulatedClock]:
    """Run the block (and the tasks it starts) at `at`, moved on by the clock it yields."""
    clock = SimulatedClock(at)
    token = _CLOCK.set(clock)
    try:
        yield clock
    finally:
        _CLOCK.reset(token)


def carried(fn: Callable[P, T]) -> Callable[P, T]:
    """`fn` to run on another thread under this task's clock (itself, when that is the wall clock)."""
    clock = _CLOCK.get()
    if clock is None:
        return fn

    @wraps(fn)
    def under(*args: P.args, **kwargs: P.kwargs) -> T:
        token = _CLOCK.set(clock)
        try:
            return fn(*args, **kwargs)
        finally:
            _CLOCK.reset(token)

    return under
