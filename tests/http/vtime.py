"""An asyncio event loop on virtual time: it jumps to the next timer instead of sleeping.

Nothing in these tests touches the network (``httpx.MockTransport``), so
whenever every task waits on a timer the loop may advance its clock straight
to that timer. Tests are then exact (a send scheduled for t=1.03 happens at
t=1.03) and fast (an hour of 429 pauses costs nothing). The governor and the
client get ``loop.time`` as their clock and ``asyncio.sleep`` as their sleep.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Deadlock(RuntimeError):
    """Every task waits and no timer is due: the code under test would hang."""


class Livelock(RuntimeError):
    """Virtual time ran past its horizon: the code under test would never finish."""


class _VirtualSelector:
    """Wraps the loop's selector: never blocks, advances the loop's clock instead."""

    def __init__(self, loop: VirtualTimeLoop, selector: selectors.BaseSelector) -> None:
        self._loop = loop
        self._selector = selector

    def select(self, timeout: float | None = None) -> list[Any]:
        events = self._selector.select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise Deadlock("all tasks wait and nothing is scheduled")
        self._loop.advance(timeout)
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._selector, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    #: a test that needs more virtual time than this (a day) is stuck in a loop
    HORIZON = 24 * 3600.0

    def __init__(self, start: float = 1000.0) -> None:
        super().__init__()
        self._start = self._now = start
        real: selectors.BaseSelector = self._selector  # type: ignore[has-type]
        self._selector = _VirtualSelector(self, real)

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds
        if self._now - self._start > self.HORIZON:
            raise Livelock(f"virtual time passed {self.HORIZON:.0f}s")


def vrun(main: Callable[[], Coroutine[Any, Any, T]], *, start: float = 1000.0) -> T:
    """Run ``main()`` to completion on a fresh virtual-time loop."""
    loop = VirtualTimeLoop(start)
    try:
        return loop.run_until_complete(main())
    finally:
        try:
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def clock() -> Callable[[], float]:
    """The running loop's clock (virtual under :func:`vrun`)."""
    return asyncio.get_running_loop().time
