"""The engine: event → rules and campaigns → points, tiers, member state → outbox.

:class:`Engine` keeps the community's working state in memory (the identity
graph, the ledger, each member's tier state) and writes every change through the
store, one transaction per batch of events: the events themselves (so a
duplicate is recognised forever), the ledger entries, member records and states,
and the actions decided, into the outbox. If the commit fails, the in-memory
state is reloaded from the store and the error raised: nothing is half-applied,
and the adapter delivers the batch again.

:class:`Dispatcher` drains the outbox through the adapters: each action is
marked delivered (with the platform's receipt), failed when the failure is
permanent, or rescheduled with backoff when it is transient. Because the outbox
is in the store, a restart after a crash delivers whatever was still pending.

The engine reads the time only from the clock it is given.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import gc
import inspect
import json
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import attrs
import structlog

from communitykit._clock import Clock
from communitykit._errors import CommunityKitError, ModelError
from communitykit._moderation import (
    LADDER,
    EngineTickSource,
    Moderation,
    audit_record,
    choose,
    freeze_state,
)
from communitykit._plugin_types import (
    Adapter,
    Campaign,
    PermanentFailure,
    Receipt,
    Rule,
    TransientFailure,
)
from communitykit.builtins.points import NATIVE_RULES
from communitykit.model import (
    MAX_POINTS,
    Action,
    ApproveJoin,
    AuditKind,
    AwardPoints,
    Ban,
    CancelPoints,
    Capabilities,
    Community,
    ConfirmPoints,
    CreateInviteLink,
    Decision,
    DeclineJoin,
    Entry,
    EntryKind,
    Event,
    IdentityGraph,
    Kick,
    Ledger,
    LifecycleSettings,
    LinkMethod,
    LinkProvenance,
    Member,
    MemberJoined,
    MemberLeft,
    MemberPaid,
    MemberState,
    MemberStatus,
    MessagePosted,
    PlatformIdentity,
    QualifyingFacts,
    ReactionAdded,
    Recent,
    Role,
    RuleContext,
    RuleScope,
    SendDirectMessage,
    SetTitle,
    Stage,
    TickContext,
    Tier,
    TierLadder,
    TierState,
    WarningLadder,
    apply_multiplier,
    next_return,
    stable_id,
    stage_of,
)
from communitykit.plugins import Plugins
from communitykit.store import Batch, OutboxItem, Store

__all__ = [
    "BULK_SOURCE_PREFIX",
    "LIFECYCLE_STATE",
    "UNREACHABLE",
    "Dispatcher",
    "Engine",
    "ProcessResult",
    "is_bulk",
    "lane_of",
]

log = structlog.get_logger("communitykit.engine")

# event types that make a member active, and those that change the member record
#: the rule-state name under which the engine keeps each member's tier changes
#: (the analytics count promotions and demotions from it), and how many it keeps
TIER_HISTORY = "tier_history"
TIER_HISTORY_KEEP = 100

_ACTIVE_TYPES = frozenset({"message_posted", "reaction_added", "command_invoked"})
_MEMBERSHIP_TYPES = frozenset({"member_joined", "member_left", "member_paid"})
_GONE_STATUSES = frozenset({MemberStatus.LEFT, MemberStatus.BANNED})
_NO_CAPABILITIES = Capabilities(actions=())
_MOVED_GROUPS = "groups:moved"
#: the ledger reason of a check-in's reward; tiers count these as check-ins
CHECKIN_REASON = "checkin"  # meta: JSON list of [platform, old id, new id]
_NOTIFICATIONS = (
    "communitykit_event_processed",
    "communitykit_points_awarded",
    "communitykit_tier_changed",
    "communitykit_member_joined",
    "communitykit_member_left",
    "communitykit_stage_changed",
)
#: lifecycle tracking: the rule-state name under which the engine keeps each
#: member's stage and last return ({"stage": "active", "returned": "<iso>"})
LIFECYCLE_STATE = "lifecycle"
_STAGE_VALUES = {stage.value: stage.value for stage in Stage}  # one copy of each


# a built-in points rule's decision before it is built: (rule, member, reason, key)
_Native = tuple[Any, str, str, str]


def _built(decision: Decision | _Native) -> Decision:
    if type(decision) is tuple:
        rule, member, reason, key = decision
        return rule.decision(member, reason, key)  # type: ignore[no-any-return]
    return decision  # type: ignore[return-value]


class _Decisions:
    """A batch's decisions, those of the built-in points rules built when first read."""

    __slots__ = ("_items",)

    def __init__(self, items: Sequence[Decision | _Native]) -> None:
        self._items = items

    def get(self) -> tuple[Decision, ...]:
        items = self._items
        if type(items) is not tuple or any(type(d) is tuple for d in items):
            items = self._items = tuple(_built(d) for d in items)
        return items  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Decisions) and self.get() == other.get()

    def __hash__(self) -> int:
        return hash(self.get())

    def __repr__(self) -> str:
        return repr(self.get())


def _as_decisions(value: Sequence[Decision] | _Decisions) -> _Decisions:
    return value if isinstance(value, _Decisions) else _Decisions(tuple(value))


@attrs.frozen
class ProcessResult:
    """What one call to :meth:`Engine.process` did."""

    recorded: int  # new events recorded
    duplicates: int  # events already seen (ignored)
    _decisions: _Decisions = attrs.field(alias="decisions", converter=_as_decisions)
    actions: int  # actions written to the outbox
    entries: int  # ledger entries written
    rejected: int = 0  # events that cannot be processed (logged as event.rejected)

    @property
    def decisions(self) -> tuple[Decision, ...]:
        """The decisions of the rules and campaigns, in the order they were applied."""
        return self._decisions.get()


#: how the engine asks a rule or campaign about an event (see ``Engine._askers``)
_Route = tuple[str, Callable[[RuleContext], Any], Any, bool, RuleScope | None]


class _Pending:
    """What a batch changes, gathered before the one commit."""

    __slots__ = ("batch", "decisions", "dirty", "listening", "notes", "recheck", "touched")

    def __init__(self, batch: Batch, listening: frozenset[str] = frozenset()) -> None:
        self.batch = batch
        self.listening = listening  # notification hooks some plugin implements
        self.notes: list[tuple[str, dict[str, Any]]] = []
        self.decisions: list[Decision | _Native] = []
        self.touched: set[str] = set()  # members whose points changed
        self.recheck: set[str] = set()  # members whose tier criteria changed
        self.dirty: set[str] = set()  # members whose state changed (written at commit)


class _LiveState:
    """A member's state as the engine updates it, event by event.

    Mutable, so an event costs no new object; :meth:`snapshot` gives the
    immutable :class:`MemberState` that stores keep and queries return.
    """

    __slots__ = (
        "below_since",
        "last_active_at",
        "messages",
        "reactions_received",
        "returned_at",
        "stage",
        "tier",
        "tier_since",
    )

    def __init__(self, state: MemberState) -> None:
        self.tier = state.tier
        self.tier_since = state.tier_since
        self.below_since = state.below_since
        self.last_active_at = state.last_active_at
        self.messages = state.messages
        self.reactions_received = state.reactions_received
        # lifecycle: the stage last found and the last return (kept in rule states)
        self.stage: str | None = None
        self.returned_at: datetime | None = None

    def snapshot(self, member_id: str) -> MemberState:
        return MemberState(
            member_id=member_id,
            tier=self.tier,
            tier_since=self.tier_since,
            below_since=self.below_since,
            last_active_at=self.last_active_at,
            messages=self.messages,
            reactions_received=self.reactions_received,
        )


class _States(Mapping[str, MemberState]):
    """The engine's member states as a read-only mapping of snapshots."""

    __slots__ = ("_live",)

    def __init__(self, live: dict[str, _LiveState]) -> None:
        self._live = live

    def __getitem__(self, member_id: str) -> MemberState:
        return self._live[member_id].snapshot(member_id)

    def __contains__(self, member_id: object) -> bool:
        return member_id in self._live

    def __iter__(self) -> Iterator[str]:
        return iter(self._live)

    def __len__(self) -> int:
        return len(self._live)


class _EventContext(RuleContext):
    """The engine's :class:`RuleContext`: each value is looked up when a rule reads it."""

    __slots__ = ("_engine", "_member_id", "_recent_found")

    def __init__(self, engine: Engine, event: Event, member_id: str, member: Member | None):
        # RuleContext.__init__ is not called: the values are properties here
        self.event = event
        self._engine = engine
        self._member_id = member_id
        self._member = member
        self._recent_found: Sequence[Recent] | None = None

    @property
    def member(self) -> Member:
        member = self._member
        if member is None:
            member = self._member = self._engine.graph.get(self._member_id)
        return member

    @property
    def member_id(self) -> str:
        return self._member_id

    @property
    def state(self) -> MemberState:
        member_id = self._member_id
        return self._engine._live[member_id].snapshot(member_id)

    @property
    def tier(self) -> Tier:
        engine = self._engine
        return engine._tiers[engine._live[self._member_id].tier]

    @property
    def balance(self) -> int:
        return self._engine.ledger.balance(self._member_id)

    @property
    def community(self) -> Community:
        return self._engine.community

    @property
    def capabilities(self) -> Capabilities:
        return self._engine.capabilities.get(self.event.platform) or _NO_CAPABILITIES

    @property
    def now(self) -> datetime:
        return self._engine.clock.now()

    def cap_remaining(self, reason: str) -> int | None:
        return self._engine.ledger.cap_remaining(self._member_id, reason, self.event.at)

    def member_of(self, platform: str, user_id: str) -> Member | None:
        return self._engine._member_of(platform, user_id)

    def already_awarded(self, key: str) -> bool:
        return self._engine.ledger.has_key(key)

    @property
    def recent(self) -> Sequence[Recent]:
        recent = self._recent_found
        if recent is None:
            recent = self._recent_found = self._engine.moderation.recent_of(
                self._member_id, self.event.at
            )
        return recent

    @property
    def warnings(self) -> int:
        return len(self._engine.moderation.warnings(self._member_id, self.event.at))

    def rule_state(self, name: str, member_id: str | None = None) -> Mapping[str, Any]:
        return self._engine.moderation.state(name, member_id or self._member_id)

    def group_size(self, key: str) -> int:
        return self._engine.moderation.group_size(key)

    def invite_owner(self, invite: str) -> Member | None:
        engine = self._engine
        member_id = engine.moderation.invite_owner(self.event.platform, invite)
        if member_id is None or member_id not in engine.graph:
            return None
        return engine.graph.get(member_id)


