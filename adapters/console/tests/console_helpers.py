"""Helpers of the console adapter's tests (a uniquely named module, importable by tests)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from communitykit import Action, Event

SHANGHAI = timezone(timedelta(hours=8))
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=SHANGHAI)

A = TypeVar("A", bound=Action)
_ids = itertools.count(1)


def act(cls: type[A], **fields: Any) -> A:
    """An action with a fresh id, on the console platform, in group "main" by default."""
    fields.setdefault("action_id", f"a-test-{next(_ids)}")
    fields.setdefault("platform", "console")
    fields.setdefault("group", "main")
    fields.setdefault("source", "test")
    fields.setdefault("reason", "a test asked for it")
    return cls(**fields)


class Recorder:
    """An event sink that keeps every list it was handed."""

    def __init__(self) -> None:
        self.batches: list[list[Event]] = []

    async def __call__(self, events: Sequence[Event]) -> None:
        self.batches.append(list(events))

    @property
    def events(self) -> list[Event]:
        return [event for batch in self.batches for event in batch]
