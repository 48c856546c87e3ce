"""The contract every store keeps: what the engine writes and reads back.

The engine keeps the community's working state in memory (members, ledger,
tier states) and writes every change through :meth:`Store.commit`, one
:class:`Batch` per transaction: the events of the batch, what they changed, and
the actions they decided (the outbox). Either all of a batch is stored or none
of it. On start the engine loads the state back with the ``load_*`` methods.

The dispatcher reads the outbox (:meth:`Store.due_actions`) and records each
outcome (:meth:`Store.mark_delivered`, :meth:`Store.mark_failed`,
:meth:`Store.reschedule`).

Times are timezone-aware datetimes everywhere; a store keeps the original UTC
offset of event and entry times (an event at ``+08:00`` reads back at
``+08:00``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

import attrs

from communitykit._errors import CommunityKitError
from communitykit.model import (
    Action,
    AuditRecord,
    Entry,
    Event,
    IdentityLink,
    Member,
    MemberState,
)

__all__ = ["Batch", "OutboxItem", "OutboxStatus", "Store", "StoreError"]


class StoreError(CommunityKitError):
    """The store cannot be opened, migrated or written. The message names the store URL
    with any password removed."""


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@attrs.frozen(kw_only=True)
class OutboxItem:
    """One action in the outbox, with its delivery state."""

    seq: int  # order of writing; the dispatcher delivers in this order
    action: Action
    status: OutboxStatus
    attempts: int = 0
    next_attempt_at: datetime | None = None
    created_at: datetime
    receipt: str | None = None  # the platform's message id, once delivered
    error: str | None = None  # the reason of the last failure


@attrs.define
class Batch:
    """Everything one transaction writes. Built by the engine, applied whole."""

    events: list[Event] = attrs.Factory(list)
    members: dict[str, Member] = attrs.Factory(dict)  # upserts, by member id
    removed_members: set[str] = attrs.Factory(set)  # member ids merged away
    links: list[IdentityLink] = attrs.Factory(list)  # appended to the link history
    entries: list[Entry] = attrs.Factory(list)  # new ledger entries, in ledger order
    states: dict[str, MemberState] = attrs.Factory(dict)  # upserts, by member id
    actions: list[Action] = attrs.Factory(list)  # new outbox items, in order
    created_at: datetime | None = None  # when the actions were decided (outbox created_at)
    meta: dict[str, str] = attrs.Factory(dict)  # small key/value state (schedules, cursors)
    # moderation: what rules remember per member ((rule, member id) -> state, None
    # forgets), group memberships ((group key, member id) -> since, None: left),
    # invites ((platform, invite) -> member id), the audit trail, and the actions
    # to take instead of one the platform cannot perform (action id -> in order)
    rule_states: dict[tuple[str, str], Mapping[str, object] | None] = attrs.Factory(dict)
    group_members: dict[tuple[str, str], datetime | None] = attrs.Factory(dict)
    invites: dict[tuple[str, str], str] = attrs.Factory(dict)
    audit: list[AuditRecord] = attrs.Factory(list)
    fallbacks: dict[str, tuple[str, str | None, tuple[Action, ...]]] = attrs.Factory(dict)

    def __len__(self) -> int:
        return (
            len(self.events)
            + len(self.members)
            + len(self.removed_members)
            + len(self.links)
            + len(self.entries)
            + len(self.states)
            + len(self.actions)
            + len(self.meta)
            + len(self.rule_states)
            + len(self.group_members)
            + len(self.invites)
            + len(self.audit)
            + len(self.fallbacks)
        )


@runtime_checkable
class Store(Protocol):
    """A place to keep a community. Implementations: memory, SQLite (PostgreSQL later)."""

    url: str

    def open(self) -> None:
        """Connect and create or migrate the schema to the newest version. Idempotent."""

    def close(self) -> None:
        """Release connections. Idempotent."""

    def schema_version(self) -> int:
        """The schema version the store is at (after :meth:`open`)."""

    # ------------------------------------------------------------------ writing

    def commit(self, batch: Batch) -> None:
        """Write the whole batch in one transaction, or nothing (then raise StoreError).

        An event whose ``(platform, event_id)`` is already stored, or a ledger entry
        whose idempotency key is, makes the whole commit fail with
        :class:`StoreError`: the engine checks :meth:`seen_events` first.
        """

    # ------------------------------------------------------------------ reading

    def seen_events(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these ``(platform, event_id)`` pairs are already stored."""

    def count_events(self) -> int: ...

    def iter_events(self) -> Iterator[Event]:
        """Every stored event, in the order they were committed."""

    def load_members(self) -> Iterator[Member]:
        """Every member not merged away, with their identities."""

    def load_links(self) -> Iterator[IdentityLink]:
        """The identity-link history, in order written."""

    def load_entries(self) -> Iterator[Entry]:
        """Every ledger entry, in ledger order (entry ids ``e0``, ``e1``, ...)."""

    def load_states(self) -> Iterator[MemberState]: ...

    def get_meta(self, key: str) -> str | None: ...

    def iter_events_since(self, at: datetime) -> Iterator[Event]:
        """The stored events at or after ``at``, in the order they were committed."""

    # --------------------------------------------------------------- moderation

    def load_rule_states(self) -> Iterator[tuple[str, str, Mapping[str, object]]]:
        """What every rule remembers: ``(rule, member id, state)``."""

    def load_group_members(self) -> Iterator[tuple[str, str, datetime]]:
        """Every membership of a configured group: ``(group key, member id, since)``."""

    def load_invites(self) -> Iterator[tuple[str, str, str]]:
        """Every member invite: ``(platform, invite link or code, member id)``."""

    def audit_trail(
        self, *, member_id: str | None = None, rule: str | None = None
    ) -> Iterator[AuditRecord]:
        """The audit trail, oldest first, of one member and/or one rule if given."""

    def fallbacks_of(self, action_id: str) -> tuple[str, str | None, tuple[Action, ...]] | None:
        """What to do instead of the action (the rule, the member, the actions in order)."""

    # ------------------------------------------------------------------- outbox

    def due_actions(self, now: datetime, limit: int = 100) -> list[OutboxItem]:
        """Pending actions whose next attempt is due at ``now``, oldest first."""

    def known_actions(self, action_ids: Sequence[str]) -> set[str]:
        """Which of these action ids are in the outbox already (whatever their status)."""

    def next_due(self) -> datetime | None:
        """When the earliest pending action is due (``None``: nothing pending)."""

    def outbox(self, status: OutboxStatus | None = None) -> Iterator[OutboxItem]:
        """Every outbox item (or those with ``status``), in order written."""

    def mark_delivered(self, action_id: str, receipt: str | None, at: datetime) -> None: ...

    def mark_failed(self, action_id: str, error: str, at: datetime) -> None:
        """A permanent failure: the action will not be tried again."""

    def reschedule(self, action_id: str, error: str, next_attempt_at: datetime) -> None:
        """A transient failure: count the attempt and try again at ``next_attempt_at``."""
