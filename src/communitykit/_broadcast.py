"""Broadcasts: one direct message to every reachable member of a segment.

A broadcast is a set of :class:`~communitykit.model.SendDirectMessage` actions
in the outbox, one per member, whose ids derive from the broadcast id and the
member. Queuing the same broadcast again adds only the actions not yet in
the outbox, so a broadcast that was interrupted resumes where it stopped and no
member ever gets it twice. The dispatcher delivers them as bulk work
(:data:`~communitykit.engine.BULK_SOURCE_PREFIX`): replies and moderation go
first.

Who gets it is a segment (see ``docs/segments.md``): the application finds its
members and hands them to :func:`plan_broadcast`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping

import attrs

from communitykit._errors import CommunityKitError
from communitykit.engine import BULK_SOURCE_PREFIX, UNREACHABLE
from communitykit.model import (
    Capabilities,
    Member,
    SendDirectMessage,
    stable_id,
)
from communitykit.store import OutboxItem, OutboxStatus

__all__ = [
    "BroadcastError",
    "BroadcastPlan",
    "BroadcastReport",
    "broadcast_id_for",
    "plan_broadcast",
    "report_broadcast",
]


class BroadcastError(CommunityKitError):
    """A broadcast that cannot be planned (an unknown segment, no platform to send on)."""


def broadcast_id_for(segment: str, text: str, platform: str | None) -> str:
    """The id of a broadcast when none is given: the same command gives the same id."""
    digest = hashlib.blake2b(
        "\x1f".join((segment, platform or "*", text)).encode(), digest_size=6
    ).hexdigest()
    return f"b-{digest}"


@attrs.frozen(kw_only=True)
class BroadcastPlan:
    """The actions of one broadcast, and the members it cannot reach at all."""

    broadcast_id: str
    actions: tuple[SendDirectMessage, ...]
    members: int  # in the segment
    without_platform: int  # members with no identity on a platform that can message them

    @property
    def source(self) -> str:
        return f"{BULK_SOURCE_PREFIX}{self.broadcast_id}"


def plan_broadcast(
    *,
    broadcast_id: str,
    text: str,
    members: Iterable[Member],
    capabilities: Mapping[str, Capabilities],
    platform: str | None = None,
) -> BroadcastPlan:
    """One direct message per member, on ``platform`` or on each platform that allows it.

    A member with identities on several platforms gets the message once, on the
    first of them (platform names in alphabetical order) that can carry it.
    """
    if not text.strip():
        raise BroadcastError("a broadcast needs a text")
    usable = sorted(
        name
        for name, caps in capabilities.items()
        if caps.direct_messages and caps.can(SendDirectMessage.TYPE)
    )
    if platform is not None:
        if platform not in capabilities:
            raise BroadcastError(f"no platform {platform!r} is configured")
        if platform not in usable:
            raise BroadcastError(f"{platform} does not let a bot message members directly")
        usable = [platform]
    if not usable:
        raise BroadcastError("no configured platform lets a bot message members directly")
    source = f"{BULK_SOURCE_PREFIX}{broadcast_id}"
    actions: list[SendDirectMessage] = []
    count = without = 0
    for member in members:
        count += 1
        identity = next(
            (i for name in usable for i in member.identities if i.platform == name), None
        )
        if identity is None:
            without += 1
            continue
        actions.append(
            SendDirectMessage(
                # from the member, not the identity: resuming with other platforms
                # configured never messages a member twice
                action_id=stable_id("broadcast", broadcast_id, member.member_id),
                platform=identity.platform,
                user=identity.user_id,
                source=source,
                reason=f"broadcast {broadcast_id}",
                text=text,
            )
        )
    return BroadcastPlan(
        broadcast_id=broadcast_id,
        actions=tuple(actions),
        members=count,
        without_platform=without,
    )


@attrs.frozen(kw_only=True)
class BroadcastReport:
    """Where a broadcast stands, from the outbox."""

    broadcast_id: str
    total: int
    delivered: int
    unreachable: int
    failed: int
    pending: int
    failures: Mapping[str, int]  # reason -> how many (unreachable and failed)

    @property
    def done(self) -> bool:
        return self.pending == 0


def report_broadcast(broadcast_id: str, items: Iterable[OutboxItem]) -> BroadcastReport:
    """Count the outbox items of broadcast ``broadcast_id`` by outcome."""
    source = f"{BULK_SOURCE_PREFIX}{broadcast_id}"
    delivered = unreachable = failed = pending = 0
    failures: Counter[str] = Counter()
    for item in items:
        if item.action.source != source:
            continue
        if item.status is OutboxStatus.DELIVERED:
            delivered += 1
        elif item.status is OutboxStatus.PENDING:
            pending += 1
        else:
            error = item.error or "unknown"
            if error.startswith(UNREACHABLE):
                unreachable += 1
                failures[error.removeprefix(UNREACHABLE)] += 1
            else:
                failed += 1
                failures[error] += 1
    return BroadcastReport(
        broadcast_id=broadcast_id,
        total=delivered + unreachable + failed + pending,
        delivered=delivered,
        unreachable=unreachable,
        failed=failed,
        pending=pending,
        failures=dict(failures.most_common()),
    )
