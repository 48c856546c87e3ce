"""Every hook communitykit calls, in one place.

A plugin is a module or an object with functions named after these hooks and
marked with :data:`communitykit.hookimpl`. It is found through the
``communitykit`` entry-point group, or registered at run time with
:meth:`communitykit.Plugins.register`.

Two families:

* **Registration hooks** return plugin type objects (an iterable of them). They
  are called once, when a community is built. Every answer counts; two plugins
  offering the same name is a conflict, reported with both plugins named.
* **Notification hooks** tell plugins what happened. They may be ``async def``:
  the engine awaits each in turn, in pluggy's call order (the plugin registered
  last is called first). Their return values are ignored. A notification hook
  that raises is logged (``plugin.hook_failed``) and the others still run; it
  never stops the engine.

No hook here uses ``firstresult``: none has a single right answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from communitykit._plugin_types import (
        AdapterType,
        CampaignType,
        MetricType,
        Receipt,
        RuleType,
        SegmentType,
    )
    from communitykit.model import Action, Decision, Entry, Event, Member, Stage

__all__ = ["hookimpl", "hookspec"]

PROJECT = "communitykit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --------------------------------------------------------------------- registration


@hookspec
def communitykit_adapter_types() -> Iterable[AdapterType]:
    """Return the platforms this plugin adds, as :class:`AdapterType` values.

    Called once when a community is built. Every plugin's answer counts; an
    adapter name offered by two plugins is a conflict.
    """
    raise NotImplementedError


@hookspec
def communitykit_rule_types() -> Iterable[RuleType]:
    """Return the rule types this plugin adds, as :class:`RuleType` values.

    Called once when a community is built; ``[[rules]]`` tables of
    ``community.toml`` name them by ``type``. Every answer counts.
    """
    raise NotImplementedError


@hookspec
def communitykit_campaign_types() -> Iterable[CampaignType]:
    """Return the campaign types this plugin adds, as :class:`CampaignType` values.

    Called once when a community is built; ``[[campaigns]]`` tables name them by
    ``type``. Every answer counts.
    """
    raise NotImplementedError


@hookspec
def communitykit_segment_types() -> Iterable[SegmentType]:
    """Return the segment types this plugin adds, as :class:`SegmentType` values.

    Called once when a community is built; ``[segments.<name>]`` tables name them
    by ``type``. Every answer counts.
    """
    raise NotImplementedError


@hookspec
def communitykit_metric_types() -> Iterable[MetricType]:
    """Return the metrics this plugin adds to the analytics, as :class:`MetricType` values.

    A metric's ``compute(ctx: MetricContext) -> MetricResult`` reads ``ctx.facts``
    (or the store, ``ctx.store``) for the range ``ctx.start .. ctx.end``. Every
    answer counts.
    """
    raise NotImplementedError


# --------------------------------------------------------------------- notification


@hookspec
def communitykit_event_processed(event: Event, decisions: tuple[Decision, ...]) -> Any:
    """An event was recorded and its decisions applied (committed to the store).

    Not called for a duplicate event. May be async. Return value ignored.
    """


@hookspec
def communitykit_points_awarded(member_id: str, entry: Entry) -> Any:
    """A credit was written to the ledger (after the transaction committed).

    ``entry.points`` is what was credited after caps and multipliers. May be async.
    """


@hookspec
def communitykit_tier_changed(
    member_id: str, old_tier: str | None, new_tier: str, at: datetime
) -> Any:
    """A member's tier changed (``old_tier`` is ``None`` for a member's first tier).

    May be async. Return value ignored.
    """


@hookspec
def communitykit_member_joined(member: Member, event: Event) -> Any:
    """A member joined a group of the community (a ``member_joined`` event). May be async."""


@hookspec
def communitykit_member_left(member: Member, event: Event) -> Any:
    """A member left, was kicked or banned (a ``member_left`` event). May be async."""


@hookspec
def communitykit_action_delivered(action: Action, receipt: Receipt) -> Any:
    """The dispatcher performed an action on its platform. May be async."""


@hookspec
def communitykit_action_failed(action: Action, reason: str, permanent: bool) -> Any:
    """An action failed. ``permanent`` is true when it will not be tried again.

    A transient failure is retried with backoff; this hook is called for each
    failed attempt. May be async.
    """


@hookspec
def communitykit_stage_changed(member: Member, old: Stage | None, new: Stage, at: datetime) -> Any:
    """A member's lifecycle stage changed (``old`` is ``None`` the first time one is known).

    Called once per change: on activity (silent or churned to recalled or
    active), on joining (to new), on leaving (to left) and at the daily sweep,
    in the community's time zone, for the changes time alone makes (new to
    active or silent, active to silent, silent to churned, recalled to active).
    May be async. Return value ignored.
    """
