"""The engine's moderation state: what rules remember, who is in which group, the
warning ladder, recent messages, fallbacks and the audit trail.

:class:`Moderation` belongs to an :class:`~communitykit.engine.Engine`. It keeps
its state in memory like the engine does and puts every change in the batch
being built, so it is stored in the same transaction as the event that caused it.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta, tzinfo
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import structlog

from communitykit._errors import ModelError
from communitykit.model import (
    Action,
    AuditKind,
    AuditRecord,
    Ban,
    Capabilities,
    Community,
    Event,
    Kick,
    LadderStep,
    Member,
    MemberJoined,
    MemberLeft,
    MemberState,
    MessagePosted,
    Mute,
    Recent,
    RuleScope,
    SendDirectMessage,
    Warn,
    WarningLadder,
    fingerprint,
    stable_id,
)
from communitykit.model._moderation import RECENT_LIMIT, StepKind
from communitykit.store import Batch, Store

if TYPE_CHECKING:
    from communitykit.engine import Engine

__all__ = ["LADDER", "Moderation", "freeze_state"]

log = structlog.get_logger("communitykit.moderation")

#: the name under which the warning ladder keeps a member's warnings
LADDER = "warning_ladder"
#: most messages remembered per member as already warned for (edits count once)
STRUCK_LIMIT = 50

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def freeze_state(state: Mapping[str, Any], rule: str) -> Mapping[str, Any]:
    """A private, read-only copy of a rule's state, refused unless it is plain JSON."""
    try:
        text = json.dumps(dict(state), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"rule {rule}: its state must be plain JSON values ({exc})") from None
    return MappingProxyType(json.loads(text))


