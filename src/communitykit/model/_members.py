"""Members, their platform identities, and the identity graph that links them.

One person may be in the community on several platforms. Each
:class:`PlatformIdentity` (``telegram:12345``) belongs to exactly one
:class:`Member`; the :class:`IdentityGraph` records which, and how it came to
know (:class:`LinkProvenance`: a verified ``/link`` code, an operator, an
import).

Merging two members (:meth:`IdentityGraph.merge`) folds one into the other and
remembers exactly what the merge changed, so :meth:`IdentityGraph.unmerge` gives
both back as they were, keeping whatever happened to the survivor in between.
Use :func:`merge_members` / :func:`unmerge_members` to merge the ledger accounts
in the same step.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime
from enum import StrEnum
from typing import Any, NamedTuple, Self

import attrs

from communitykit._errors import InvalidOperation, ModelError, UnknownMember
from communitykit.model._ledger import Ledger
from communitykit.model._time import aware_validator

__all__ = [
    "IdentityGraph",
    "LinkMethod",
    "LinkProvenance",
    "Member",
    "MemberStatus",
    "MergeRecord",
    "PlatformIdentity",
    "Role",
    "merge_members",
    "unmerge_members",
]


class Role(StrEnum):
    """What a member is in the community, lowest first."""

    MEMBER = "member"
    KOL = "kol"
    ADMIN = "admin"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    @property
    def is_staff(self) -> bool:
        """Owners and admins: exempt from most rules."""
        return self in (Role.ADMIN, Role.OWNER)


_ROLE_RANK = {role: rank for rank, role in enumerate(Role)}


class MemberStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    LEFT = "left"
    BANNED = "banned"


class LinkMethod(StrEnum):
    """How the community learned that an identity belongs to a member."""

    JOINED = "joined"  # the identity showed up on the platform
    VERIFIED_CODE = "verified_code"  # the member proved it with a /link code
    OPERATOR = "operator"  # an operator said so
    IMPORT = "import"  # a member import


def _identity_tuple(value: Iterable[PlatformIdentity]) -> tuple[PlatformIdentity, ...]:
    return tuple(value)


def _tag_set(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):
        raise ModelError(f"tags must be a collection of strings, got the string {value!r}")
    tags = frozenset(value)
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip() or tag != tag.strip():
            raise ModelError(
                f"a tag must be a non-empty string without surrounding spaces, got {tag!r}"
            )
    return tags


def _non_empty(_instance: Any, attribute: Any, value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ModelError(f"{attribute.name} must be a non-empty string, got {value!r}")


class _IdentityFields(NamedTuple):
    platform: str
    user_id: str


class PlatformIdentity(_IdentityFields):
    """A user on one platform: ``PlatformIdentity("telegram", "12345")``.

    Immutable, ordered and hashable; it is a ``(platform, user_id)`` tuple, so a
    plain tuple finds it in a dictionary.
    """

    __slots__ = ()

    def __new__(cls, platform: str, user_id: str) -> Self:
        for name, value in (("platform", platform), ("user_id", user_id)):
            if not isinstance(value, str) or not value:
                raise ModelError(f"{name} must be a non-empty string, got {value!r}")
        return super().__new__(cls, platform, user_id)

    def __str__(self) -> str:
        return f"{self.platform}:{self.user_id}"

    @classmethod
    def parse(cls, text: str) -> PlatformIdentity:
        """Read ``"platform:user_id"`` (the user id may itself contain colons)."""
        platform, sep, user_id = text.partition(":")
        if not sep or not platform or not user_id:
            raise ModelError(f"an identity looks like 'platform:user_id', got {text!r}")
        return cls(platform, user_id)


@attrs.frozen(kw_only=True)
class LinkProvenance:
    """Why the community believes an identity belongs to a member."""

    method: LinkMethod = attrs.field(converter=LinkMethod)
    at: datetime = attrs.field(validator=aware_validator)
    by: str | None = None  # the operator or the member who linked it
    note: str = ""


def _check_identities(
    instance: Member, _attribute: Any, value: tuple[PlatformIdentity, ...]
) -> None:
    if not value:
        raise ModelError(f"member {instance.member_id!r} needs at least one platform identity")
    if len(set(value)) != len(value):
        raise ModelError(f"member {instance.member_id!r} lists an identity twice")
    for identity in value:
        if not isinstance(identity, PlatformIdentity):
            raise ModelError(f"identities must be PlatformIdentity values, got {identity!r}")


def _check_left(instance: Member, _attribute: Any, value: datetime | None) -> None:
    aware_validator(instance, _attribute, value)
    if value is not None and instance.joined_at is not None and value < instance.joined_at:
        raise ModelError(
            f"member {instance.member_id!r} cannot leave ({value.isoformat()}) "
            f"before joining ({instance.joined_at.isoformat()})"
        )


@attrs.frozen(kw_only=True)
class Member:
    """One person in the community, with every platform identity they use."""

    member_id: str = attrs.field(validator=_non_empty)
    identities: tuple[PlatformIdentity, ...] = attrs.field(
        converter=_identity_tuple, validator=_check_identities
    )
    display_name: str = ""
    joined_at: datetime | None = attrs.field(default=None, validator=aware_validator)
    left_at: datetime | None = attrs.field(default=None, validator=_check_left)
    role: Role = attrs.field(default=Role.MEMBER, converter=Role)
    status: MemberStatus = attrs.field(default=MemberStatus.ACTIVE, converter=MemberStatus)
    tags: frozenset[str] = attrs.field(default=frozenset(), converter=_tag_set)
    paid_until: date | None = None

    def is_paid(self, on: date) -> bool:
        """Whether paid membership covers the day ``on``."""
        return self.paid_until is not None and on <= self.paid_until

    def tenure_days(self, now: datetime) -> int:
        """Whole days since joining (0 when the join time is unknown or in the future)."""
        if self.joined_at is None:
            return 0
        return max(0, (now - self.joined_at).days)

    def identity_on(self, platform: str) -> PlatformIdentity | None:
        for identity in self.identities:
            if identity.platform == platform:
                return identity
        return None

    def with_tags(self, *tags: str) -> Member:
        return attrs.evolve(self, tags=self.tags | set(tags))

    def without_tags(self, *tags: str) -> Member:
        return attrs.evolve(self, tags=self.tags - set(tags))


@attrs.frozen(kw_only=True)
class MergeRecord:
    """What a merge changed, so that it can be undone exactly."""

    survivor: str
    absorbed: Member  # the absorbed member as it was just before the merge
    survivor_before: Member  # the survivor as it was just before the merge
    survivor_after: Member  # the survivor as the merge left it
    provenance: LinkProvenance


@attrs.frozen(kw_only=True)
class IdentityLink:
    """One entry of the identity graph's history."""

    identity: PlatformIdentity
    member_id: str
    provenance: LinkProvenance