class Engine:
    """Processes events for one community; see the module documentation."""

    def __init__(
        self,
        *,
        community: Community,
        store: Store,
        plugins: Plugins,
        ladder: TierLadder,
        rules: Sequence[Rule],
        campaigns: Sequence[Campaign] = (),
        capabilities: Mapping[str, Capabilities],
        clock: Clock,
        daily_caps: Mapping[str, int] | None = None,
        expire_after: timedelta | None = None,
        scopes: Mapping[str, RuleScope] | None = None,
        lifecycle: LifecycleSettings | None = None,
    ) -> None:
        self.community = community
        self.lifecycle = lifecycle if lifecycle is not None else LifecycleSettings()
        #: a segment's member ids at a moment (the application's segments), for
        #: scheduled work (``TickContext.segment``); ``None``: no segments known
        self.segment_members: Callable[[str, datetime], frozenset[str]] | None = None
        self._active_span = timedelta(days=self.lifecycle.active_days)
        self._new_span = timedelta(days=self.lifecycle.new_days)
        self._recalled_span = timedelta(days=self.lifecycle.recalled_days)
        self.store = store
        self.plugins = plugins
        self.ladder = ladder
        self.rules = list(rules)
        self.campaigns = list(campaigns)
        self.capabilities = dict(capabilities)
        self.clock = clock
        self.daily_caps = dict(daily_caps or {})
        self.expire_after = expire_after
        self.on_commit: Callable[[], None] | None = None
        self.graph = IdentityGraph()
        self.ledger = Ledger(community.timezone, self.daily_caps)
        self._live: dict[str, _LiveState] = {}
        self._committed_entries = 0
        self._committed_links = 0
        self._lock = asyncio.Lock()
        self._notifying = asyncio.Lock()
        self._tz = community.tz
        self._last_runs: dict[str, datetime] = {}
        self._moved_groups: list[tuple[str, str, str]] = []
        # event type -> (name, ask, the rule itself when a built-in points rule, is a
        # rule, the rule's scope when it has one and is asked for its decision)
        self._routes: dict[str, list[_Route]] = {}
        self._next_threshold: dict[str, int | None] = {}  # tier -> threshold of the next
        self._index_ladder()
        ladders = [
            found
            for r in self.rules
            if isinstance(found := getattr(r, "ladder", None), WarningLadder)
        ]
        if len(ladders) > 1:
            raise ModelError("a community has one warning ladder; two rules configure one")
        windows = [w for r in self.rules if isinstance(w := getattr(r, "window", None), timedelta)]
        self.moderation = Moderation(
            scopes=scopes or {},
            ladder=ladders[0] if ladders else WarningLadder(),
            window=max(windows, default=timedelta(0)),
            tz=self._tz,
        )
        #: rules asked at scheduled moments (``next_run`` and ``on_schedule``)
        self.scheduled_rules = [
            r
            for r in self.rules
            if callable(getattr(r, "next_run", None)) and callable(getattr(r, "on_schedule", None))
        ]
        self._rule_names = frozenset(r.name for r in self.rules)
        self._takes_tick: dict[str, bool] = {}  # campaign -> whether next_run takes a tick
        #: campaigns told of stage changes (those with ``on_stage_changed``)
        self._stage_watchers = [
            c for c in self.campaigns if callable(getattr(c, "on_stage_changed", None))
        ]

    # ------------------------------------------------------------------ loading

    def _index_ladder(self) -> None:
        tiers = self.ladder.tiers
        self._tiers = {tier.name: tier for tier in tiers}
        self._next_threshold = {
            tier.name: (tiers[i + 1].threshold if i + 1 < len(tiers) else None)
            for i, tier in enumerate(tiers)
        }

    def load(self) -> None:
        """(Re)build the working state from the store."""
        graph = IdentityGraph()
        for member in self.store.load_members():
            graph.add(member)
        # The link history stays in the store (CommunityApp.links reads it): with a
        # million members it would be most of the memory, and nothing needs it hot.
        ledger = Ledger.restore(
            self.store.load_entries(),
            self.community.timezone,
            self.daily_caps,
            name=graph.canonical_id,  # one copy of each member id, the record's
        )
        self.graph = graph
        self.ledger = ledger
        self._live = {
            graph.canonical_id(state.member_id): _LiveState(state)
            for state in self.store.load_states()
        }
        self._committed_entries = len(ledger)
        self._committed_links = graph.links_count()
        self._last_runs = {}
        self.moderation.load(self.store, self.clock.now(), graph.canonical_id)
        self._load_stages()
        window = self.moderation.window
        if window:
            since = self.clock.now() - window
            recent = []
            for event in self.store.iter_events_since(since):
                member_id = graph.member_id_of(event.platform, event.user)
                if member_id is not None:
                    recent.append((member_id, event))
            self.moderation.rebuild_recent(recent)
        keys = [
            "tier_review",
            *(f"campaign:{c.name}" for c in self.campaigns),
            *(f"rule:{r.name}" for r in self.scheduled_rules),
        ]
        for key in keys:
            text = self.store.get_meta(f"schedule:{key}")
            if text is not None:
                self._last_runs[key] = datetime.fromisoformat(text)
        # The first daily review is the first midnight after the engine first ran;
        # that moment is stored at once, so a restart does not move it forward.
        # Likewise a scheduled rule's first moment is the first after it was first loaded.
        anchors = [
            key
            for key in (
                "tier_review",
                *(f"rule:{r.name}" for r in self.scheduled_rules),
                *(f"campaign:{c.name}" for c in self.campaigns),
            )
            if key not in self._last_runs
        ]
        if anchors:
            anchor = self.clock.now()
            self.store.commit(Batch(meta={f"schedule:{k}": anchor.isoformat() for k in anchors}))
            for key in anchors:
                self._last_runs[key] = anchor
        moved = self.store.get_meta(_MOVED_GROUPS)
        self._moved_groups = [] if moved is None else [(p, o, n) for p, o, n in json.loads(moved)]
        for platform, old_id, new_id in self._moved_groups:
            self._apply_group_move(platform, old_id, new_id)
        # The loaded state lives as long as the engine: moved out of the collector's
        # sight, a full collection no longer walks every member and entry (tens of
        # milliseconds on the path of whichever event triggered it). It holds no
        # reference cycles, so what a later load replaces is still freed.
        gc.freeze()

    # ------------------------------------------------------------------ queries

    def member(self, identity: PlatformIdentity) -> Member | None:
        return self.graph.find(identity)

    def balance(self, member_id: str) -> int:
        return self.ledger.balance(member_id)

    def tier(self, member_id: str) -> str:
        state = self._live.get(member_id)
        return state.tier if state is not None else self.ladder.base.name

    @property
    def states(self) -> Mapping[str, MemberState]:
        """Every member's state (read-only; each lookup is a snapshot)."""
        return _States(self._live)

    # --------------------------------------------------------------- processing

    async def process(self, events: Sequence[Event]) -> ProcessResult:
        """Record ``events`` once each and apply what they cause, in one transaction."""
        async with self._lock:
            valid: list[Event] = []
            for event in events:
                problem = unusable(event)
                if problem is None:
                    valid.append(event)
                else:
                    log.warning(
                        "event.rejected",
                        platform=event.platform,
                        event_id=event.event_id,
                        problem=problem,
                    )
            keys = [(e.platform, e.event_id) for e in valid]
            seen = self.store.seen_events(keys) if keys else set()
            fresh: list[Event] = valid
            if seen or len(set(keys)) != len(keys):  # some delivered again: keep the first
                fresh = []
                batch_keys: set[tuple[str, str]] = set()
                for event, key in zip(valid, keys, strict=True):
                    if key in seen or key in batch_keys:
                        continue
                    batch_keys.add(key)
                    fresh.append(event)
            pending = self._pending(self.clock.now())
            # A batch allocates thousands of objects that outlive it (the store keeps
            # them); collected every 700 allocations, they would be walked several
            # times over. Collection waits for the batch's end instead (a host that
            # turned the collector off keeps it off).
            collecting = gc.isenabled()
            gc.disable()
            try:
                try:
                    for event in fresh:
                        pending.batch.events.append(event)
                        self._decide(event, pending)
                        # after each event, so the next one earns at the new tier's rate
                        # however the adapter batched them
                        if pending.touched or pending.recheck:
                            self._settle_tiers(pending, self.clock.now())
                except BaseException:
                    # nothing of the batch is stored: put the working state back as stored
                    self.load()
                    raise
                entries = self._commit(pending)
            finally:
                if collecting:
                    gc.enable()
            actions = len(pending.batch.actions)
            await self._notifying.acquire()  # batches notify in the order they committed
        await self._notify(pending, entries)
        return ProcessResult(
            recorded=len(fresh),
            duplicates=len(valid) - len(fresh),
            decisions=_Decisions(pending.decisions),
            actions=actions,
            entries=len(entries),
            rejected=len(events) - len(valid),
        )

    def _pending(self, now: datetime) -> _Pending:
        listening = frozenset(h for h in _NOTIFICATIONS if self.plugins.has_listeners(h))
        return _Pending(Batch(created_at=now), listening)

    def _askers(self, event_type: str) -> list[_Route]:
        """The rules and campaigns that want events of this type, in order, each
        with whether it is a rule (whose verdicts are audited) and its scope.

        A rule or campaign may declare ``event_types`` (a collection of event type
        names); without it, it is asked about every event. The third item is the
        rule itself for a built-in points rule, whose award is asked for directly.
        """
        found = self._routes.get(event_type)
        if found is None:
            found = []
            for rule in self.rules:
                wanted = getattr(rule, "event_types", None)
                if wanted is None or event_type in wanted:
                    points = getattr(rule, "points", None)
                    native = type(rule) in NATIVE_RULES and type(points) is int and points > 0
                    scope = None if native else self.moderation.scopes.get(rule.name)
                    found.append((rule.name, rule.evaluate, rule if native else None, True, scope))
            for campaign in self.campaigns:
                wanted = getattr(campaign, "event_types", None)
                if wanted is None or event_type in wanted:
                    found.append((campaign.name, campaign.on_event, None, False, None))
            self._routes[event_type] = found
        return found

    def _commit(self, pending: _Pending) -> list[Entry]:
        if pending.dirty:
            live = self._live
            pending.batch.states.update((m, live[m].snapshot(m)) for m in sorted(pending.dirty))
            pending.dirty.clear()
        entries = self.ledger.entries_from(self._committed_entries)
        pending.batch.entries = entries
        pending.batch.links = self.graph.links_from(self._committed_links)
        if not len(pending.batch):
            return entries
        try:
            self.store.commit(pending.batch)
        except BaseException as exc:
            log.error(
                "engine.commit_failed",
                events=len(pending.batch.events),
                error=f"{type(exc).__name__}: {exc}",
            )
            self.load()
            raise
        self._committed_entries = len(self.ledger)
        self._committed_links = self.graph.links_count()
        for key, value in pending.batch.meta.items():
            if key.startswith("schedule:"):
                self._last_runs[key.removeprefix("schedule:")] = datetime.fromisoformat(value)
        if pending.batch.actions and self.on_commit is not None:
            self.on_commit()
        return entries

    async def _notify(self, pending: _Pending, entries: list[Entry]) -> None:
        """Tell plugins what the committed batch did, in the order it happened.

        Called with ``_notifying`` held (taken before the engine lock was released),
        which it releases: one batch's notifications never interleave with another's.
        """
        try:
            await self._notify_all(pending, entries)
        finally:
            self._notifying.release()

    async def _notify_all(self, pending: _Pending, entries: list[Entry]) -> None:
        plugins = self.plugins
        first = entries[0] if entries else None
        start = int(first.entry_id[1:]) if first is not None else 0
        for hook, kwargs in pending.notes:
            if not plugins.has_listeners(hook):
                continue
            if hook == "communitykit_points_awarded":
                kwargs = {**kwargs, "entry": entries[kwargs["entry"] - start]}
            await plugins.notify(hook, **kwargs)

    def _member_for(
        self,
        platform: str,
        user: str,
        at: datetime,
        pending: _Pending,
        *,
        joining: bool = False,
        requested: bool = False,
    ) -> Member:
        member_id = self.graph.member_id_of(platform, user)
        if member_id is not None:
            return self.graph.get(member_id)
        identity = PlatformIdentity(platform, user)
        member = Member(
            member_id=str(identity),
            identities=(identity,),
            joined_at=at if joining else None,
            status=MemberStatus.PENDING if requested else MemberStatus.ACTIVE,
        )
        provenance = LinkProvenance(method=LinkMethod.JOINED, at=at)
        self.graph.add(member, provenance)
        pending.batch.members[member.member_id] = member
        state = MemberState(member_id=member.member_id, tier=self.ladder.base.name, tier_since=at)
        self._live[member.member_id] = _LiveState(state)
        pending.dirty.add(member.member_id)
        return member

    def _update_member(self, member: Member, pending: _Pending) -> Member:
        self.graph.update(member)
        pending.batch.members[member.member_id] = member
        return member

    def _decide(self, event: Event, pending: _Pending) -> None:
        at = event.at
        kind = event.TYPE
        platform = event.platform
        member_id_of = self.graph.member_id_of
        member_id = member_id_of(platform, event.user)
        member: Member | None = None
        if member_id is None or kind in _MEMBERSHIP_TYPES:
            member = self._member_for(
                platform,
                event.user,
                at,
                pending,
                joining=kind == "member_joined",
                requested=kind == "join_requested",
            )
            member = self._apply_event_to_member(event, member, pending)
            member_id = member.member_id
            if kind != "member_paid":
                self.moderation.membership(event, member_id, self.community, pending.batch)
        if kind in _ACTIVE_TYPES:
            live = self._live[member_id]
            previous = live.last_active_at
            if previous is None or at >= previous:  # a late event moves nothing back
                live.last_active_at = at
            # lifecycle: activity within active_days of the last is no return, and
            # leaves an active member active (and a new or recalled one so, while
            # they still are): only the rest is worked out in full
            if previous is None or (
                at >= previous
                and (at - previous > self._active_span or not self._stays(live, member_id, at))
            ):
                self._note_return(member_id, previous, at, pending)
                self._track_stage(member_id, at, pending)
            dirty = pending.dirty
            dirty.add(member_id)
            if kind == "message_posted":
                live.messages += 1
            elif kind == "reaction_added":
                assert isinstance(event, ReactionAdded)
                to_user = event.to_user
                if to_user and to_user != event.user:
                    author_id = member_id_of(platform, to_user)
                    if author_id is None:
                        author_id = self._member_for(platform, to_user, at, pending).member_id
                    self._live[author_id].reactions_received += 1
                    dirty.add(author_id)
        if kind == "member_joined" or kind == "member_left":
            self._track_stage(member_id, at, pending)  # lifecycle
        askers = self._routes.get(kind)
        if askers is None:
            askers = self._askers(kind)
        first = len(pending.decisions)
        queued, audited = len(pending.batch.actions), len(pending.batch.audit)
        if askers:
            ctx: _EventContext | None = None
            # equal scopes are one object (Moderation shares them): each is asked once
            asked: RuleScope | None = None
            exempt = False
            for name, ask, native, is_rule, scope in askers:
                if scope is not None:
                    if scope is not asked:
                        if member is None:
                            member = self.graph.get(member_id)
                        exempt = self._exempt(scope, event, member, member_id)
                        asked = scope
                    if exempt:
                        continue
                try:
                    if native is not None:
                        found = native.award_of(event, member_id, member_id_of)
                    else:
                        if ctx is None:
                            ctx = _EventContext(self, event, member_id, member)
                        decision = ask(ctx)
                except Exception as exc:  # a broken rule must not stop the community
                    self._rule_failed(name, event, exc)
                    continue
                if native is not None:
                    if found is not None:  # the decision native.decision(*found) would apply
                        to, reason, key = found
                        pending.decisions.append((native, to, reason, key))
                        self._award_to(to, native.points, reason, key, at, pending)
                elif decision is not None:
                    try:
                        self._apply_decision(decision, event, pending, name if is_rule else None)
                    except ModelError as exc:  # a bad decision is the rule's failure
                        self._rule_failed(name, event, exc)
        if kind == "join_requested":
            self._settle_join(pending, queued, audited)
        if kind == "message_posted" and self.moderation.window:
            assert isinstance(event, MessagePosted)
            self.moderation.remember(member_id, event)
        if "communitykit_event_processed" in pending.listening:
            decisions = pending.decisions
            for i in range(first, len(decisions)):
                decisions[i] = _built(decisions[i])
            mine = tuple(decisions[first:])
            note = {"event": event, "decisions": mine}
            pending.notes.append(("communitykit_event_processed", note))

    @staticmethod
    def _settle_join(pending: _Pending, queued: int, audited: int) -> None:
        """One join request, two answers (one rule approves, another declines, say
        the group is full): the decline wins, and the audit trail says so."""
        batch = pending.batch
        mine = batch.actions[queued:]
        if not any(isinstance(a, DeclineJoin) for a in mine) or not any(
            isinstance(a, ApproveJoin) for a in mine
        ):
            return
        dropped = {a.action_id for a in mine if isinstance(a, ApproveJoin)}
        batch.actions[queued:] = [a for a in mine if a.action_id not in dropped]
        for index in range(audited, len(batch.audit)):
            record = batch.audit[index]
            if any(a.action_id in dropped for a in record.actions):
                batch.audit[index] = attrs.evolve(
                    record,
                    actions=tuple(a for a in record.actions if a.action_id not in dropped),
                    explanation=f"{record.explanation}; overruled: another rule declined the "
                    "request",
                )

    def _exempt(self, scope: RuleScope, event: Event, member: Member, member_id: str) -> bool:
        """Whether a rule scope leaves this event alone (its group, or its member):
        :meth:`RuleScope.covers` and :meth:`RuleScope.exemption`, in the order
        cheapest first for a scope that exempts by role only (the default)."""
        if scope.groups:
            group = (
                None if event.group is None else self.community.group(event.platform, event.group)
            )
            if group is None or group.key not in scope.groups:
                return True
        if member.role in scope.exempt_roles:
            return True
        if scope.exempt_tiers or scope.exempt_tags or scope.exempt_paid:
            tier = self._live[member_id].tier
            today = event.at.astimezone(self._tz).date() if scope.exempt_paid else None
            return scope.exemption(member, tier, today) is not None
        return False

    def _member_of(self, platform: str, user: str) -> Member | None:
        member_id = self.graph.member_id_of(platform, user)
        return None if member_id is None else self.graph.get(member_id)

    def _apply_event_to_member(self, event: Event, member: Member, pending: _Pending) -> Member:
        changes: dict[str, Any] = {}
        hook = None
        if isinstance(event, MemberJoined):
            hook = "communitykit_member_joined"
            changes["status"] = MemberStatus.ACTIVE
            changes["left_at"] = None
            if member.joined_at is None:
                changes["joined_at"] = event.at
            if event.display_name and not member.display_name:
                changes["display_name"] = event.display_name
        elif isinstance(event, MemberLeft):
            hook = "communitykit_member_left"
            if not self._in_another_group(event, member.member_id):  # out of every group: gone
                banned = event.reason.value == "banned"
                changes["status"] = MemberStatus.BANNED if banned else MemberStatus.LEFT
                if member.joined_at is None or event.at >= member.joined_at:
                    changes["left_at"] = event.at
        elif (
            isinstance(event, MemberPaid)
            and event.valid_until is not None
            and (member.paid_until is None or event.valid_until > member.paid_until)
        ):
            changes["paid_until"] = event.valid_until
        if changes:
            member = self._update_member(attrs.evolve(member, **changes), pending)
            if "paid_until" in changes:
                pending.recheck.add(member.member_id)  # a paid tier may be reached now
        if hook is not None and hook in pending.listening:
            pending.notes.append((hook, {"member": member, "event": event}))
        return member

    def _in_another_group(self, event: MemberLeft, member_id: str) -> bool:
        """Whether a member leaving ``event``'s group is still in another configured
        group (then they stay a member of the community)."""
        groups = self.moderation.member_groups(member_id)
        if not groups or event.group is None:
            return False
        group = self.community.group(event.platform, event.group)
        return bool(groups - {group.key}) if group is not None else True

    @staticmethod
    def _rule_failed(name: str, event: Event, exc: Exception) -> None:
        log.error(
            "rule.failed",
            rule=name,
            event_id=event.event_id,
            platform=event.platform,
            error=f"{type(exc).__name__}: {exc}",
        )

    def _apply_decision(
        self,
        decision: Decision | None,
        event: Event | None,
        pending: _Pending,
        rule: str | None = None,
    ) -> None:
        """Apply what a rule or campaign decided; ``rule`` names the rule that did
        (its verdicts are audited), ``None`` for a campaign or the engine."""
        if decision is None or decision.empty:
            return
        if decision.state is not None:  # refused before anything of it is applied
            freeze_state(decision.state, rule or decision.source)
        at = event.at if event is not None else self.clock.now()
        if decision.spends and not self._pay(decision, at, pending):
            return
        pending.decisions.append(decision)
        for award in decision.awards:
            self._award(award, at, pending)
        for confirm in decision.confirms:
            self._settle(confirm, decision.source, at, pending)
        for cancel in decision.cancels:
            self._settle(cancel, decision.source, at, pending)
        if (
            decision.strike
            or decision.state is not None
            or decision.fallbacks
            or (rule is not None and decision.actions)
        ):
            self._moderate(decision, event, pending, rule, at)
        elif decision.actions:
            for action in decision.actions:
                self._queue_action(action, pending)
        if decision.add_tags or decision.remove_tags:
            member = None
            if decision.member is not None and decision.member in self.graph:
                member = self.graph.get(decision.member)
            elif event is not None:
                member = self._member_of(event.platform, event.user)
            if member is not None:
                tags = (member.tags | decision.add_tags) - decision.remove_tags
                if tags != member.tags:
                    self._update_member(attrs.evolve(member, tags=tags), pending)

    def _pay(self, decision: Decision, at: datetime, pending: _Pending) -> bool:
        """Take the points a decision spends, all or none; whether they were paid."""
        ledger = self.ledger
        needed: dict[str, int] = {}
        for spend in decision.spends:
            if not ledger.has_key(spend.key):
                needed[spend.member] = needed.get(spend.member, 0) + spend.points
        short = [m for m, points in needed.items() if ledger.balance(m) < points]
        if short:
            log.info(
                "decision.unpaid",
                source=decision.source,
                members=short,
                explanation=decision.explanation,
            )
            return False
        for spend in decision.spends:
            ledger.spend(spend.member, spend.points, reason=spend.reason, at=at, key=spend.key)
            pending.touched.add(spend.member)
        return True

    def _moderate(
        self,
        decision: Decision,
        event: Event | None,
        pending: _Pending,
        rule: str | None,
        at: datetime,
    ) -> None:
        """The moderation part of a decision: its state, a strike on the warning
        ladder, fallbacks for what the platform cannot do, and the audit trail."""
        moderation = self.moderation
        batch = pending.batch
        member_id = decision.member
        if member_id is None and event is not None:
            member_id = self.graph.member_id_of(event.platform, event.user)
        name = rule or decision.source.partition(":")[2] or decision.source
        if decision.state is not None and member_id is not None:
            moderation.set_state(name, member_id, decision.state, batch)
        actions = list(decision.actions)
        fallbacks = dict(decision.fallbacks)
        explanation = decision.explanation
        if decision.strike:
            if member_id is None or event is None:
                log.warning("strike.without_event", source=decision.source, member=member_id)
            else:
                more, more_fallbacks, phrase = moderation.strike(
                    member_id,
                    event,
                    decision.explanation,
                    decision.source,
                    batch,
                    self.clock.now(),
                )
                actions.extend(more)
                fallbacks.update(more_fallbacks)
                explanation = f"{explanation} ({phrase})"
        chosen, notes = choose(actions, fallbacks, self.capabilities)
        queued = []
        for action, rest in chosen:
            if self._queue_action(action, pending):
                queued.append(action)
                if rest:
                    batch.fallbacks[action.action_id] = (name, member_id, rest)
        if notes:
            explanation = f"{explanation}; " + "; ".join(notes)
        if rule is not None and (queued or notes):
            record = audit_record(
                at=at,
                kind=AuditKind.VERDICT,
                rule=rule,
                member_id=member_id,
                event=event,
                actions=queued,
                explanation=explanation,
            )
            batch.audit.append(record)

    def _award(
        self, award: AwardPoints, at: datetime, pending: _Pending, *, strict: bool = False
    ) -> None:
        self._award_to(
            award.member,
            award.points,
            award.reason,
            award.key,
            at,
            pending,
            multiply=award.multiply,
            expires_at=award.expires_at,
            pending_credit=award.pending,
            strict=strict,
        )

    def _award_to(
        self,
        member_id: str,
        points: int,
        reason: str,
        key: str,
        at: datetime,
        pending: _Pending,
        *,
        multiply: bool = True,
        expires_at: datetime | None = None,
        pending_credit: bool = False,
        strict: bool = False,
    ) -> None:
        state = self._live.get(member_id)
        if state is None and member_id not in self.graph:
            log.warning("award.unknown_member", member=member_id, key=key)
            return
        if multiply:
            tier = self._tiers[state.tier] if state is not None else self.ladder.base
            multiplier = tier.multiplier
            if multiplier != 1:
                points = self._multiplied(points, multiplier)
            if points <= 0:
                return
        if expires_at is None and self.expire_after is not None and not pending_credit:
            expires_at = at + self.expire_after  # a pending credit's counts from its confirmation
        try:
            if pending_credit:
                self.ledger.award_pending(
                    member_id,
                    points,
                    reason=reason,
                    at=at,
                    key=key,
                    expires_at=expires_at,
                )
            else:
                written = self.ledger.size
                seq = self.ledger.award_seq(
                    member_id,
                    points,
                    reason=reason,
                    at=at,
                    key=key,
                    expires_at=expires_at,
                )
                if seq >= written:  # a new credit, not a replay or a capped award
                    # what _settle_tiers would skip is not handed to it (see there)
                    if state is None or state.below_since is not None:
                        pending.touched.add(member_id)
                    else:
                        threshold = self._next_threshold.get(state.tier)
                        if (
                            threshold is not None
                            and self.ledger.lifetime_credits(member_id) >= threshold
                        ):
                            pending.touched.add(member_id)
                    if "communitykit_points_awarded" in pending.listening:
                        note = {"member_id": member_id, "entry": seq}
                        pending.notes.append(("communitykit_points_awarded", note))
        except ModelError as exc:
            if strict:
                raise
            log.warning("award.refused", member=member_id, key=key, error=str(exc))

    def _settle(
        self, order: ConfirmPoints | CancelPoints, source: str, at: datetime, pending: _Pending
    ) -> None:
        """Confirm or cancel a pending award by its key; once, and only while pending."""
        ledger = self.ledger
        verb = "confirm" if isinstance(order, ConfirmPoints) else "cancel"
        if ledger.has_key(order.key):
            return  # this very confirmation or cancellation was applied before
        found = ledger.result_for(order.award) if ledger.has_key(order.award) else None
        if found is None and isinstance(order, ConfirmPoints) and order.instead is not None:
            self._award(order.instead, at, pending)  # nothing was pending: credit it now
            return
        if not isinstance(found, Entry) or found.kind is not EntryKind.PENDING:
            log.info(
                "points.not_pending",
                source=source,
                member=order.member,
                award=order.award,
                action=verb,
                found=None if not isinstance(found, Entry) else found.kind.value,
            )
            return
        if ledger.account_of(order.member) != ledger.account_of(found.member):
            log.warning(
                "points.settle_refused",
                source=source,
                member=order.member,
                award=order.award,
                error=f"the pending award is {found.member}'s",
            )
            return
        settled = ledger.settled_by(found.entry_id)
        if settled is not None:
            log.info(
                "points.already_settled",
                source=source,
                member=order.member,
                award=order.award,
                action=verb,
                by=settled,
                reason=order.reason,
            )
            return
        try:
            if isinstance(order, ConfirmPoints):
                written = ledger.size
                expires_at = found.expires_at
                if expires_at is None and self.expire_after is not None:
                    expires_at = at + self.expire_after
                credit = ledger.confirm(found.entry_id, at=at, key=order.key, expires_at=expires_at)
                if credit is not None and ledger.size > written:
                    pending.touched.add(credit.member)
                    if "communitykit_points_awarded" in pending.listening:
                        note = {"member_id": credit.member, "entry": written}
                        pending.notes.append(("communitykit_points_awarded", note))
            else:
                ledger.cancel(found.entry_id, at=at, reason=order.reason, key=order.key)
        except ModelError as exc:
            log.warning("points.settle_refused", source=source, award=order.award, error=str(exc))

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def _multiplied(points: int, multiplier: Decimal) -> int:
        """``points`` at the tier's rate, held to the most one entry may move."""
        return min(apply_multiplier(points, multiplier), MAX_POINTS)

    def _queue_action(self, action: Action, pending: _Pending) -> bool:
        """Put ``action`` in the batch's outbox if its platform can perform it."""
        capabilities = self.capabilities.get(action.platform)
        if capabilities is None or not capabilities.can(action.TYPE):
            log.info(
                "action.unsupported",
                platform=action.platform,
                type=action.TYPE,
                source=action.source,
            )
            return False
        if isinstance(action, SendDirectMessage) and not capabilities.direct_messages:
            log.info("action.unsupported", platform=action.platform, type=action.TYPE)
            return False
        pending.batch.actions.append(action)
        if isinstance(action, Kick | Ban) and action.group is not None and action.user is not None:
            # the member is out of the group from now on (the platform's own departure
            # event, when it comes, changes nothing more)
            member_id = self.graph.member_id_of(action.platform, action.user)
            moderation = self.moderation
            if (
                member_id is not None
                and moderation.leave(
                    action.platform, action.group, member_id, self.community, pending.batch
                )
                and not moderation.member_groups(member_id)
            ):  # out of every group: gone
                member = self.graph.get(member_id)
                banned = isinstance(action, Ban)
                status = MemberStatus.BANNED if banned else MemberStatus.LEFT
                left_at = self.clock.now()
                if member.joined_at is not None and left_at < member.joined_at:
                    left_at = member.joined_at
                changed = attrs.evolve(member, status=status, left_at=left_at)
                self._update_member(changed, pending)
                self._track_stage(member_id, left_at, pending)  # lifecycle: left
        return True

    # -------------------------------------------------------------------- tiers

    def _facts(self, member_id: str, now: datetime) -> QualifyingFacts:
        member = self.graph.get(member_id)
        return QualifyingFacts(
            points=self.ledger.qualifying_points(member_id, now=now, window=self.ladder.window),
            tenure_days=member.tenure_days(now),
            # a check-in counts once it pays (the checkin campaign's reason)
            checkins=self.ledger.count_credits(
                member_id, CHECKIN_REASON, now=now, window=self.ladder.window
            ),
            paid=member.is_paid(now.astimezone(self._tz).date()),
        )

    def _settle_tiers(self, pending: _Pending, now: datetime) -> None:
        """Re-evaluate the tiers of members whose points changed, where it can matter.

        A member below no threshold they have not already reached, and not inside a
        grace period, cannot change tier by earning: every credit they ever had
        (an upper bound of their qualifying points) is under the next threshold.
        """
        touched, recheck = pending.touched, pending.recheck
        if not touched and not recheck:
            return
        live, next_threshold, ledger = self._live, self._next_threshold, self.ledger
        for member_id in sorted(touched) if len(touched) > 1 else tuple(touched):
            if member_id in recheck:
                continue
            state = live.get(member_id)
            if state is not None and state.below_since is None:
                threshold = next_threshold.get(state.tier)
                if threshold is None or ledger.lifetime_credits(member_id) < threshold:
                    continue
            self._reevaluate(member_id, now, pending)
        for member_id in sorted(recheck):
            self._reevaluate(member_id, now, pending)
        touched.clear()
        recheck.clear()

    def _reevaluate(self, member_id: str, now: datetime, pending: _Pending) -> None:
        if member_id not in self.graph:
            return
        state = self._live[member_id]
        current = self.ladder
        tier_state = current.evaluate(_tier_state(state), self._facts(member_id, now), now)
        if tier_state.tier == state.tier and tier_state.below_since == state.below_since:
            return
        old_tier = state.tier
        state.tier = tier_state.tier
        state.tier_since = tier_state.since
        state.below_since = tier_state.below_since
        pending.dirty.add(member_id)
        if tier_state.tier != old_tier:
            self._note_tier_change(member_id, old_tier, tier_state.tier, now, pending)  # analytics
            pending.notes.append(
                (
                    "communitykit_tier_changed",
                    {
                        "member_id": member_id,
                        "old_tier": old_tier,
                        "new_tier": tier_state.tier,
                        "at": now,
                    },
                )
            )
            self._title_actions(member_id, tier_state.tier, now, pending)

    def _note_tier_change(
        self, member_id: str, old: str, new: str, at: datetime, pending: _Pending
    ) -> None:
        """Keep the member's tier history (for the analytics' tier movements): the
        last changes as ``[at, old, new]`` in the rule state ``tier_history``."""
        state = self.moderation.states.get(TIER_HISTORY, {}).get(member_id, {})
        changes = [list(c) for c in state.get("changes", ())][-(TIER_HISTORY_KEEP - 1) :]
        changes.append([at.isoformat(), old, new])
        self.moderation.set_state(TIER_HISTORY, member_id, {"changes": changes}, pending.batch)

    def _title_actions(self, member_id: str, tier: str, now: datetime, pending: _Pending) -> None:
        member = self.graph.get(member_id)
        titles = self.ladder.tier(tier).titles
        titled = {p for t in self.ladder.tiers for p in t.titles}
        for identity in member.identities:
            if identity.platform not in titled:
                continue
            # a tier without a title on this platform clears the one a higher tier gave
            title = titles.get(identity.platform, "")
            for group in self.community.groups_on(identity.platform):
                action = SetTitle(
                    action_id=stable_id("title", member_id, tier, group.key, now.isoformat()),
                    platform=identity.platform,
                    group=group.group_id,
                    user=identity.user_id,
                    source="tiers",
                    reason=f"tier {tier}" + ("" if title else ": no title"),
                    title=title,
                )
                self._queue_action(action, pending)

    # ------------------------------------------------------------- lifecycle

    def stage_record(self, member_id: str) -> tuple[Stage | None, datetime | None]:
        """The stage the engine last found for the member (``None`` before any) and
        the moment of their last return (``None`` when they never came back)."""
        live = self._live.get(member_id)
        if live is None:
            return None, None
        stage = live.stage
        return (Stage(stage) if stage is not None else None), live.returned_at

    def _is_active(self, member_id: str) -> bool:
        """Whether the stage last found for the member is ``active``."""
        return self._live[member_id].stage == "active"

    def _stays(self, live: _LiveState, member_id: str, at: datetime) -> bool:
        """Whether activity at ``at``, within ``active_days`` of the member's last,
        leaves their stage as last found (what :func:`stage_of` would say then).

        ``active`` stays; ``new`` while ``at`` is inside the member's first
        ``new_days``, ``recalled`` while inside ``recalled_days`` of their return,
        and neither once they left (then their stage is ``left``).
        """
        stage = live.stage
        if stage == "active":
            return True
        if stage == "new":
            member = self.graph.get(member_id)
            joined = member.joined_at
            return (
                joined is not None
                and at - joined < self._new_span
                and member.status not in _GONE_STATUSES
            )
        if stage == "recalled":
            returned = live.returned_at
            return (
                returned is not None
                and at - returned < self._recalled_span
                and self.graph.get(member_id).status not in _GONE_STATUSES
            )
        return False

    def _load_stages(self) -> None:
        """Move the stored stages out of the rule states into the members' live state
        (two fields each, where a rule state would be a mapping per member)."""
        stored = self.moderation.states.pop(LIFECYCLE_STATE, {})
        for member_id, record in stored.items():
            live = self._live.get(member_id)
            if live is None:
                continue
            stage = record.get("stage")
            live.stage = _STAGE_VALUES.get(stage) if isinstance(stage, str) else None
            returned = record.get("returned")
            if isinstance(returned, str):
                try:
                    live.returned_at = datetime.fromisoformat(returned)
                except ValueError:
                    live.returned_at = None

    @staticmethod
    def _write_stage(member_id: str, live: _LiveState, pending: _Pending) -> None:
        record: dict[str, Any] = {"stage": live.stage}
        if live.returned_at is not None:
            record["returned"] = live.returned_at.isoformat()
        pending.batch.rule_states[(LIFECYCLE_STATE, member_id)] = MappingProxyType(record)

    def _note_return(
        self, member_id: str, last_active: datetime | None, at: datetime, pending: _Pending
    ) -> None:
        """Remember activity at ``at`` as the member's last return when it is one."""
        live = self._live[member_id]
        returned = next_return(
            joined_at=self.graph.get(member_id).joined_at,
            last_active_at=last_active,
            returned_at=live.returned_at,
            activity_at=at,
            settings=self.lifecycle,
        )
        if returned != live.returned_at:
            live.returned_at = returned
            self._write_stage(member_id, live, pending)

    def _track_stage(self, member_id: str, at: datetime, pending: _Pending) -> None:
        """Keep the member's stage at ``at``; when it changed, store it and tell the
        hook and the campaigns that watch stage changes."""
        live = self._live.get(member_id)
        if live is None:  # a member without any state: nothing known to track
            return
        member = self.graph.get(member_id)
        stage = stage_of(
            now=at,
            joined_at=member.joined_at,
            status=member.status,
            last_active_at=live.last_active_at,
            returned_at=live.returned_at,
            settings=self.lifecycle,
        )
        old = live.stage
        if old == stage.value:
            return
        live.stage = stage.value
        self._write_stage(member_id, live, pending)
        previous = Stage(old) if old is not None else None
        if "communitykit_stage_changed" in pending.listening:
            note = {"member": member, "old": previous, "new": stage, "at": at}
            pending.notes.append(("communitykit_stage_changed", note))
        for campaign in self._stage_watchers:
            try:
                decision = campaign.on_stage_changed(  # type: ignore[attr-defined]
                    self._tick(at, at), member, previous, stage
                )
            except Exception as exc:  # a broken campaign must not stop the community
                log.error(
                    "campaign.failed", campaign=campaign.name, error=f"{type(exc).__name__}: {exc}"
                )
                continue
            if decision is not None:
                try:
                    self._apply_decision(decision, None, pending)
                except ModelError as exc:
                    log.error("campaign.failed", campaign=campaign.name, error=str(exc))

    def _sweep_stages(self, moment: datetime, pending: _Pending) -> None:
        """The daily sweep: every member's stage at ``moment`` (changes by time alone).

        Members whose stage time alone cannot have changed are passed over:
        ``churned`` and ``left`` stay; ``silent`` only churns, ``active`` only
        lapses, ``new`` only ends; everything else is found in full.
        """
        settings = self.lifecycle
        active_span = self._active_span
        churned_span = timedelta(days=settings.churned_days)
        new_span = timedelta(days=settings.new_days)
        live_of = self._live
        for member in list(self.graph):
            live = live_of.get(member.member_id)
            if live is None:
                continue
            stage = live.stage
            if stage == "churned" or stage == "left":
                continue
            if stage == "silent":
                since = live.last_active_at or member.joined_at
                if since is None or moment - since <= churned_span:
                    continue
            elif stage == "active":
                last = live.last_active_at
                if last is not None and moment - last <= active_span:
                    continue
            elif stage == "new":
                joined = member.joined_at
                if joined is not None and moment - joined < new_span:
                    continue
            self._track_stage(member.member_id, moment, pending)

    # --------------------------------------------------------------- scheduling

    def next_due(self) -> datetime | None:
        """The next moment scheduled work is due (expiry, the daily tier review, campaigns)."""
        moments = [self._next_review()]
        expiry = self.ledger.next_expiry()
        if expiry is not None:
            moments.append(expiry)
        for campaign in self.campaigns:
            moment = self._campaign_next_run(campaign, self.clock.now())
            if moment is not None:
                moments.append(moment)
        if self.scheduled_rules:
            tick = self._tick(self.clock.now())
            for rule in self.scheduled_rules:
                moment = self._rule_next_run(rule, tick)
                if moment is not None:
                    moments.append(moment)
        return min(moments)

    def _tick(self, now: datetime, moment: datetime | None = None) -> TickContext:
        return TickContext(
            now=now,
            moment=moment,
            community=self.community,
            capabilities=self.capabilities,
            source=EngineTickSource(self),
        )

    def _in_scope(self, action: Action, scope: RuleScope) -> bool:
        """Whether an action of a scheduled rule is in a group its scope covers
        (an action outside any group, a direct message, always is)."""
        if action.group is None:
            return True
        group = self.community.group(action.platform, action.group)
        return scope.covers(None if group is None else group.key)

    def _campaign_next_run(self, campaign: Campaign, now: datetime) -> datetime | None:
        """A campaign's next moment; a ``next_run`` with a second parameter also
        gets a :class:`TickContext` (to find its moment in what it remembers)."""
        after = self._last_run(f"campaign:{campaign.name}")
        takes_tick = self._takes_tick.get(campaign.name)
        if takes_tick is None:
            try:
                takes_tick = len(inspect.signature(campaign.next_run).parameters) >= 2
            except (TypeError, ValueError):
                takes_tick = False
            self._takes_tick[campaign.name] = takes_tick
        try:
            if takes_tick:
                moment: datetime | None = campaign.next_run(after, self._tick(now))  # type: ignore[call-arg]
            else:
                moment = campaign.next_run(after)
        except Exception as exc:
            log.error(
                "campaign.failed", campaign=campaign.name, error=f"{type(exc).__name__}: {exc}"
            )
            return None
        return moment

    def _rule_next_run(self, rule: Rule, tick: TickContext) -> datetime | None:
        try:
            moment: datetime | None = getattr(rule, "next_run")(  # noqa: B009 - optional
                self._last_run(f"rule:{rule.name}"), tick
            )
        except Exception as exc:
            log.error("rule.failed", rule=rule.name, error=f"{type(exc).__name__}: {exc}")
            return None
        return moment

    def _run_rule(self, rule: Rule, moment: datetime, pending: _Pending) -> None:
        """A scheduled rule's work at ``moment``; its decisions about exempt members
        (by the rule's scope) are dropped."""
        try:
            tick = self._tick(self.clock.now(), moment)
            decisions = list(getattr(rule, "on_schedule")(tick))  # noqa: B009
        except Exception as exc:
            log.error("rule.failed", rule=rule.name, error=f"{type(exc).__name__}: {exc}")
            decisions = []
        scope = self.moderation.scopes.get(rule.name)
        today = moment.astimezone(self._tz).date()
        for decision in decisions:
            member_id = decision.member
            if scope is not None and member_id is not None and member_id in self.graph:
                state = self._live.get(member_id)
                tier = state.tier if state is not None else self.ladder.base.name
                if scope.exemption(self.graph.get(member_id), tier, today) is not None:
                    # nothing is done to an exempt member; what the rule remembers is kept
                    if decision.state is None:
                        continue
                    decision = attrs.evolve(decision, actions=(), fallbacks={}, strike=False)
            if scope is not None and scope.groups and (decision.actions or decision.fallbacks):
                kept = tuple(a for a in decision.actions if self._in_scope(a, scope))
                fallbacks = {
                    key: tuple(a for a in chain if self._in_scope(a, scope))
                    for key, chain in decision.fallbacks.items()
                }
                if not kept and decision.state is None:
                    continue
                decision = attrs.evolve(decision, actions=kept, fallbacks=fallbacks)
            try:
                self._apply_decision(decision, None, pending, rule.name)
            except ModelError as exc:  # a bad decision: the rule's, not the community's
                log.error("rule.failed", rule=rule.name, error=str(exc))
                continue

    async def run_due(self) -> int:
        """Run every piece of scheduled work due at the clock's time; returns how many ran.

        In a simulation, call it each time the clock moves (``advance_to`` does).
        """
        ran = 0
        now = self.clock.now()
        async with self._lock:
            pending = self._pending(now)
            try:
                expiry = self.ledger.next_expiry()
                if expiry is not None and expiry <= now:
                    self.ledger.expire(now)
                    ran += 1
                review = self._next_review()
                if review <= now:
                    self._review_tiers(review, pending)
                    self._sweep_stages(review, pending)  # lifecycle: what time alone changes
                    self.moderation.prune(review)
                    pending.batch.meta["schedule:tier_review"] = review.isoformat()
                    ran += 1
                for campaign in self.campaigns:
                    key = f"campaign:{campaign.name}"
                    moment = self._campaign_next_run(campaign, now)
                    if moment is None or moment > now:
                        continue
                    tick = self._tick(now, moment)  # a late run knows it is late
                    try:
                        decisions = list(campaign.on_schedule(tick))
                    except Exception as exc:
                        log.error("campaign.failed", campaign=campaign.name, error=repr(exc))
                        decisions = []
                    for decision in decisions:
                        self._apply_decision(decision, None, pending)
                    pending.batch.meta[f"schedule:{key}"] = moment.isoformat()
                    ran += 1
                if self.scheduled_rules:
                    tick = self._tick(now)
                    for rule in self.scheduled_rules:
                        moment = self._rule_next_run(rule, tick)
                        if moment is None or moment > now:
                            continue
                        self._run_rule(rule, moment, pending)
                        pending.batch.meta[f"schedule:rule:{rule.name}"] = moment.isoformat()
                        ran += 1
                self._settle_tiers(pending, now)
            except BaseException:
                self.load()
                raise
            entries = self._commit(pending)
            await self._notifying.acquire()
        await self._notify(pending, entries)
        return ran

    async def advance_to(self, moment: datetime, set_clock: Callable[[datetime], None]) -> int:
        """Run all scheduled work due up to ``moment``, each at its own time (simulation)."""
        ran = 0
        while True:
            due = self.next_due()
            if due is None or due > moment:
                break
            set_clock(due)
            done = await self.run_due()
            ran += done
            if done == 0 or self.next_due() == due:  # a schedule that does not move on
                if done:
                    log.error("schedule.stuck", at=due.isoformat())
                break
        set_clock(moment)
        return ran

    def _last_run(self, key: str) -> datetime | None:
        return self._last_runs.get(key)

    def _next_review(self) -> datetime:
        last = self._last_runs.get("tier_review") or self.clock.now()
        local = last.astimezone(self._tz)
        next_day = local.date() + timedelta(days=1)
        return datetime(next_day.year, next_day.month, next_day.day, tzinfo=self._tz)

    def _review_tiers(self, now: datetime, pending: _Pending) -> None:
        """The daily review: grace periods, points leaving the window, and criteria
        that change with time alone (tenure reached, paid membership ended)."""
        base = self.ladder.base.name
        rolling = self.ladder.window is not None
        timed = any(t.min_tenure_days or t.requires_paid for t in self.ladder.tiers)
        for member_id, state in list(self._live.items()):
            if timed or state.below_since is not None or (rolling and state.tier != base):
                self._reevaluate(member_id, now, pending)

    # ---------------------------------------------------------------- operators

    async def award_points(
        self, member_id: str, points: int, *, reason: str, key: str, multiply: bool = False
    ) -> Entry | None:
        """An operator's award (``communitykit points award``); same rules as any award."""
        self.graph.get(member_id)
        now = self.clock.now()
        async with self._lock:
            pending = self._pending(now)
            before = len(self.ledger)
            try:
                self._award(
                    AwardPoints(
                        member=member_id, points=points, reason=reason, key=key, multiply=multiply
                    ),
                    now,
                    pending,
                    strict=True,  # an operator hears why, e.g. a key used for another award
                )
                self._settle_tiers(pending, now)
            except BaseException:
                self.load()
                raise
            entries = self._commit(pending)
            await self._notifying.acquire()
        await self._notify(pending, entries)
        if len(self.ledger) > before:
            return self.ledger.entry_at(before)
        result = self.ledger.result_for(key) if self.ledger.has_key(key) else None
        return result if isinstance(result, Entry) else None

    async def spend_points(
        self, member_id: str, points: int, *, reason: str, key: str
    ) -> tuple[Entry, ...]:
        """Debit points (a reward shop, a make-up card); raises InsufficientPoints."""
        self.graph.get(member_id)
        now = self.clock.now()
        async with self._lock:
            pending = self._pending(now)
            entries = self.ledger.spend(member_id, points, reason=reason, at=now, key=key)
            self._commit(pending)
        return entries

    async def move_group(self, platform: str, old_id: str, new_id: str) -> None:
        """Record that a group's platform id changed (kept across restarts)."""
        async with self._lock:
            if (platform, old_id, new_id) in self._moved_groups:
                return
            moves = [*self._moved_groups, (platform, old_id, new_id)]
            self.store.commit(Batch(meta={_MOVED_GROUPS: json.dumps(moves)}))
            self._moved_groups = moves
            self._apply_group_move(platform, old_id, new_id)
            log.info("group.moved", platform=platform, old_id=old_id, new_id=new_id)

    def _apply_group_move(self, platform: str, old_id: str, new_id: str) -> None:
        if self.community.group(platform, old_id) is not None:
            self.community = self.community.with_group_id_changed(platform, old_id, new_id)

    # --------------------------------------------------------------- moderation

    async def fall_back(self, action: Action, reason: str) -> Action | None:
        """``action`` failed for good: queue what its rule said to do instead, if
        anything, and write the fallback to the audit trail. Returns the action
        queued. Taking the same fallback twice (a restart between this and marking
        the action failed) queues nothing new."""
        async with self._lock:
            if isinstance(action, Kick | Ban):
                self._kick_failed(action)
            found = self.store.fallbacks_of(action.action_id)
            if found is None:
                return None
            rule, member_id, chain = found
            now = self.clock.now()
            pending = self._pending(now)
            chosen, notes = choose(chain[:1], {chain[0].action_id: chain[1:]}, self.capabilities)
            if not chosen:
                return None
            instead, rest = chosen[0]
            if self.store.known_actions([instead.action_id]):
                return None
            self._queue_action(instead, pending)
            if rest:
                pending.batch.fallbacks[instead.action_id] = (rule, member_id, rest)
            what = action.TYPE.replace("_", " ")
            explanation = f"{what} could not be performed ({reason}); {instead.TYPE} instead"
            if notes:
                explanation += "; " + "; ".join(notes)
            pending.batch.audit.append(
                audit_record(
                    at=now,
                    kind=AuditKind.FALLBACK,
                    rule=rule,
                    member_id=member_id,
                    event=None,
                    actions=(instead,),
                    explanation=explanation,
                )
            )
            entries = self._commit(pending)
            await self._notifying.acquire()
        await self._notify(pending, entries)
        return instead

    async def action_delivered(self, action: Action, receipt: Receipt) -> None:
        """An invite link created for a member is theirs from now on (entry rules
        accept a member's invite; campaigns attribute newcomers to it)."""
        if not isinstance(action, CreateInviteLink) or action.user is None or not receipt.detail:
            return
        member_id = self.graph.member_id_of(action.platform, action.user)
        if member_id is not None and (
            self.moderation.invite_owner(action.platform, receipt.detail) != member_id
        ):
            await self.register_invite(action.platform, receipt.detail, member_id)

    def _kick_failed(self, action: Kick | Ban) -> None:
        """A removal the platform refused: the member is in the group after all."""
        member_id = self.graph.member_id_of(action.platform, action.user or "")
        group = (
            None if action.group is None else self.community.group(action.platform, action.group)
        )
        if member_id is None or group is None:
            return
        if group.key in self.moderation.member_groups(member_id):
            return
        now = self.clock.now()
        pending = self._pending(now)
        self.moderation.rejoin(group.key, member_id, now, pending.batch)
        member = self.graph.get(member_id)
        if member.status in (MemberStatus.LEFT, MemberStatus.BANNED):
            changed = attrs.evolve(member, status=MemberStatus.ACTIVE, left_at=None)
            self._update_member(changed, pending)
        self._commit(pending)

    def warnings(self, member_id: str) -> int:
        """How many warnings of the member are active now."""
        return len(self.moderation.warnings(member_id, self.clock.now()))

    async def pardon(self, member_id: str, *, by: str = "operator", note: str = "") -> int:
        """Clear the member's warnings (audited); returns how many were active."""
        async with self._lock:
            if member_id not in self.graph:
                raise ModelError(f"no member {member_id!r}")
            now = self.clock.now()
            active = len(self.moderation.warnings(member_id, now))
            pending = self._pending(now)
            self.moderation.pardon(member_id, pending.batch)
            explanation = f"pardoned by {by}: {active} active warning(s) cleared"
            if note:
                explanation += f" ({note})"
            pending.batch.audit.append(
                audit_record(
                    at=now,
                    kind=AuditKind.PARDON,
                    rule=LADDER,
                    member_id=member_id,
                    event=None,
                    actions=(),
                    explanation=explanation,
                )
            )
            entries = self._commit(pending)
            await self._notifying.acquire()
        await self._notify(pending, entries)
        return active

    async def set_role(self, member_id: str, role: Role) -> Member:
        """Make a member an owner, admin, KOL or plain member (rules exempt staff)."""
        async with self._lock:
            if member_id not in self.graph:
                raise ModelError(f"no member {member_id!r}")
            pending = self._pending(self.clock.now())
            member = self.graph.get(member_id)
            if member.role is not role:
                member = self._update_member(attrs.evolve(member, role=role), pending)
            self._commit(pending)
            return member

    async def retag(
        self,
        member_id: str,
        *,
        add: frozenset[str] = frozenset(),
        remove: frozenset[str] = frozenset(),
    ) -> Member:
        """Add and remove tags of a member (an operator's decision)."""
        async with self._lock:
            if member_id not in self.graph:
                raise ModelError(f"no member {member_id!r}")
            pending = self._pending(self.clock.now())
            member = self.graph.get(member_id)
            tags = (member.tags | add) - remove
            if tags != member.tags:
                member = self._update_member(attrs.evolve(member, tags=tags), pending)
            self._commit(pending)
            return member

    async def register_invite(self, platform: str, invite: str, member_id: str) -> None:
        """Record that an invite link or code belongs to a member (entry rules accept
        a valid member invite; referral campaigns attribute newcomers)."""
        async with self._lock:
            if member_id not in self.graph:
                raise ModelError(f"no member {member_id!r}")
            pending = self._pending(self.clock.now())
            self.moderation.register_invite(platform, invite, member_id, pending.batch)
            self._commit(pending)

    async def queue_actions(self, actions: Sequence[Action], *, chunk: int = 5000) -> int:
        """Put actions decided outside any event (a broadcast) in the outbox.

        Actions already in the outbox (by id) are left alone, so queuing the same
        actions again only adds what is missing. Returns how many were added.
        """
        added = 0
        async with self._lock:
            for start in range(0, len(actions), chunk):
                part = actions[start : start + chunk]
                known = self.store.known_actions([a.action_id for a in part])
                pending = self._pending(self.clock.now())
                for action in part:
                    if action.action_id not in known:
                        self._queue_action(action, pending)
                added += len(pending.batch.actions)
                self._commit(pending)
        return added

    async def import_members(
        self, members: Sequence[Member], provenance: LinkProvenance
    ) -> tuple[int, int]:
        """Add members no one knows yet; returns (added, already known).

        A member any of whose identities is already known is skipped, so importing
        the same file twice changes nothing. All of it is one transaction.
        """
        now = self.clock.now()
        added = skipped = 0
        async with self._lock:
            pending = self._pending(now)
            try:
                for member in members:
                    if any(self.graph.find(i) is not None for i in member.identities):
                        skipped += 1
                        continue
                    self.graph.add(member, provenance)
                    pending.batch.members[member.member_id] = member
                    joined = member.joined_at or now
                    state = MemberState(
                        member_id=member.member_id, tier=self.ladder.base.name, tier_since=joined
                    )
                    self._live[member.member_id] = _LiveState(state)
                    pending.dirty.add(member.member_id)
                    added += 1
            except CommunityKitError:
                self.load()
                raise
            self._commit(pending)
        return added, skipped