class Moderation:
    """See the module documentation."""

    def __init__(
        self,
        *,
        scopes: Mapping[str, RuleScope],
        ladder: WarningLadder,
        window: timedelta,
        tz: tzinfo,
    ) -> None:
        shared: dict[RuleScope, RuleScope] = {}  # equal scopes: one object, looked up once
        self.scopes = {rule: shared.setdefault(scope, scope) for rule, scope in scopes.items()}
        self.ladder = ladder
        self.window = window
        self._tz = tz
        self.states: dict[str, dict[str, Mapping[str, Any]]] = {}  # rule -> member -> state
        self.members_of: dict[str, dict[str, datetime]] = {}  # group key -> member -> since
        self.groups_of: dict[str, set[str]] = {}  # member -> group keys
        self.invites: dict[tuple[str, str], str] = {}  # (platform, invite) -> member id
        self.recent: dict[str, collections.deque[Recent]] = {}

    # ----------------------------------------------------------------- loading

    def load(self, store: Store, now: datetime, resolve: Any) -> None:
        """Read the moderation state back; ``resolve`` maps stored member ids to the
        graph's copy (and ``None`` for members merged away)."""
        self.states = {}
        for rule, member_id, state in store.load_rule_states():
            self.states.setdefault(rule, {})[resolve(member_id) or member_id] = MappingProxyType(
                dict(state)
            )
        self.members_of = {}
        self.groups_of = {}
        for group_key, member_id, since in store.load_group_members():
            member_id = resolve(member_id) or member_id
            self.members_of.setdefault(group_key, {})[member_id] = since
            self.groups_of.setdefault(member_id, set()).add(group_key)
        self.invites = {(p, i): m for p, i, m in store.load_invites()}
        self.recent = {}

    def rebuild_recent(self, events: Sequence[tuple[str, Event]]) -> None:
        """Remember the recent messages of ``(member id, event)`` pairs, oldest first."""
        for member_id, event in events:
            if isinstance(event, MessagePosted):
                self.remember(member_id, event)

    # ----------------------------------------------------------------- queries

    def state(self, rule: str, member_id: str) -> Mapping[str, Any]:
        found = self.states.get(rule)
        if found is None:
            return _EMPTY
        return found.get(member_id, _EMPTY)

    def warnings(self, member_id: str, now: datetime) -> tuple[datetime, ...]:
        """The member's active warnings at ``now``."""
        stored = self.state(LADDER, member_id).get("warnings", ())
        return self.ladder.active([datetime.fromisoformat(w) for w in stored], now)

    def group_size(self, key: str) -> int:
        return len(self.members_of.get(key, ()))

    def member_groups(self, member_id: str) -> frozenset[str]:
        return frozenset(self.groups_of.get(member_id, ()))

    def recent_of(self, member_id: str, at: datetime) -> tuple[Recent, ...]:
        """The member's remembered messages no older than the window before ``at``."""
        found = self.recent.get(member_id)
        if not found:
            return ()
        horizon = at - self.window
        if found[0].at >= horizon:  # the usual case: all of them are recent enough
            return tuple(found)
        return tuple(r for r in found if r.at >= horizon)

    def exemption(
        self, rule: str, member: Member, tier: str, group_key: str | None, at: datetime
    ) -> str | None:
        """Why rule ``rule`` leaves this member (or this group) alone, or ``None``."""
        scope = self.scopes.get(rule)
        if scope is None:
            return None
        if not scope.covers(group_key):
            return f"group {group_key or 'outside the configured groups'} is not in its scope"
        today: date = at.astimezone(self._tz).date()
        return scope.exemption(member, tier, today)

    # ----------------------------------------------------------------- changes

    def set_state(self, rule: str, member_id: str, state: Mapping[str, Any], batch: Batch) -> None:
        by_member = self.states.setdefault(rule, {})
        if state:
            frozen = freeze_state(state, rule)
            by_member[member_id] = frozen
            batch.rule_states[(rule, member_id)] = frozen
        elif member_id in by_member:
            del by_member[member_id]
            batch.rule_states[(rule, member_id)] = None

    def membership(self, event: Event, member_id: str, community: Community, batch: Batch) -> None:
        """Follow joins and departures of configured groups."""
        if event.group is None or not isinstance(event, MemberJoined | MemberLeft):
            return
        group = community.group(event.platform, event.group)
        if group is None:
            return
        members = self.members_of.setdefault(group.key, {})
        if isinstance(event, MemberJoined):
            if member_id not in members:
                members[member_id] = event.at
                self.groups_of.setdefault(member_id, set()).add(group.key)
                batch.group_members[(group.key, member_id)] = event.at
        else:
            self.leave(event.platform, event.group, member_id, community, batch)

    def rejoin(self, group_key: str, member_id: str, since: datetime, batch: Batch) -> None:
        """The member is in the group (a removal that did not happen)."""
        self.members_of.setdefault(group_key, {})[member_id] = since
        self.groups_of.setdefault(member_id, set()).add(group_key)
        batch.group_members[(group_key, member_id)] = since

    def prune(self, now: datetime) -> None:
        """Forget the recent messages of members silent for longer than the window."""
        horizon = now - self.window
        stale = [m for m, found in self.recent.items() if not found or found[-1].at < horizon]
        for member_id in stale:
            del self.recent[member_id]

    def leave(
        self, platform: str, group_id: str, member_id: str, community: Community, batch: Batch
    ) -> bool:
        """The member is no longer in the group (left, or removed); whether they were."""
        group = community.group(platform, group_id)
        if group is None:
            return False
        members = self.members_of.get(group.key)
        if members is None or member_id not in members:
            return False
        del members[member_id]
        keys = self.groups_of.get(member_id)
        if keys is not None:
            keys.discard(group.key)
            if not keys:
                del self.groups_of[member_id]
        batch.group_members[(group.key, member_id)] = None
        return True

    def remember(self, member_id: str, event: MessagePosted) -> None:
        if not self.window:
            return
        found = self.recent.get(member_id)
        if found is None:
            found = self.recent[member_id] = collections.deque(maxlen=RECENT_LIMIT)
        entry = Recent(
            event.at, event.platform, event.group, event.message_id, fingerprint(event.text)
        )
        found.append(entry)
        horizon = event.at - self.window
        while found and found[0].at < horizon:
            found.popleft()

    def register_invite(self, platform: str, invite: str, member_id: str, batch: Batch) -> None:
        self.invites[(platform, invite)] = member_id
        batch.invites[(platform, invite)] = member_id

    def invite_owner(self, platform: str, invite: str) -> str | None:
        return self.invites.get((platform, invite))

    def pardon(self, member_id: str, batch: Batch) -> int:
        """Clear the member's warnings; how many were stored."""
        current = self.state(LADDER, member_id)
        stored = current.get("warnings", ())
        struck = current.get("struck")  # an edit of an old message still counts once
        self.set_state(LADDER, member_id, {"struck": struck} if struck else {}, batch)
        return len(stored)

    def merge(self, survivor: str, absorbed: str, batch: Batch) -> None:
        """Fold what rules remember of ``absorbed`` into ``survivor`` (a member merge)."""
        for rule, by_member in self.states.items():
            if absorbed in by_member:
                state = by_member[absorbed]
                self.set_state(rule, absorbed, {}, batch)
                if survivor not in by_member:
                    self.set_state(rule, survivor, state, batch)

    # ------------------------------------------------------------------ ladder

    def strike(
        self,
        member_id: str,
        event: Event,
        explanation: str,
        source: str,
        batch: Batch,
        now: datetime | None = None,
    ) -> tuple[list[Action], dict[str, tuple[Action, ...]], str]:
        """Count a warning: the actions of the step it reaches, their fallbacks, and
        a phrase for the audit trail. Decay is judged at the later of the event's
        time and ``now`` (a late event does not revive decayed warnings)."""
        current = self.state(LADDER, member_id)
        struck = list(current.get("struck", ()))
        message_id = getattr(event, "message_id", None)
        if message_id is not None:
            key = f"{event.platform}:{event.group}:{message_id}"
            if key in struck:  # an edit of a message already warned for counts once
                return [], {}, "already warned for this message"
            struck = [*struck, key][-STRUCK_LIMIT:]
        warnings = [datetime.fromisoformat(w) for w in current.get("warnings", ())]
        at = event.at if now is None or now <= event.at else now
        kept, index, step = self.ladder.strike(warnings, at)
        state: dict[str, Any] = {"warnings": [w.isoformat() for w in kept]}
        if struck:
            state["struck"] = struck
        self.set_state(LADDER, member_id, state, batch)
        count = len(kept)
        actions, fallbacks = ladder_actions(step, index, count, event, explanation, source)
        phrase = f"warning {count} of the ladder: {step}"
        return actions, fallbacks, phrase


