"""The console adapter: the :class:`~communitykit.Adapter` of the console platform."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from communitykit import (
    Action,
    Adapter,
    Capabilities,
    CommunityKitError,
    EventSink,
    PlatformSettings,
    Receipt,
)
from communitykit_console._journal import Journal
from communitykit_console._platform import ACTIONS, ConsolePlatform
from communitykit_console._state import MAX_MESSAGE_LENGTH, PLATFORM

__all__ = ["ConsoleAdapter"]

_OPTIONS = ("groups", "journal", "quiet")


class ConsoleAdapter(Adapter):
    """The adapter of an in-process :class:`ConsolePlatform` (``platform_state``).

    ``journal`` is the path of a JSONL file recording every performed action:
    an action already in it is not performed again and its stored receipt is
    returned, across adapters and processes (see :mod:`communitykit_console._journal`).
    ``performed`` lists the ``(action, receipt)`` pairs this adapter applied.
    """

    platform = PLATFORM
    capabilities = Capabilities(
        actions=ACTIONS, direct_messages=True, max_message_length=MAX_MESSAGE_LENGTH
    )

    def __init__(
        self,
        platform: ConsolePlatform | None = None,
        *,
        journal: str | os.PathLike[str] | None = None,
    ) -> None:
        self.platform_state = platform if platform is not None else ConsolePlatform()
        self.journal = None if journal is None else Journal(journal)
        self.performed: list[tuple[Action, Receipt]] = []
        self._sink: EventSink | None = None

    @classmethod
    def from_settings(cls, settings: PlatformSettings) -> ConsoleAdapter:
        """Build the adapter of a ``[platforms.console]`` table.

        Options: ``journal`` (a file path), ``groups`` (group ids to create, or a
        table of id = title), ``quiet`` (default true; false prints the transcript
        as it happens). Any other option is an error, so a misspelt ``journal``
        cannot silently turn exactly-once delivery off.
        """
        options = settings.options
        where = f"[platforms.{settings.name}]"
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise CommunityKitError(
                f"{where} has unknown option(s) {', '.join(map(repr, unknown))}; "
                f"the console platform knows {', '.join(_OPTIONS)}"
            )
        journal = options.get("journal")
        if journal is not None and not isinstance(journal, str | os.PathLike):
            raise CommunityKitError(
                f"{where} option 'journal' must be a file path, got {journal!r}"
            )
        quiet = options.get("quiet", True)
        if not isinstance(quiet, bool):
            raise CommunityKitError(f"{where} option 'quiet' must be true or false, got {quiet!r}")
        groups = _groups(options.get("groups", ()), where)
        return cls(ConsolePlatform(groups=groups, quiet=quiet), journal=journal)

    async def start(self, sink: EventSink) -> None:
        """Read the journal, connect the platform to ``sink`` and hand it what was queued."""
        if self.journal is not None:
            self.journal.load()
        self._sink = sink
        self.platform_state.connect(sink)
        await self.platform_state.flush()

    async def stop(self) -> None:
        """Disconnect the platform from the sink (events queue again). Idempotent."""
        if self._sink is not None:
            self.platform_state.disconnect(self._sink)
            self._sink = None

    async def perform(self, action: Action) -> Receipt:
        """Apply ``action`` to the platform state, at most once per action id with a journal.

        Raises :class:`~communitykit.PermanentFailure` when the platform refuses
        it, and whatever :meth:`ConsolePlatform.fail_next` injected.
        """
        fault = self.platform_state.take_fault()
        if fault is not None:
            raise fault
        if self.journal is None:
            receipt = self.platform_state.apply(action)
        else:
            with self.journal.locked():
                stored = self.journal.receipt_for(action.action_id)
                if stored is not None:
                    return stored
                receipt = self.platform_state.apply(action)
                self.journal.append(action, receipt, at=self.platform_state.now())
        self.performed.append((action, receipt))
        return receipt


def _groups(value: Any, where: str) -> list[str] | dict[str, str]:
    if isinstance(value, Mapping):
        if all(isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()):
            return dict(value)
    elif isinstance(value, list | tuple) and all(isinstance(g, str) and g for g in value):
        if len(set(value)) != len(value):
            raise CommunityKitError(f"{where} option 'groups' names a group twice: {value!r}")
        return list(value)
    raise CommunityKitError(
        f"{where} option 'groups' must be a list of group ids (or a table of id = title), "
        f"got {value!r}"
    )