def unusable(event: Event) -> str | None:
    """Why the engine refuses an event outright, if it does: completes "the event
    has ..." (no platform, no id, no user, or a time outside 1970-2200)."""
    if not event.platform:
        return "no platform"
    if not event.event_id:
        return "no event id: it could not be recognised if delivered again"
    if not event.user:
        return "no user"
    if not _EARLIEST <= event.at <= _LATEST:
        return f"a time ({event.at.isoformat()}) outside 1970-2200"
    return None


_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _tier_state(state: _LiveState) -> TierState:
    return TierState(tier=state.tier, since=state.tier_since, below_since=state.below_since)


# ------------------------------------------------------------------------ dispatch


#: How the outbox's error of an action whose target is unreachable begins.
UNREACHABLE = "unreachable: "

#: The ``source`` prefix of actions a broadcast decided: bulk work, delivered behind
#: everything else (replies, moderation) and never in its way.
BULK_SOURCE_PREFIX = "broadcast:"


def is_bulk(action: Action) -> bool:
    """Whether ``action`` is bulk work (part of a broadcast); adapters pace it lower."""
    return action.source.startswith(BULK_SOURCE_PREFIX)


def lane_of(action: Action) -> tuple[str, str]:
    """The queue an action is delivered in: its chat, or the member for a direct message.

    Actions of one lane are delivered one after another, in the order they were
    decided; lanes are delivered side by side.
    """
    if isinstance(action, SendDirectMessage) or action.group is None:
        return (action.platform, f"user:{action.user}")
    return (action.platform, f"group:{action.group}")


