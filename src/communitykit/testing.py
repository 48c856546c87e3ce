"""Helpers for testing communitykit plugins.

* :func:`fresh_plugin_manager` — a plugin manager with no entry points loaded
  (or with them, ``entry_points=True``), so a test sees only what it registers.
* :func:`registered` — register a plugin for the length of a ``with`` block.
* :class:`HookRecorder` — a plugin that records every notification hook call,
  for asserting what the engine told plugins.
* :func:`memory_app` — a :class:`~communitykit.app.CommunityApp` on the
  in-memory store with a simulated clock, ready to ``feed`` events to.

Example::

    from communitykit.testing import HookRecorder, fresh_plugin_manager

    plugins = fresh_plugin_manager(entry_points=True)
    recorder = HookRecorder()
    plugins.register(recorder, name="recorder")
    ...  # run events through an app built with plugins=plugins
    assert recorder.calls("communitykit_points_awarded")
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs

from communitykit._clock import SimulatedClock
from communitykit.hookspecs import hookimpl
from communitykit.plugins import Plugins, make_plugin_manager

if TYPE_CHECKING:
    from communitykit._plugin_types import Adapter, Campaign, Receipt, Rule
    from communitykit.app import CommunityApp
    from communitykit.model import Action, Decision, Entry, Event, Member, Stage

__all__ = ["HookCall", "HookRecorder", "fresh_plugin_manager", "memory_app", "registered"]


def fresh_plugin_manager(*, entry_points: bool = False, blocked: Sequence[str] = ()) -> Plugins:
    """A new plugin manager; by default without the installed plugins."""
    return make_plugin_manager(load_entry_points=entry_points, blocked=blocked, environ={})


@contextmanager
def registered(plugins: Plugins, plugin: object, name: str | None = None) -> Iterator[str]:
    """Register ``plugin`` for the duration of the block; yields its name."""
    registered_name = plugins.register(plugin, name=name)
    try:
        yield registered_name
    finally:
        plugins.unregister(registered_name)


@attrs.frozen
class HookCall:
    name: str
    kwargs: dict[str, Any]


class HookRecorder:
    """Records every notification hook call, in order."""

    def __init__(self) -> None:
        self.recorded: list[HookCall] = []

    def calls(self, name: str | None = None) -> list[dict[str, Any]]:
        """The keyword arguments of each call to hook ``name`` (all hooks if None)."""
        return [c.kwargs for c in self.recorded if name is None or c.name == name]

    def names(self) -> list[str]:
        return [c.name for c in self.recorded]

    def clear(self) -> None:
        self.recorded.clear()

    def _record(self, name: str, **kwargs: Any) -> None:
        self.recorded.append(HookCall(name, kwargs))

    @hookimpl
    def communitykit_event_processed(self, event: Event, decisions: tuple[Decision, ...]) -> None:
        self._record("communitykit_event_processed", event=event, decisions=decisions)

    @hookimpl
    def communitykit_points_awarded(self, member_id: str, entry: Entry) -> None:
        self._record("communitykit_points_awarded", member_id=member_id, entry=entry)

    @hookimpl
    def communitykit_tier_changed(
        self, member_id: str, old_tier: str | None, new_tier: str, at: datetime
    ) -> None:
        self._record(
            "communitykit_tier_changed",
            member_id=member_id,
            old_tier=old_tier,
            new_tier=new_tier,
            at=at,
        )

    @hookimpl
    def communitykit_member_joined(self, member: Member, event: Event) -> None:
        self._record("communitykit_member_joined", member=member, event=event)

    @hookimpl
    def communitykit_member_left(self, member: Member, event: Event) -> None:
        self._record("communitykit_member_left", member=member, event=event)

    @hookimpl
    def communitykit_action_delivered(self, action: Action, receipt: Receipt) -> None:
        self._record("communitykit_action_delivered", action=action, receipt=receipt)

    @hookimpl
    def communitykit_action_failed(self, action: Action, reason: str, permanent: bool) -> None:
        self._record(
            "communitykit_action_failed", action=action, reason=reason, permanent=permanent
        )

    @hookimpl
    def communitykit_stage_changed(
        self, member: Member, old: Stage | None, new: Stage, at: datetime
    ) -> None:
        self._record("communitykit_stage_changed", member=member, old=old, new=new, at=at)


def memory_app(
    *,
    name: str = "test community",
    timezone: str = "UTC",
    start: datetime | None = None,
    plugins: Plugins | None = None,
    adapters: dict[str, Adapter] | None = None,
    rules: Sequence[Rule] = (),
    campaigns: Sequence[Campaign] = (),
    config_text: str | None = None,
) -> tuple[CommunityApp, SimulatedClock]:
    """A community on the in-memory store with a simulated clock, and that clock.

    ``config_text`` is a ``community.toml`` text (its store is ignored); without
    it the defaults are used.
    """
    from communitykit.app import CommunityApp
    from communitykit.config import default_config, parse_config
    from communitykit.store import MemoryStore

    clock = SimulatedClock(start or datetime(2026, 3, 1, tzinfo=UTC))
    if config_text is None:
        config = default_config(name=name, store_url="memory://")
        if timezone != "UTC":
            from communitykit.model import Community

            config = attrs.evolve(
                config,
                community=Community(
                    name=config.community.name,
                    purpose=config.community.purpose,
                    timezone=timezone,
                    groups=config.community.groups,
                ),
            )
    else:
        config = parse_config(config_text)
    store = MemoryStore()
    store.open()
    app = CommunityApp(
        config,
        plugins=plugins if plugins is not None else make_plugin_manager(),
        store=store,
        clock=clock,
        adapters=adapters,
        rules=rules,
        campaigns=campaigns,
    )
    return app, clock
