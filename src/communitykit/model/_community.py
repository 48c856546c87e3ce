"""A community and its groups on each platform.

A :class:`Group` has a stable ``key`` chosen by the community (``"main"``,
``"tg-beijing-2"``): it never changes, while the platform's own id for the group
may (a Telegram group that becomes a supergroup gets a new chat id). When that
happens, :meth:`Community.with_group_id_changed` records the new id and keeps the
old one, so events carrying either id still find the same group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import tzinfo
from typing import Any

import attrs

from communitykit._errors import ModelError
from communitykit.model._time import resolve_timezone

__all__ = ["Community", "Group"]


def _non_empty(_instance: Any, attribute: Any, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ModelError(f"{attribute.name} must be a non-empty string, got {value!r}")


def _str_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _valid_cap(_instance: Any, _attribute: Any, value: int | None) -> None:
    if value is not None and (type(value) is not int or value <= 0):
        raise ModelError(f"size_cap must be a positive whole number or None, got {value!r}")


@attrs.frozen(kw_only=True)
class Group:
    """One chat group of the community on one platform.

    ``size_cap`` is the most members the operator wants in it (``None``: no cap);
    ``overflow_order`` orders the groups of a platform for overflow: when a group
    is full, newcomers are pointed to the next group by this order.
    """

    key: str = attrs.field(validator=_non_empty)
    platform: str = attrs.field(validator=_non_empty)
    group_id: str = attrs.field(validator=_non_empty)
    title: str = ""
    size_cap: int | None = attrs.field(default=None, validator=_valid_cap)
    overflow_order: int = 0
    previous_ids: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)

    def known_ids(self) -> tuple[str, ...]:
        """The current platform id followed by every earlier one."""
        return (self.group_id, *self.previous_ids)

    def has_room(self, size: int) -> bool:
        """Whether a group with ``size`` members can take one more."""
        return self.size_cap is None or size < self.size_cap


def _groups_converter(groups: Iterable[Group]) -> tuple[Group, ...]:
    return tuple(groups)


def _check_groups(_instance: Any, _attribute: Any, groups: tuple[Group, ...]) -> None:
    keys: set[str] = set()
    ids: dict[tuple[str, str], str] = {}
    for group in groups:
        if not isinstance(group, Group):
            raise ModelError(f"groups must be Group values, got {type(group).__name__}")
        if group.key in keys:
            raise ModelError(f"two groups share the key {group.key!r}; keys must be unique")
        keys.add(group.key)
        for gid in group.known_ids():
            owner = ids.get((group.platform, gid))
            if owner is not None:
                raise ModelError(
                    f"groups {owner!r} and {group.key!r} both claim {group.platform} id {gid!r}"
                )
            ids[(group.platform, gid)] = group.key


def _check_timezone(_instance: Any, _attribute: Any, value: str) -> None:
    resolve_timezone(value)


@attrs.frozen(kw_only=True)
class Community:
    """Who the community is for, where its day starts, and its groups."""

    name: str = attrs.field(validator=_non_empty)
    purpose: str = ""
    timezone: str = attrs.field(default="UTC", validator=_check_timezone)
    groups: tuple[Group, ...] = attrs.field(
        default=(), converter=_groups_converter, validator=_check_groups
    )
    _index: Mapping[tuple[str, str], Group] = attrs.field(
        init=False, repr=False, eq=False, hash=False
    )

    def __attrs_post_init__(self) -> None:
        index = {(g.platform, gid): g for g in self.groups for gid in g.known_ids()}
        object.__setattr__(self, "_index", index)

    @property
    def tz(self) -> tzinfo:
        """The community's time zone."""
        return resolve_timezone(self.timezone)

    def group(self, platform: str, group_id: str) -> Group | None:
        """The group a platform id (current or earlier) belongs to, if any."""
        return self._index.get((platform, group_id))

    def group_by_key(self, key: str) -> Group:
        for group in self.groups:
            if group.key == key:
                return group
        raise ModelError(f"the community has no group with key {key!r}")

    def groups_on(self, platform: str) -> list[Group]:
        """The groups on ``platform`` in overflow order."""
        found = [g for g in self.groups if g.platform == platform]
        found.sort(key=lambda g: (g.overflow_order, g.key))
        return found

    def with_group(self, group: Group) -> Community:
        """A copy with ``group`` added."""
        return attrs.evolve(self, groups=(*self.groups, group))

    def with_group_id_changed(self, platform: str, old_id: str, new_id: str) -> Community:
        """A copy where the group known as ``old_id`` is now ``new_id`` on the platform.

        The group keeps its key; the old id stays known. Doing it twice is harmless.
        """
        group = self.group(platform, old_id)
        if group is None:
            raise ModelError(f"no {platform} group has id {old_id!r}")
        if group.group_id == new_id:
            return self
        other = self.group(platform, new_id)
        if other is not None and other.key != group.key:
            raise ModelError(f"{platform} id {new_id!r} already belongs to group {other.key!r}")
        previous = tuple(i for i in group.known_ids() if i != new_id)
        moved = attrs.evolve(group, group_id=new_id, previous_ids=previous)
        return attrs.evolve(
            self, groups=tuple(moved if g.key == group.key else g for g in self.groups)
        )

    def overflow_target(self, platform: str, sizes: Mapping[str, int]) -> Group | None:
        """The first group on ``platform``, in overflow order, with room for one more.

        ``sizes`` maps group keys to their current member counts (missing: empty).
        ``None`` means every group is full.
        """
        for group in self.groups_on(platform):
            if group.has_room(sizes.get(group.key, 0)):
                return group
        return None
