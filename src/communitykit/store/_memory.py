"""A store in plain dictionaries and lists: for tests, demos and dry runs.

It keeps exactly the promises of a SQL store (the same checks, the same
messages, the same order of reading), so the same test suite runs on both. Its
data lives as long as the object: closing and opening it again keeps it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from communitykit.model import (
    Action,
    AuditRecord,
    Entry,
    Event,
    IdentityLink,
    Member,
    MemberState,
    PlatformIdentity,
)
from communitykit.store._common import (
    already_in_outbox,
    already_stored,
    check_batch,
    identity_taken,
    key_taken,
    not_in_outbox,
    not_open,
    not_pending,
    out_of_sequence,
    refuse,
)
from communitykit.store._protocol import Batch, OutboxItem, OutboxStatus
from communitykit.store._schema import SCHEMA_VERSION

__all__ = ["MemoryStore"]


class MemoryStore:
    """A store that keeps everything in memory (URL ``memory://``)."""

    url: str

    def __init__(self) -> None:
        self.url = "memory://"
        self._open = False
        self._events: list[Event] = []
        self._event_keys: set[tuple[str, str]] = set()
        self._members: dict[str, Member] = {}
        self._owners: dict[PlatformIdentity, str] = {}
        self._links: list[IdentityLink] = []
        self._entries: list[Entry] = []
        self._keys: dict[str, str] = {}  # idempotency key -> entry id
        self._states: dict[str, MemberState] = {}
        self._outbox: list[OutboxItem] = []
        self._positions: dict[str, int] = {}  # action id -> index in _outbox
        self._meta: dict[str, str] = {}
        self._rule_states: dict[tuple[str, str], Mapping[str, object]] = {}
        self._group_members: dict[tuple[str, str], datetime] = {}
        self._invites: dict[tuple[str, str], str] = {}
        self._audit: list[AuditRecord] = []
        self._fallbacks: dict[str, tuple[str, str | None, tuple[Action, ...]]] = {}

    def __repr__(self) -> str:
        state = "open" if self._open else "closed"
        return f"<MemoryStore events={len(self._events)} ({state})>"

    # ------------------------------------------------------------ opening and closing

    def open(self) -> None:
        self._open = True

    def close(self) -> None:
        self._open = False

    def schema_version(self) -> int:
        self._require()
        return SCHEMA_VERSION

    # ------------------------------------------------------------------ writing

    def commit(self, batch: Batch) -> None:
        """Check the whole batch, then apply it: all of it or nothing."""
        self._require()
        url = self.url
        first = check_batch(batch, url)
        if first is not None and first != len(self._entries):
            raise refuse(url, out_of_sequence(batch.entries[0].entry_id, len(self._entries)))
        event_keys = [(event.platform, event.event_id) for event in batch.events]
        if not self._event_keys.isdisjoint(event_keys):  # find the first, to name it
            for platform, event_id in event_keys:
                if (platform, event_id) in self._event_keys:
                    raise refuse(url, already_stored(platform, event_id))
        entry_keys = [entry.idempotency_key for entry in batch.entries]
        if not self._keys.keys().isdisjoint(entry_keys):
            for taken in entry_keys:
                if taken in self._keys:
                    raise refuse(url, key_taken(taken, self._keys[taken]))
        for action in batch.actions:
            if action.action_id in self._positions:
                raise refuse(url, already_in_outbox(action.action_id))
        touched = set(batch.members) | batch.removed_members
        for member in batch.members.values():
            for identity in member.identities:
                owner = self._owners.get(identity)
                if owner is not None and owner not in touched:
                    raise refuse(url, identity_taken(identity, owner))

        # Everything checked: nothing below can fail.
        self._events.extend(batch.events)
        self._event_keys.update(event_keys)
        for member_id in touched:
            old = self._members.pop(member_id, None)
            if old is not None:
                for identity in old.identities:
                    if self._owners.get(identity) == member_id:
                        del self._owners[identity]
        for member_id, member in batch.members.items():
            self._members[member_id] = member
            for identity in member.identities:
                self._owners[identity] = member_id
        self._links.extend(batch.links)
        self._entries.extend(batch.entries)
        self._keys.update(zip(entry_keys, (e.entry_id for e in batch.entries), strict=True))
        self._states.update(batch.states)
        created_at = batch.created_at
        for action in batch.actions:
            assert created_at is not None  # check_batch made sure
            self._positions[action.action_id] = len(self._outbox)
            self._outbox.append(
                OutboxItem(
                    seq=len(self._outbox) + 1,
                    action=action,
                    status=OutboxStatus.PENDING,
                    next_attempt_at=created_at,
                    created_at=created_at,
                )
            )
        self._meta.update(batch.meta)
        for key, state in batch.rule_states.items():
            if state is None:
                self._rule_states.pop(key, None)
            else:
                self._rule_states[key] = state
        for key, since in batch.group_members.items():
            if since is None:
                self._group_members.pop(key, None)
            else:
                self._group_members[key] = since
        self._invites.update(batch.invites)
        for record in batch.audit:
            self._audit.append(record.numbered(len(self._audit) + 1))
        self._fallbacks.update(batch.fallbacks)

    # ------------------------------------------------------------------ reading

    def iter_events_since(self, at: datetime) -> Iterator[Event]:
        self._require()
        return iter([event for event in self._events if event.at >= at])

    def load_rule_states(self) -> Iterator[tuple[str, str, Mapping[str, object]]]:
        self._require()
        return iter([(r, m, s) for (r, m), s in sorted(self._rule_states.items())])

    def load_group_members(self) -> Iterator[tuple[str, str, datetime]]:
        self._require()
        return iter([(g, m, since) for (g, m), since in sorted(self._group_members.items())])

    def load_invites(self) -> Iterator[tuple[str, str, str]]:
        self._require()
        return iter([(p, i, m) for (p, i), m in sorted(self._invites.items())])

    def audit_trail(
        self, *, member_id: str | None = None, rule: str | None = None
    ) -> Iterator[AuditRecord]:
        self._require()
        return iter(
            [
                record
                for record in self._audit
                if (member_id is None or record.member_id == member_id)
                and (rule is None or record.rule == rule)
            ]
        )

    def fallbacks_of(self, action_id: str) -> tuple[str, str | None, tuple[Action, ...]] | None:
        self._require()
        return self._fallbacks.get(action_id)

    def seen_events(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        self._require()
        stored = self._event_keys
        return {key for key in keys if key in stored}

    def count_events(self) -> int:
        self._require()
        return len(self._events)

    def iter_events(self) -> Iterator[Event]:
        self._require()
        return iter(list(self._events))

    def load_members(self) -> Iterator[Member]:
        """Every member not merged away, by member id."""
        self._require()
        return iter([self._members[m] for m in sorted(self._members)])

    def load_links(self) -> Iterator[IdentityLink]:
        self._require()
        return iter(list(self._links))

    def load_entries(self) -> Iterator[Entry]:
        self._require()
        return iter(list(self._entries))

    def load_states(self) -> Iterator[MemberState]:
        """Every member state, by member id."""
        self._require()
        return iter([self._states[m] for m in sorted(self._states)])

    def get_meta(self, key: str) -> str | None:
        self._require()
        return self._meta.get(key)

    # ------------------------------------------------------------------- outbox

    def known_actions(self, action_ids: Sequence[str]) -> set[str]:
        self._require()
        return {action_id for action_id in action_ids if action_id in self._positions}

    def due_actions(self, now: datetime, limit: int = 100) -> list[OutboxItem]:
        self._require()
        due: list[OutboxItem] = []
        for item in self._outbox:
            if len(due) >= limit:
                break
            if (
                item.status is OutboxStatus.PENDING
                and item.next_attempt_at is not None
                and item.next_attempt_at <= now
            ):
                due.append(item)
        return due

    def next_due(self) -> datetime | None:
        self._require()
        times = [
            item.next_attempt_at
            for item in self._outbox
            if item.status is OutboxStatus.PENDING and item.next_attempt_at is not None
        ]
        return min(times, default=None)

    def outbox(self, status: OutboxStatus | None = None) -> Iterator[OutboxItem]:
        self._require()
        wanted = None if status is None else OutboxStatus(status)
        return iter([item for item in self._outbox if wanted is None or item.status is wanted])

    def mark_delivered(self, action_id: str, receipt: str | None, at: datetime) -> None:
        self._settle(
            action_id, status=OutboxStatus.DELIVERED, receipt=receipt, next_attempt_at=None
        )

    def mark_failed(self, action_id: str, error: str, at: datetime) -> None:
        self._settle(action_id, status=OutboxStatus.FAILED, error=error, next_attempt_at=None)

    def reschedule(self, action_id: str, error: str, next_attempt_at: datetime) -> None:
        self._settle(action_id, error=error, next_attempt_at=next_attempt_at)

    def _settle(self, action_id: str, **changes: Any) -> None:
        self._require()
        position = self._positions.get(action_id)
        if position is None:
            raise not_in_outbox(self.url, action_id)
        item = self._outbox[position]
        if item.status is not OutboxStatus.PENDING:
            raise not_pending(self.url, action_id, item.status.value)
        self._outbox[position] = attrs.evolve(item, attempts=item.attempts + 1, **changes)

    # ---------------------------------------------------------------- internals

    def _require(self) -> None:
        if not self._open:
            raise not_open(self.url)