class Dispatcher:
    """Delivers the outbox through the adapters, with retries.

    Each lane (a chat, or one member's direct messages) is delivered in order;
    up to ``concurrency`` lanes are delivered at once, so the adapters' own pacing
    (``communitykit.http``), not a round trip at a time, sets the pace. Bulk lanes
    (:func:`is_bulk`) have ``concurrency`` slots of their own: an action decided
    while a broadcast is being delivered never waits for a broadcast's slot.
    """

    def __init__(
        self,
        *,
        store: Store,
        adapters: Mapping[str, Adapter],
        plugins: Plugins,
        clock: Clock,
        max_attempts: int = 8,
        max_backoff: float = 300.0,
        concurrency: int = 64,
        fallback: Callable[[Action, str], Awaitable[object]] | None = None,
        delivered: Callable[[Action, Receipt], Awaitable[object]] | None = None,
    ) -> None:
        self.store = store
        #: called with an action that failed for good, before it is marked failed
        #: (the engine queues what its rule said to do instead)
        self.fallback = fallback
        #: called with each action delivered and its receipt (the engine records the
        #: invite links it created for members)
        self.delivered = delivered
        self.adapters = dict(adapters)
        self.plugins = plugins
        self.clock = clock
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        self.concurrency = concurrency
        self._wake = asyncio.Event()
        self._inflight: set[str] = set()  # ids of actions taken for delivery
        self._lanes: dict[tuple[str, str], collections.deque[OutboxItem]] = {}
        self._workers: dict[tuple[str, str], asyncio.Task[None]] = {}
        # lanes whose head was rescheduled: its seq; later actions of the lane wait for it
        self._held: dict[tuple[str, str], int] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._bulk_slots = asyncio.Semaphore(concurrency)
        self._idle = asyncio.Event()
        self._idle.set()

    def wake(self) -> None:
        """New actions are in the outbox."""
        self._wake.set()

    def backoff(self, action_id: str, attempts: int) -> float:
        """Seconds before the next attempt: exponential, with a jitter that a replay repeats."""
        jitter = random.Random(f"{action_id}:{attempts}").uniform(0.5, 1.0)
        return min(self.max_backoff, float(2**attempts)) * jitter

    def _take_due(self, limit: int) -> int:
        """Queue the due actions not already taken; returns how many were taken.

        Actions of a lane whose head waits for a retry are skipped; the window of
        due actions grows until ``limit`` are taken or none are left, so one held
        lane with many actions behind it never keeps the other lanes waiting.
        """
        taken = 0
        seen: set[str] = set()
        window = limit + len(self._inflight)
        now = self.clock.now()
        while True:
            items = self.store.due_actions(now, window)
            for item in items:
                action_id = item.action.action_id
                if action_id in self._inflight or action_id in seen:
                    continue
                seen.add(action_id)
                lane = lane_of(item.action)
                held = self._held.get(lane)
                if held is not None:
                    if item.seq > held:
                        continue  # an earlier action of its lane waits for a retry
                    del self._held[lane]  # the held action is due again; the rest follow it
                self._inflight.add(action_id)
                self._lanes.setdefault(lane, collections.deque()).append(item)
                if lane not in self._workers:
                    worker = asyncio.ensure_future(self._work(lane))
                    worker.add_done_callback(functools.partial(self._lane_done, lane))
                    self._workers[lane] = worker
                    self._idle.clear()
                taken += 1
                if taken >= limit:
                    return taken
            if len(items) < window:
                return taken
            window *= 2

    async def _work(self, lane: tuple[str, str]) -> None:
        queue = self._lanes[lane]
        async with self._bulk_slots if is_bulk(queue[0].action) else self._slots:
            while queue:
                item = queue[0]
                try:
                    delivered = await self._deliver(item)
                finally:
                    queue.popleft()
                    self._inflight.discard(item.action.action_id)
                if not delivered:  # rescheduled: what follows in the lane waits too
                    self._held[lane] = item.seq
                    for later in queue:
                        self._inflight.discard(later.action.action_id)
                    queue.clear()

    def _lane_done(self, lane: tuple[str, str], worker: asyncio.Future[None]) -> None:
        """A lane's worker ended (done, failed, or cancelled before it even ran)."""
        for item in self._lanes.pop(lane, ()):
            self._inflight.discard(item.action.action_id)  # taken again next round
        if self._workers.get(lane) is worker:
            del self._workers[lane]
        if not worker.cancelled() and worker.exception() is not None:
            log.error("dispatch.lane_failed", lane=lane[1], error=repr(worker.exception()))
        if not self._workers:
            self._idle.set()

    async def deliver_due(self, limit: int = 500) -> int:
        """Deliver what is due now; returns how many actions were attempted."""
        taken = self._take_due(limit)
        await self._idle.wait()
        return taken

    async def drain(self, *, until: datetime | None = None) -> int:
        """Deliver until nothing is due at the clock's time (or ``until``)."""
        total = 0
        while True:
            done = await self.deliver_due()
            total += done
            if done == 0:
                return total
            if until is not None and self.clock.now() >= until:
                return total

    async def _deliver(self, item: OutboxItem) -> bool:
        """Attempt one action; False when it was rescheduled (its lane pauses)."""
        action = item.action
        adapter = self.adapters.get(action.platform)
        now = self.clock.now()
        if adapter is None:
            reason = f"no adapter for platform {action.platform!r} is running"
            self.store.reschedule(action.action_id, reason, now + timedelta(seconds=60))
            log.warning("action.no_adapter", action_id=action.action_id, platform=action.platform)
            return False
        if not adapter.capabilities.can(action.TYPE):
            reason = f"{action.platform} cannot perform {action.TYPE}"
            await self._fall_back(action, reason)
            self.store.mark_failed(action.action_id, reason, now)
            await self.plugins.notify(
                "communitykit_action_failed", action=action, reason=reason, permanent=True
            )
            return True
        try:
            receipt = await adapter.perform(action)
        except PermanentFailure as exc:
            reason = f"{UNREACHABLE}{exc.reason}" if exc.unreachable else exc.reason
            await self._fall_back(action, exc.reason)
            self.store.mark_failed(action.action_id, reason, self.clock.now())
            log.info("action.failed", action_id=action.action_id, reason=reason)
            await self.plugins.notify(
                "communitykit_action_failed", action=action, reason=reason, permanent=True
            )
            return True
        except Exception as exc:
            reason = exc.reason if isinstance(exc, TransientFailure) else f"{type(exc).__name__}"
            retry_after = exc.retry_after if isinstance(exc, TransientFailure) else None
            return await self._retry_later(item, reason, retry_after)
        self.store.mark_delivered(action.action_id, receipt.platform_message_id, self.clock.now())
        if self.delivered is not None:
            try:
                await self.delivered(action, receipt)
            except Exception as exc:  # the delivery itself is recorded
                log.error(
                    "action.after_delivery_failed",
                    action_id=action.action_id,
                    error=f"{type(exc).__name__}: {exc}",
                )
        await self.plugins.notify("communitykit_action_delivered", action=action, receipt=receipt)
        return True

    async def _fall_back(self, action: Action, reason: str) -> None:
        if self.fallback is None:
            return
        try:
            await self.fallback(action, reason)
        except Exception as exc:  # the failure itself is still recorded
            log.error(
                "action.fallback_failed",
                action_id=action.action_id,
                error=f"{type(exc).__name__}: {exc}",
            )

    async def _retry_later(self, item: OutboxItem, reason: str, retry_after: float | None) -> bool:
        action = item.action
        attempts = item.attempts + 1
        permanent = attempts >= self.max_attempts
        now = self.clock.now()
        if permanent:
            await self._fall_back(action, reason)
            self.store.mark_failed(
                action.action_id, f"{reason} (gave up after {attempts} attempts)", now
            )
        else:
            delay = (
                retry_after if retry_after is not None else self.backoff(action.action_id, attempts)
            )
            self.store.reschedule(action.action_id, reason, now + timedelta(seconds=delay))
        log.info(
            "action.retry" if not permanent else "action.failed",
            action_id=action.action_id,
            attempts=attempts,
            reason=reason,
        )
        await self.plugins.notify(
            "communitykit_action_failed", action=action, reason=reason, permanent=permanent
        )
        return permanent

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set, taking actions as they fall due or are decided.

        When it stops, deliveries still running are cancelled (a drain before
        ``stop`` gives them their chance); what they did not finish stays pending.
        """
        try:
            while not stop.is_set():
                self._wake.clear()
                taken = self._take_due(500)
                due = self.store.next_due()
                timeout = 1.0
                if due is not None:
                    timeout = max(0.0, min(1.0, (due - self.clock.now()).total_seconds()))
                    if timeout == 0.0 and (self._inflight or not taken):
                        # what is due is being delivered, or waits behind a retry in
                        # its lane: look again soon, not at once
                        timeout = 0.05 if self._inflight else 0.5
                waiters = [
                    asyncio.ensure_future(self._wake.wait()),
                    asyncio.ensure_future(stop.wait()),
                ]
                try:
                    await asyncio.wait(
                        waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for waiter in waiters:
                        waiter.cancel()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Cancel deliveries still running (after a drain ran out of time)."""
        while self._workers:
            workers = list(self._workers.values())
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
