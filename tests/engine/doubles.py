"""A scripted adapter double: records what it is asked to do, fails when told to."""

from __future__ import annotations

from collections import deque

from communitykit import (
    ACTION_TYPES,
    Action,
    Adapter,
    Capabilities,
    EventSink,
    PermanentFailure,
    Receipt,
    TransientFailure,
)

EVERYTHING = frozenset(ACTION_TYPES)


class ScriptedAdapter(Adapter):
    def __init__(
        self,
        platform: str = "console",
        actions: frozenset[str] = EVERYTHING,
        direct_messages: bool = True,
    ) -> None:
        self.platform = platform
        self.capabilities = Capabilities(actions=actions, direct_messages=direct_messages)
        self.performed: list[Action] = []
        self.script: deque[Exception] = deque()
        self.sink: EventSink | None = None

    async def start(self, sink: EventSink) -> None:
        self.sink = sink

    async def stop(self) -> None:
        self.sink = None

    def fail_next(self, *errors: Exception) -> None:
        self.script.extend(errors)

    async def perform(self, action: Action) -> Receipt:
        if self.script:
            raise self.script.popleft()
        self.performed.append(action)
        return Receipt(action_id=action.action_id, platform_message_id=f"pm-{len(self.performed)}")


__all__ = ["EVERYTHING", "PermanentFailure", "ScriptedAdapter", "TransientFailure"]
