"""What every store shares: time encoding and the checks a batch must pass.

Both stores refuse the same batches with the same messages, so the engine sees
one behaviour whatever the store: :func:`check_batch` runs the checks that need
only the batch itself; each store then checks the batch against what it holds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from communitykit.model import PlatformIdentity
from communitykit.store._protocol import Batch, StoreError

__all__ = [
    "already_in_outbox",
    "already_stored",
    "check_batch",
    "entry_position",
    "from_us",
    "identity_taken",
    "key_taken",
    "not_in_outbox",
    "not_open",
    "not_pending",
    "out_of_sequence",
    "refuse",
    "to_us",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def to_us(at: datetime) -> int:
    """The instant ``at`` as whole microseconds since the Unix epoch (UTC)."""
    return (at - _EPOCH) // _ONE_US


def from_us(us: int) -> datetime:
    """The instant ``us`` microseconds after the Unix epoch, in UTC."""
    return _EPOCH + timedelta(microseconds=us)


def refuse(url: str, problem: str) -> StoreError:
    """The error for a batch the store refuses: nothing of it was written."""
    return StoreError(f"cannot commit to {url}: {problem}; nothing was written")


def entry_position(entry_id: str) -> int | None:
    """``n`` for an entry id ``e{n}``, ``None`` for anything else."""
    digits = entry_id[1:]
    if entry_id[:1] != "e" or not digits.isdigit() or not digits.isascii():
        return None
    if len(digits) > 1 and digits[0] == "0":
        return None
    return int(digits)


def check_batch(batch: Batch, url: str) -> int | None:
    """Check what can be checked in the batch alone; raise :class:`StoreError` if it is bad.

    Returns the position of the batch's first ledger entry (``None`` without
    entries); the store checks that it continues its own sequence.
    """
    events = batch.events
    if len({(e.platform, e.event_id) for e in events}) != len(events):
        _check_events(batch, url)  # names the event that is twice
    entries = batch.entries
    first: int | None = None
    if entries:
        first = entry_position(entries[0].entry_id)
        if (
            first is None
            or [e.entry_id for e in entries]
            != [f"e{n}" for n in range(first, first + len(entries))]
            or len({e.idempotency_key for e in entries}) != len(entries)
        ):
            first = _check_entries(batch, url)  # names what is wrong, or accepts the ids

    owners: dict[PlatformIdentity, str] = {}
    for member_id, member in batch.members.items():
        if member.member_id != member_id:
            raise refuse(url, f"member {member.member_id!r} is filed under the id {member_id!r}")
        if member_id in batch.removed_members:
            raise refuse(url, f"member {member_id!r} is both written and removed")
        for identity in member.identities:
            other = owners.setdefault(identity, member_id)
            if other != member_id:
                raise refuse(
                    url, f"identity {identity} is given to both {other!r} and {member_id!r}"
                )
    for member_id, state in batch.states.items():
        if state.member_id != member_id:
            raise refuse(
                url, f"the state of member {state.member_id!r} is filed under {member_id!r}"
            )

    if batch.actions:
        if batch.created_at is None:
            raise refuse(url, "the batch has actions but no created_at")
        if batch.created_at.utcoffset() is None:
            raise refuse(url, "created_at must be a timezone-aware datetime")
    action_ids: set[str] = set()
    for action in batch.actions:
        if action.action_id in action_ids:
            raise refuse(url, f"action {action.action_id!r} is twice in the batch")
        action_ids.add(action.action_id)
    return first


# The problems a store finds when it checks a batch against what it holds. Both
# stores word them the same way.


def already_stored(platform: str, event_id: str) -> str:
    return f"event {platform}:{event_id} is already stored (check seen_events first)"


def key_taken(key: str, entry_id: str | None) -> str:
    by = "" if entry_id is None else f" by entry {entry_id}"
    return f"idempotency key {key!r} is already used{by}"


def out_of_sequence(entry_id: str, expected: int) -> str:
    return f"ledger entry {entry_id} does not continue the stored ledger (the next is e{expected})"


def already_in_outbox(action_id: str) -> str:
    return f"action {action_id!r} is already in the outbox"


def identity_taken(identity: PlatformIdentity, owner: str) -> str:
    return (
        f"identity {identity} already belongs to member {owner!r} "
        "(write or remove that member in the same batch)"
    )


def not_open(url: str) -> StoreError:
    return StoreError(f"the store {url} is not open: call open() first")


def not_in_outbox(url: str, action_id: str) -> StoreError:
    return StoreError(f"no action {action_id!r} in the outbox of {url}")


def not_pending(url: str, action_id: str, status: str) -> StoreError:
    return StoreError(
        f"action {action_id!r} in the outbox of {url} is {status}, not pending: "
        "only a pending action can be delivered, failed or rescheduled"
    )


def _check_events(batch: Batch, url: str) -> None:
    keys: set[tuple[str, str]] = set()
    for event in batch.events:
        key = (event.platform, event.event_id)
        if key in keys:
            raise refuse(url, f"event {event.platform}:{event.event_id} is twice in the batch")
        keys.add(key)


def _check_entries(batch: Batch, url: str) -> int | None:
    first: int | None = None
    idempotency: set[str] = set()
    for index, entry in enumerate(batch.entries):
        if first is not None and entry.entry_id == f"e{first + index}":  # as entry_position
            position: int | None = first + index
        else:
            position = entry_position(entry.entry_id)
        if first is None:
            first = position
        if position is None or first is None or position != first + index:
            expected = "e<n>" if first is None else f"e{first + index}"
            raise refuse(
                url,
                f"ledger entry {entry.entry_id!r} is out of sequence (expected {expected}): "
                "entries must follow each other as e0, e1, e2, ...",
            )
        if entry.idempotency_key in idempotency:
            raise refuse(url, f"idempotency key {entry.idempotency_key!r} is twice in the batch")
        idempotency.add(entry.idempotency_key)
    return first