def ladder_actions(
    step: LadderStep, index: int, count: int, event: Event, explanation: str, source: str
) -> tuple[list[Action], dict[str, tuple[Action, ...]]]:
    """What a ladder step does to the member of ``event``, and what to do instead
    where the platform cannot (a mute falls back to a warning, a kick to a mute,
    a ban to a kick)."""
    platform, group, user = event.platform, event.group, event.user

    def make(cls: type[Action], n: int, **fields: Any) -> Action:
        action_id = stable_id(platform, event.event_id, "ladder", cls.TYPE, str(index), str(n))
        reason = f"warning {count}: {explanation}"
        return cls(
            action_id=action_id,
            platform=platform,
            group=group,
            user=user,
            source=source,
            reason=reason,
            **fields,
        )

    warn = make(Warn, 9, count=count)
    if step.kind is StepKind.WARN or group is None:
        return [make(Warn, 0, count=count)], {}
    if step.kind is StepKind.MUTE:
        assert step.duration is not None  # a mute step always has one
        mute = make(Mute, 0, until=event.at + step.duration)
        return [mute], {mute.action_id: (warn,)}
    if step.kind is StepKind.KICK:
        kick = make(Kick, 0)
        return [kick], {kick.action_id: (make(Mute, 8, until=event.at + timedelta(days=1)), warn)}
    until = None if step.duration is None else event.at + step.duration
    ban = make(Ban, 0, until=until)
    return [ban], {ban.action_id: (make(Kick, 7), warn)}