_STATUS_WEIGHT = {
    MemberStatus.BANNED: 3,  # a ban on either account holds for the person
    MemberStatus.ACTIVE: 2,
    MemberStatus.PENDING: 1,
    MemberStatus.LEFT: 0,
}


def _merged_status(a: MemberStatus, b: MemberStatus) -> MemberStatus:
    return a if _STATUS_WEIGHT[a] >= _STATUS_WEIGHT[b] else b


def _merged_role(a: Role, b: Role) -> Role:
    return a if a.rank >= b.rank else b


def _later(a: date | None, b: date | None) -> date | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


class IdentityGraph:
    """Which member every platform identity belongs to, with the history of why.

    A mutable registry of immutable :class:`Member` values. Every identity belongs
    to at most one member at a time.
    """

    __slots__ = ("_by_identity", "_links", "_links_by_identity", "_members", "_merges")

    def __init__(self, members: Iterable[Member] = ()) -> None:
        self._members: dict[str, Member] = {}
        # Who owns an identity, keyed by (platform, user id) (a PlatformIdentity is
        # that tuple), for identities whose owner's id is not their own text: an
        # identity is most often its member's first and only one, and a member id
        # is its text ("telegram:12345"), so that owner is found by the id alone
        # and a million members need no entry each (see _owner).
        self._by_identity: dict[tuple[str, str], str] = {}
        self._links: list[IdentityLink] = []
        self._links_by_identity: dict[PlatformIdentity, list[IdentityLink]] = {}
        self._merges: dict[str, MergeRecord] = {}  # absorbed member id -> record
        for member in members:
            self.add(member)

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[Member]:
        return iter(self._members.values())

    def __contains__(self, member_id: object) -> bool:
        return member_id in self._members

    def __repr__(self) -> str:
        return f"<IdentityGraph members={len(self._members)} merged={len(self._merges)}>"

    # ------------------------------------------------------------------ reading

    def get(self, member_id: str) -> Member:
        try:
            return self._members[member_id]
        except KeyError:
            raise UnknownMember(f"no member with id {member_id!r}") from None

    def find(self, identity: PlatformIdentity) -> Member | None:
        """The member an identity belongs to, if any."""
        member_id = self._owner(identity[0], identity[1])
        return None if member_id is None else self._members[member_id]

    def canonical_id(self, member_id: str) -> str:
        """The id string the member record holds, equal to ``member_id`` (for sharing)."""
        member = self._members.get(member_id)
        return member_id if member is None else member.member_id

    def member_id_of(self, platform: str, user_id: str) -> str | None:
        """The id of the member ``platform:user_id`` belongs to, if any (no object built)."""
        # most identities belong to the member named after them, who are not in
        # _by_identity (an identity has one owner: the one holding it is it)
        member = self._members.get(f"{platform}:{user_id}")
        if member is not None and (platform, user_id) in member.identities:
            return member.member_id
        return self._by_identity.get((platform, user_id))

    _owner = member_id_of

    def _set_owner(self, identity: PlatformIdentity, member_id: str) -> None:
        """Record that ``member_id`` owns ``identity`` (see ``_by_identity``)."""
        if member_id == f"{identity[0]}:{identity[1]}":
            self._by_identity.pop(identity, None)
        else:
            self._by_identity[identity] = member_id

    def links(self, identity: PlatformIdentity | None = None) -> list[IdentityLink]:
        """The history of links, all of it or that of one identity."""
        if identity is None:
            return list(self._links)
        return list(self._links_by_identity.get(identity, ()))

    def restore_links(self, links: Iterable[IdentityLink]) -> None:
        """Put back a stored link history (after the members were added)."""
        for link in links:
            self._links.append(link)
            self._links_by_identity.setdefault(link.identity, []).append(link)

    def links_count(self) -> int:
        """How many links the history holds (see :meth:`links_from`)."""
        return len(self._links)

    def links_from(self, index: int) -> list[IdentityLink]:
        """The links recorded since the history held ``index`` of them."""
        return self._links[index:]

    def _record_link(
        self, identity: PlatformIdentity, member_id: str, provenance: LinkProvenance
    ) -> None:
        link = IdentityLink(identity=identity, member_id=member_id, provenance=provenance)
        self._links.append(link)
        self._links_by_identity.setdefault(identity, []).append(link)

    def merge_record(self, absorbed: str) -> MergeRecord | None:
        return self._merges.get(absorbed)

    def merged_into(self, member_id: str) -> str | None:
        record = self._merges.get(member_id)
        return None if record is None else record.survivor

    # ------------------------------------------------------------------ writing

    def add(self, member: Member, provenance: LinkProvenance | None = None) -> Member:
        """Register a new member; each of its identities must be unknown so far."""
        if member.member_id in self._members or member.member_id in self._merges:
            raise InvalidOperation(f"member id {member.member_id!r} is already taken")
        for identity in member.identities:
            owner = self._owner(identity[0], identity[1])
            if owner is not None:
                raise InvalidOperation(f"identity {identity} already belongs to member {owner!r}")
        self._members[member.member_id] = member
        for identity in member.identities:
            self._set_owner(identity, member.member_id)
            if provenance is not None:
                self._record_link(identity, member.member_id, provenance)
        return member

    def update(self, member: Member) -> Member:
        """Replace a member's record (same id, same identities)."""
        current = self.get(member.member_id)
        if set(current.identities) != set(member.identities):
            raise InvalidOperation(
                "identities change only through link() and merge(), not update()"
            )
        self._members[member.member_id] = member
        return member

    def link(
        self, member_id: str, identity: PlatformIdentity, provenance: LinkProvenance
    ) -> Member:
        """Add an identity no one has yet to a member (e.g. after a verified /link code)."""
        member = self.get(member_id)
        owner = self._owner(identity[0], identity[1])
        if owner == member_id:
            return member
        if owner is not None:
            raise InvalidOperation(
                f"identity {identity} already belongs to member {owner!r}: merge the two "
                "members instead"
            )
        updated = attrs.evolve(member, identities=(*member.identities, identity))
        self._members[member_id] = updated
        self._set_owner(identity, member_id)
        self._record_link(identity, member_id, provenance)
        return updated

    def merge(self, survivor_id: str, absorbed_id: str, provenance: LinkProvenance) -> MergeRecord:
        """Fold ``absorbed`` into ``survivor``: one person from now on.

        The survivor gains the absorbed member's identities and tags, the earlier
        join time, the higher role and the later paid-until date. The absorbed
        member is kept aside, exactly as it was, for :meth:`unmerge`.
        """
        if survivor_id == absorbed_id:
            raise InvalidOperation(f"cannot merge member {survivor_id!r} into itself")
        survivor = self.get(survivor_id)
        absorbed = self.get(absorbed_id)
        status = _merged_status(survivor.status, absorbed.status)
        present = status in (MemberStatus.ACTIVE, MemberStatus.PENDING)
        merged = attrs.evolve(
            survivor,
            identities=(*survivor.identities, *absorbed.identities),
            tags=survivor.tags | absorbed.tags,
            joined_at=_earlier(survivor.joined_at, absorbed.joined_at),
            # still in the community through either account: not left; else the later leave
            left_at=None
            if present or survivor.left_at is None or absorbed.left_at is None
            else max(survivor.left_at, absorbed.left_at),
            status=status,
            role=_merged_role(survivor.role, absorbed.role),
            paid_until=_later(survivor.paid_until, absorbed.paid_until),
            display_name=survivor.display_name or absorbed.display_name,
        )
        record = MergeRecord(
            survivor=survivor_id,
            absorbed=absorbed,
            survivor_before=survivor,
            survivor_after=merged,
            provenance=provenance,
        )
        del self._members[absorbed_id]
        self._members[survivor_id] = merged
        for identity in absorbed.identities:
            self._set_owner(identity, survivor_id)
            self._record_link(identity, survivor_id, provenance)
        self._merges[absorbed_id] = record
        return record

    def unmerge(self, absorbed_id: str, provenance: LinkProvenance) -> tuple[Member, Member]:
        """Undo :meth:`merge`; returns ``(survivor, absorbed)`` as they are now.

        The absorbed member comes back exactly as it was merged. The survivor loses
        what the merge gave it; a field changed since the merge keeps its new value.
        """
        record = self._merges.get(absorbed_id)
        if record is None:
            raise InvalidOperation(f"member {absorbed_id!r} was not merged into another member")
        if record.survivor in self._merges:
            raise InvalidOperation(
                f"member {record.survivor!r} was itself merged into "
                f"{self._merges[record.survivor].survivor!r}: unmerge it first"
            )
        survivor = self.get(record.survivor)
        before, after, absorbed = record.survivor_before, record.survivor_after, record.absorbed
        moved = set(absorbed.identities)
        gained_tags = after.tags - before.tags

        def undo(field: str) -> Any:
            now = getattr(survivor, field)
            return getattr(before, field) if now == getattr(after, field) else now

        restored = attrs.evolve(
            survivor,
            identities=tuple(i for i in survivor.identities if i not in moved),
            tags=survivor.tags - gained_tags,
            joined_at=undo("joined_at"),
            left_at=undo("left_at"),
            status=undo("status"),
            role=undo("role"),
            paid_until=undo("paid_until"),
            display_name=undo("display_name"),
        )
        del self._merges[absorbed_id]
        self._members[restored.member_id] = restored
        self._members[absorbed_id] = absorbed
        for identity in absorbed.identities:
            self._set_owner(identity, absorbed_id)
            self._record_link(identity, absorbed_id, provenance)
        return restored, absorbed


def merge_members(
    graph: IdentityGraph,
    ledger: Ledger,
    survivor_id: str,
    absorbed_id: str,
    provenance: LinkProvenance,
) -> MergeRecord:
    """Merge two members in the identity graph and in the ledger in one step.

    Every ledger entry of both is kept; the survivor's balance becomes the sum.
    """
    graph.get(survivor_id)
    graph.get(absorbed_id)
    ledger.merge_accounts(survivor_id, absorbed_id)
    try:
        return graph.merge(survivor_id, absorbed_id, provenance)
    except Exception:
        ledger.unmerge_accounts(absorbed_id)
        raise


def unmerge_members(
    graph: IdentityGraph, ledger: Ledger, absorbed_id: str, provenance: LinkProvenance
) -> tuple[Member, Member]:
    """Undo :func:`merge_members`: both members get back their own entries and records."""
    result = graph.unmerge(absorbed_id, provenance)
    ledger.unmerge_accounts(absorbed_id)
    return result
