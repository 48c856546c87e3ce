"""communitykit-console: an in-process chat platform for communitykit.

Try a community on one machine, with no credentials: :class:`ConsolePlatform`
holds the groups, users and messages and is driven by a script (or a
:class:`Crowd`) the way users drive a real platform; :class:`ConsoleAdapter` is
the adapter the engine talks to. It is what ``communitykit demo`` and
``communitykit simulate`` run on, and it registers itself as the ``console``
platform through the ``communitykit`` entry-point group::

    from communitykit_console import ConsoleAdapter, ConsolePlatform, ManualClock

    clock = ManualClock(datetime(2026, 3, 1, 9, tzinfo=UTC))
    platform = ConsolePlatform(clock=clock, groups=["main"])
    adapter = ConsoleAdapter(platform)
    await adapter.start(engine.handle)
    await platform.join("u1", "main", display_name="Alice")
"""

from __future__ import annotations

from collections.abc import Iterable

from communitykit import AdapterType, hookimpl
from communitykit_console._adapter import ConsoleAdapter
from communitykit_console._journal import Journal, JournalError
from communitykit_console._platform import (
    ACTIONS,
    CHAT_NOT_FOUND,
    NOT_STARTED,
    ConsolePlatform,
)
from communitykit_console._state import (
    BOT,
    MAX_MESSAGE_LENGTH,
    PLATFORM,
    ConsoleGroup,
    ConsoleMessage,
    ConsoleUser,
    InviteLink,
    JoinRequest,
    ManualClock,
)
from communitykit_console.crowd import Crowd

__all__ = [
    "ACTIONS",
    "BOT",
    "CHAT_NOT_FOUND",
    "MAX_MESSAGE_LENGTH",
    "NOT_STARTED",
    "PLATFORM",
    "ConsoleAdapter",
    "ConsoleGroup",
    "ConsoleMessage",
    "ConsolePlatform",
    "ConsoleUser",
    "Crowd",
    "InviteLink",
    "JoinRequest",
    "Journal",
    "JournalError",
    "ManualClock",
    "communitykit_adapter_types",
]


@hookimpl
def communitykit_adapter_types() -> Iterable[AdapterType]:
    """The console platform, registered like any other."""
    return [
        AdapterType(
            name="console",
            factory=ConsoleAdapter.from_settings,
            description=(
                "An in-process platform for trying a community on one machine, "
                "with no credentials (demos, simulations, tests)."
            ),
        )
    ]
