"""The ``size_cap`` rule type: a full group sends newcomers to the next one with room.

Groups declare ``size_cap`` and ``overflow_order`` in the community
configuration. A join request to a full group is declined, with a direct
message naming the next group with room (by its invite link when the rule knows
one); a member who joined anyway (the group now holds more than its cap) is told
the same and removed, unless ``remove_overflow = false``. When every group on
the platform is full, the operator is told.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import attrs

from communitykit._errors import ModelError
from communitykit.builtins.rules._common import Settings
from communitykit.builtins.rules._entry import mention, template
from communitykit.model import (
    Action,
    Decision,
    DeclineJoin,
    Group,
    JoinRequested,
    Kick,
    MemberJoined,
    RuleContext,
    SendDirectMessage,
    SendMessage,
)

__all__ = ["SizeCapRule"]

_FULL = "{group} is full. Please join {target} instead."
_ALL_FULL = "{group} is full, and so is every other group right now. The organisers have been told."
_OPERATOR = "Every {platform} group is full ({sizes}); {user} could not get into {group}."
_MEMBER_FIELDS = ("group", "target", "mention")
_OPERATOR_FIELDS = ("group", "platform", "sizes", "user")


def _title(group: Group) -> str:
    return group.title or group.key


def _links(reader: Settings) -> Mapping[str, str]:
    table = reader.table("invites")
    for key, link in table.items():
        if not isinstance(link, str) or not link.strip():
            raise ModelError(
                f"size_cap rule: invites.{key} must be the group's invite link (a text), "
                f"got {link!r}"
            )
    return {key: link.strip() for key, link in table.items()}


def _optional(reader: Settings, key: str, what: str) -> str | None:
    value = reader.raw(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ModelError(f"size_cap rule: {key} must be {what}, got {value!r}")
    return value.strip()


@attrs.frozen(kw_only=True)
class SizeCapRule:
    """Keeps groups within their size caps; see ``docs/rules-membership.md``."""

    name: str = "size_cap"
    invites: Mapping[str, str] = attrs.field(factory=dict)
    remove_overflow: bool = True
    operator_group: str | None = None
    operator: str | None = None
    full_message: str = _FULL
    all_full_message: str = _ALL_FULL
    operator_message: str = _OPERATOR
    event_types: ClassVar[frozenset[str]] = frozenset({"join_requested", "member_joined"})

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> SizeCapRule:
        reader = Settings(settings, "size_cap")
        rule = cls(
            name=reader.name(),
            invites=_links(reader),
            remove_overflow=reader.flag("remove_overflow", True),
            operator_group=_optional(reader, "operator_group", "a group key"),
            operator=_optional(reader, "operator", "a platform user id (a text)"),
            full_message=template(reader, "size_cap", "full_message", _FULL, _MEMBER_FIELDS),
            all_full_message=template(
                reader, "size_cap", "all_full_message", _ALL_FULL, _MEMBER_FIELDS
            ),
            operator_message=template(
                reader, "size_cap", "operator_message", _OPERATOR, _OPERATOR_FIELDS
            ),
        )
        reader.done()
        return rule

    @property
    def source(self) -> str:
        return f"rule:{self.name}"

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        event = ctx.event
        requested = isinstance(event, JoinRequested)
        if not (requested or isinstance(event, MemberJoined)):
            return None
        group = ctx.group
        if group is None or group.size_cap is None:
            return None
        size = ctx.group_size(group.key)
        # a request asks for one more seat; a join has already taken it
        if (size < group.size_cap) if requested else (size <= group.size_cap):
            return None
        siblings = ctx.community.groups_on(event.platform)
        sizes = {g.key: ctx.group_size(g.key) for g in siblings}
        sizes[group.key] = max(size, group.size_cap)
        target = ctx.community.overflow_target(event.platform, sizes)
        name = event.display_name if isinstance(event, MemberJoined) else None
        values = {
            "group": _title(group),
            "mention": mention(name or ctx.member.display_name, event.user),
            "target": "" if target is None else self.invites.get(target.key) or _title(target),
        }
        text = (self.full_message if target is not None else self.all_full_message).format(**values)
        count = f"{size} of {group.size_cap}"
        reason = f"group {group.key} is full ({count})"
        actions: list[Action] = []
        fallbacks: dict[str, tuple[Action, ...]] = {}
        tell = ctx.action(SendDirectMessage, self.source, reason, 1, group=None, text=text)
        if requested:
            actions += [ctx.action(DeclineJoin, self.source, reason), tell]
            done = "declined the request"
        else:
            actions.append(tell)
            fallbacks[tell.action_id] = (
                ctx.action(SendMessage, self.source, reason, 4, text=f"{values['mention']} {text}"),
            )
            done = "told the newcomer"
            if self.remove_overflow:
                actions.append(ctx.action(Kick, self.source, reason))
                done = "removed the newcomer and told them"
        if target is not None:
            where = f"pointed to {target.key}"
        else:
            where = "every group on the platform is full"
            told = self._tell_operator(ctx, group, siblings, sizes, actions)
            if told:
                where += f"; {told}"
        return Decision(
            source=self.source,
            explanation=f"group {group.key} is full ({count}); {done}; {where}",
            actions=tuple(actions),
            fallbacks=fallbacks,
        )

    def _tell_operator(
        self,
        ctx: RuleContext,
        group: Group,
        siblings: list[Group],
        sizes: Mapping[str, int],
        actions: list[Action],
    ) -> str:
        event = ctx.event
        text = self.operator_message.format(
            group=_title(group),
            platform=event.platform,
            user=mention(ctx.member.display_name, event.user),
            sizes=", ".join(f"{g.key} {sizes[g.key]}/{g.size_cap or '-'}" for g in siblings),
        )
        reason = f"every {event.platform} group is full"
        told: list[str] = []
        there = next((g for g in ctx.community.groups if g.key == self.operator_group), None)
        if there is not None:
            actions.append(
                ctx.action(
                    SendMessage,
                    self.source,
                    reason,
                    2,
                    platform=there.platform,
                    group=there.group_id,
                    user=None,
                    text=text,
                )
            )
            told.append(f"told the operators in {there.key}")
        elif self.operator_group is not None:
            told.append(f"operator group {self.operator_group} is not a configured group")
        if self.operator is not None:
            actions.append(
                ctx.action(
                    SendDirectMessage,
                    self.source,
                    reason,
                    3,
                    group=None,
                    user=self.operator,
                    text=text,
                )
            )
            told.append(f"told operator {self.operator} directly")
        return "; ".join(told)
