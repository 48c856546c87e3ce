"""Helpers of the Telegram adapter's tests (a uniquely named module, importable by tests)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from communitykit import Action, Event
from communitykit.http import Limits, RateLimit

if TYPE_CHECKING:
    from communitykit_telegram import TelegramAdapter

A = TypeVar("A", bound=Action)
#: the ``make_adapter`` fixture: ``make_adapter(double, **kwargs)``
MakeAdapter = Callable[..., "TelegramAdapter"]
_ids = itertools.count(1)

#: Limits no functional test notices (the double is unlimited for those).
FAST = Limits(
    "telegram-fast",
    rates={
        "bot": RateLimit(1000, 1.0),
        "paid": RateLimit(1000, 1.0),
        "chat": RateLimit(1000, 1.0),
        "group": RateLimit(1000, 1.0),
    },
    targets={"chat", "group"},
)

GROUP = "-1001234567890"
GROUP_ID = int(GROUP)


def act(cls: type[A], **fields: Any) -> A:
    """An action with a fresh id on the telegram platform, in ``GROUP`` by default."""
    fields.setdefault("action_id", f"a-test-{next(_ids)}")
    fields.setdefault("platform", "telegram")
    fields.setdefault("group", GROUP)
    fields.setdefault("source", "test")
    fields.setdefault("reason", "a test asked for it")
    return cls(**fields)


class Recorder:
    """An event sink that keeps every batch; the first ``fail`` calls raise (a broken store)."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.calls: list[list[Event]] = []
        self.batches: list[list[Event]] = []

    async def __call__(self, events: Sequence[Event]) -> None:
        self.calls.append(list(events))
        if self.fail > 0:
            self.fail -= 1
            raise RuntimeError("the store is unavailable")
        self.batches.append(list(events))

    @property
    def events(self) -> list[Event]:
        return [event for batch in self.batches for event in batch]


class Host:
    """An AdapterHost that records the group moves it is told of."""

    def __init__(self) -> None:
        self.moves: list[tuple[str, str, str]] = []

    async def group_moved(self, platform: str, old_id: str, new_id: str) -> None:
        self.moves.append((platform, old_id, new_id))


async def eventually(condition: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Wait until ``condition()`` is truthy (checked every 10 ms); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)
