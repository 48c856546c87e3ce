"""The plugin types: what registration hooks return, and the adapter interface.

A plugin adds a platform by returning an :class:`AdapterType` from
``communitykit_adapter_types``, a rule type with :class:`RuleType`, a campaign
type with :class:`CampaignType`, a metric with :class:`MetricType`. Each type
validates its own fields when it is built, so a broken plugin fails where it is
written, with a message naming what is wrong.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import attrs

from communitykit._errors import CommunityKitError
from communitykit._secret import Secret
from communitykit.model._actions import Action
from communitykit.model._decisions import Capabilities, Decision, RuleContext, TickContext
from communitykit.model._events import Event
from communitykit.model._segments import Segment

__all__ = [
    "Adapter",
    "AdapterType",
    "Campaign",
    "CampaignType",
    "DeliveryFailed",
    "EventSink",
    "MetricType",
    "PermanentFailure",
    "PlatformSettings",
    "Receipt",
    "Rule",
    "RuleType",
    "SegmentType",
    "TransientFailure",
]

_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")


def _check_name(_instance: Any, attribute: Any, value: str) -> None:
    if not isinstance(value, str) or not _NAME.match(value):
        raise CommunityKitError(
            f"plugin type {attribute.name} must be lowercase letters, digits, '.', '_' or '-' "
            f"and start with a letter, got {value!r}"
        )


def _check_callable(_instance: Any, attribute: Any, value: Any) -> None:
    if not callable(value):
        raise CommunityKitError(f"plugin type {attribute.name} must be callable, got {value!r}")


def _freeze(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    from types import MappingProxyType

    return MappingProxyType(dict(value or {}))


@attrs.frozen(kw_only=True)
class PlatformSettings:
    """One ``[platforms.<name>]`` table of the configuration, as an adapter gets it."""

    name: str
    token: Secret | None = None
    api_base: str | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=_freeze)


@attrs.frozen(kw_only=True)
class Receipt:
    """Proof that an action was performed: the platform's id for what it created."""

    action_id: str
    platform_message_id: str | None = None
    detail: str = ""


class DeliveryFailed(CommunityKitError):
    """An adapter could not perform an action."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class PermanentFailure(DeliveryFailed):
    """Retrying will not help (the user blocked the bot, the chat is gone).

    ``unreachable`` says the target itself cannot be reached (blocked by the user,
    never started the bot, the chat is gone), as opposed to an action the platform
    refused; a broadcast counts these apart.
    """

    def __init__(self, reason: str, *, unreachable: bool = False) -> None:
        self.unreachable = unreachable
        super().__init__(reason)


class TransientFailure(DeliveryFailed):
    """Try again later (a network error, a 5xx); ``retry_after`` in seconds if known."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(reason)


#: What an adapter hands events to. It returns once the engine has recorded them,
#: so the adapter may then confirm them to the platform (an update offset, an ack).
EventSink = Callable[[Sequence[Event]], Awaitable[object]]


class AdapterHost(Protocol):
    """What an adapter may tell the community it runs in (``adapter.host``)."""

    async def group_moved(self, platform: str, old_id: str, new_id: str) -> None:
        """A group got a new platform id (a Telegram group became a supergroup).

        The community records it (and keeps it across restarts): events and
        actions with either id are the same group from now on.
        """
        ...


class Adapter(abc.ABC):
    """A platform connection. Subclass it and return an :class:`AdapterType` for it.

    The engine never asks an adapter for an action its :attr:`capabilities` do
    not list. A running community sets :attr:`host` before :meth:`start`.
    """

    #: the community the adapter runs in, set by it (``None`` when used alone)
    host: AdapterHost | None = None

    #: the platform name events and actions carry ("telegram", "console", ...)
    platform: str
    capabilities: Capabilities

    @abc.abstractmethod
    async def start(self, sink: EventSink) -> None:
        """Start receiving updates and hand them to ``sink``; return once started."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop receiving updates. Idempotent.

        The adapter may still be asked to perform actions (the outbox drains
        after every adapter has stopped), until :meth:`close`.
        """

    async def close(self) -> None:  # noqa: B027 - optional, nothing to do by default
        """Release connections once nothing more will be performed. Idempotent."""

    @abc.abstractmethod
    async def perform(self, action: Action) -> Receipt:
        """Perform ``action`` on the platform.

        Raise :class:`PermanentFailure` when it can never succeed and
        :class:`TransientFailure` when it may later.
        """