def supported(action: Action, capabilities: Mapping[str, Capabilities]) -> bool:
    """Whether the platform of ``action`` can perform it at all."""
    found = capabilities.get(action.platform)
    if found is None or not found.can(action.TYPE):
        return False
    return not (isinstance(action, SendDirectMessage) and not found.direct_messages)


def choose(
    actions: Sequence[Action],
    fallbacks: Mapping[str, tuple[Action, ...]],
    capabilities: Mapping[str, Capabilities],
) -> tuple[list[tuple[Action, tuple[Action, ...]]], list[str]]:
    """The actions to queue, each with what to do instead later, taking the first
    one of each chain the platform can perform; and a note for each fallback taken."""
    chosen: list[tuple[Action, tuple[Action, ...]]] = []
    notes: list[str] = []
    for action in actions:
        chain = (action, *fallbacks.get(action.action_id, ()))
        for position, candidate in enumerate(chain):
            if supported(candidate, capabilities):
                chosen.append((candidate, chain[position + 1 :]))
                break
            following = chain[position + 1] if position + 1 < len(chain) else None
            notes.append(
                f"{candidate.platform} cannot {candidate.TYPE.replace('_', ' ')}"
                + (
                    f"; {following.TYPE.replace('_', ' ')} instead"
                    if following
                    else "; nothing instead"
                )
            )
    return chosen, notes


def audit_record(
    *,
    at: datetime,
    kind: AuditKind,
    rule: str,
    member_id: str | None,
    event: Event | None,
    actions: Sequence[Action],
    explanation: str,
) -> AuditRecord:
    return AuditRecord(
        at=at,
        kind=kind,
        rule=rule,
        member_id=member_id,
        event=None if event is None else f"{event.platform}:{event.event_id}",
        actions=tuple(actions),
        explanation=_shorten(explanation),
    )


#: the longest explanation kept in the audit trail (a hostile message can make a
#: rule's explanation as long as itself)
EXPLANATION_LIMIT = 2000


def _shorten(text: str) -> str:
    if len(text) <= EXPLANATION_LIMIT:
        return text
    return text[: EXPLANATION_LIMIT - 1] + "…"


class EngineTickSource:
    """What a :class:`~communitykit.TickContext` looks up, from the engine."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def members(self) -> Iterator[tuple[Member, MemberState]]:
        engine = self._engine
        live = engine._live
        for member in engine.graph:
            state = live.get(member.member_id)
            if state is not None:
                yield member, state.snapshot(member.member_id)

    def member(self, member_id: str) -> Member | None:
        graph = self._engine.graph
        return graph.get(member_id) if member_id in graph else None

    def state(self, member_id: str) -> MemberState | None:
        state = self._engine._live.get(member_id)
        return None if state is None else state.snapshot(member_id)

    def rule_states(self, name: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        found = self._engine.moderation.states.get(name, {})
        return iter(list(found.items()))

    def groups_of(self, member_id: str) -> frozenset[str]:
        return self._engine.moderation.member_groups(member_id)

    def group_size(self, key: str) -> int:
        return self._engine.moderation.group_size(key)

    def warnings(self, member_id: str) -> int:
        engine = self._engine
        return len(engine.moderation.warnings(member_id, engine.clock.now()))

    def already_awarded(self, key: str) -> bool:
        return self._engine.ledger.has_key(key)

    def segment(self, name: str, at: datetime) -> frozenset[str] | None:
        members = self._engine.segment_members
        return None if members is None else members(name, at)