@attrs.frozen(kw_only=True)
class AdapterType:
    """A platform a plugin adds: ``name`` is the ``[platforms.<name>]`` key."""

    name: str = attrs.field(validator=_check_name)
    factory: Callable[[PlatformSettings], Adapter] = attrs.field(validator=_check_callable)
    description: str = ""


@runtime_checkable
class Rule(Protocol):
    """A configured rule: a pure function from context to decision.

    Optional attributes the engine reads when a rule has them:

    * ``event_types``: the event types it wants (default: every event);
    * ``window`` (a ``timedelta``): how far back ``ctx.recent`` must reach;
    * ``next_run(after, tick)`` and ``on_schedule(tick)``: scheduled work (a sweep,
      a deadline), like a campaign's, except that ``next_run`` also gets a
      :class:`TickContext` to find its next moment in what it remembers;
    * ``ladder`` (a :class:`~communitykit.WarningLadder`): the community's warning
      ladder (the ``warning_ladder`` rule type).

    The engine applies the rule's scope (groups, exemptions) before asking it, so
    ``evaluate`` only sees members it applies to.
    """

    @property
    def name(self) -> str:
        """The rule's name, shown as the source of what it decides (``rule:<name>``)."""

    def evaluate(self, ctx: RuleContext) -> Decision | None: ...


@attrs.frozen(kw_only=True)
class RuleType:
    """A kind of rule, built from its settings (a table of ``community.toml``).

    The factory gets the settings without the scope keys every rule takes
    (``groups``, ``exempt_roles``, ``exempt_tiers``, ``exempt_tags``,
    ``exempt_paid``: the engine applies those); ``scope_defaults`` gives them other
    defaults for this type (``{"exempt_paid": True}``).
    """

    name: str = attrs.field(validator=_check_name)
    factory: Callable[[Mapping[str, Any]], Rule] = attrs.field(validator=_check_callable)
    description: str = ""
    scope_defaults: Mapping[str, Any] = attrs.field(factory=dict, converter=_freeze)


@runtime_checkable
class Campaign(Protocol):
    """A configured campaign: reacts to events and runs at scheduled moments."""

    @property
    def name(self) -> str:
        """The campaign's name (``campaign:<name>`` as a source)."""

    def on_event(self, ctx: RuleContext) -> Decision | None: ...

    def next_run(self, after: datetime | None) -> datetime | None:
        """The first scheduled moment after ``after``: the last moment it ran, or
        the moment the community first loaded with it (``None`` only when used
        outside an engine). A campaign may take a second parameter: it then gets
        a :class:`TickContext` too, to find its moment in what it remembers."""

    def on_schedule(self, ctx: TickContext) -> Iterable[Decision]: ...


@attrs.frozen(kw_only=True)
class CampaignType:
    """A kind of campaign, built from its settings.

    With ``takes_timezone``, the settings always hold ``timezone``: the
    community's time zone unless the table sets another (for local times of day).
    """

    name: str = attrs.field(validator=_check_name)
    factory: Callable[[Mapping[str, Any]], Campaign] = attrs.field(validator=_check_callable)
    description: str = ""
    takes_timezone: bool = False


@attrs.frozen(kw_only=True)
class SegmentType:
    """A kind of segment a plugin adds (``type = "<name>"`` in a ``[segments.<x>]``
    table): ``factory`` gets the table's other keys and returns a
    :class:`~communitykit.Segment`; it raises an error with a clear message for
    bad settings."""

    name: str = attrs.field(validator=_check_name)
    factory: Callable[[Mapping[str, Any]], Segment] = attrs.field(validator=_check_callable)
    description: str = ""


@attrs.frozen(kw_only=True)
class MetricType:
    """A metric a plugin adds to the analytics (computed from stored events and ledger).

    ``compute(ctx)`` gets a :class:`~communitykit.analytics.MetricContext` (the
    date range, the group and platform the report is narrowed to, the community
    and ``ctx.facts``: the stored events and ledger as numpy columns) and returns
    one :class:`~communitykit.analytics.MetricResult`. A report lists the
    metrics by ``order`` (the built-in ones take 0 to 150), then by name.
    """

    name: str = attrs.field(validator=_check_name)
    compute: Callable[..., Any] = attrs.field(validator=_check_callable)
    description: str = ""
    order: int = 1000
