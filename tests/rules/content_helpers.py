"""Building contexts for the content rules (links, keywords, flood, duplicates)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from communitykit.model import (
    Action,
    Capabilities,
    Community,
    Decision,
    DeleteMessage,
    Group,
    Member,
    MemberState,
    MessageEdited,
    MessagePosted,
    PlatformIdentity,
    Recent,
    RuleContext,
    SendMessage,
    Tier,
    fingerprint,
)

T0 = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)

#: the time zones tests run the same cases in (the rules must not care)
ZONES = (
    UTC,
    timezone(timedelta(hours=8), "Asia/Shanghai"),
    timezone(timedelta(hours=-7), "America/Los_Angeles"),
    timezone(timedelta(hours=5, minutes=45), "Asia/Kathmandu"),
)

MAIN = "-100"  # telegram group "main"
CHAT = "-200"  # telegram group "chat"
WX = "wxg1"  # wechat group "wx"

COMMUNITY = Community(
    name="test",
    groups=(
        Group(key="main", platform="telegram", group_id=MAIN),
        Group(key="chat", platform="telegram", group_id=CHAT),
        Group(key="wx", platform="wechat", group_id=WX),
    ),
)
CAPABILITIES = Capabilities(actions={"send_message", "delete_message", "mute"})
TIER = Tier(name="member", threshold=0)

#: a member of a month's standing, on telegram (42) and wechat (wx42)
MEMBER = Member(
    member_id="m1",
    identities=(PlatformIdentity("telegram", "42"), PlatformIdentity("wechat", "wx42")),
    joined_at=T0 - timedelta(days=30),
)


def posted(
    text: str,
    *,
    at: datetime = T0,
    group: str | None = MAIN,
    platform: str = "telegram",
    message_id: str = "7",
    user: str = "42",
    event_id: str | None = None,
) -> MessagePosted:
    return MessagePosted(
        event_id=event_id or f"e-{platform}-{group}-{message_id}",
        platform=platform,
        group=group,
        user=user,
        at=at,
        message_id=message_id,
        text=text,
    )


def edited(text: str, *, at: datetime = T0, message_id: str = "7") -> MessageEdited:
    return MessageEdited(
        event_id=f"edit-{message_id}-{at.isoformat()}",
        platform="telegram",
        group=MAIN,
        user="42",
        at=at,
        message_id=message_id,
        text=text,
    )


def recent(
    at: datetime,
    text: str = "hello there everyone",
    *,
    group: str | None = MAIN,
    platform: str = "telegram",
    message_id: str | None = None,
) -> Recent:
    return Recent(
        at=at,
        platform=platform,
        group=group,
        message_id=message_id or f"r-{at.isoformat()}-{group}",
        fingerprint=fingerprint(text),
    )


def context(
    event: MessagePosted | MessageEdited,
    *,
    member: Member = MEMBER,
    history: Sequence[Recent] = (),
    states: Mapping[str, Mapping[str, Any]] | None = None,
) -> RuleContext:
    found = dict(states or {})
    return RuleContext(
        event=event,
        member=member,
        state=MemberState(member_id=member.member_id, tier=TIER.name, tier_since=T0),
        tier=TIER,
        balance=0,
        community=COMMUNITY,
        capabilities=CAPABILITIES,
        now=event.at,
        cap_remaining=lambda _reason: None,
        member_of=lambda _platform, _user: None,
        already_awarded=lambda _key: False,
        recent=tuple(history),
        rule_state=lambda name: found.get(name, {}),
    )


def message(text: str, **fields: Any) -> RuleContext:
    """A context for a message posted by :data:`MEMBER` in group main."""
    return context(posted(text, **fields))


def kinds(decision: Decision) -> list[str]:
    return [action.TYPE for action in decision.actions]


def assert_deleted_with_fallback(decision: Decision, ctx: RuleContext) -> None:
    """The decision deletes the event's message, falling back to a reply asking
    its author to remove it."""
    event = ctx.event
    assert isinstance(event, MessagePosted | MessageEdited)
    [delete] = decision.actions
    assert isinstance(delete, DeleteMessage)
    assert (delete.message_id, delete.group, delete.platform) == (
        event.message_id,
        event.group,
        event.platform,
    )
    [ask] = decision.fallbacks[delete.action_id]
    assert isinstance(ask, SendMessage)
    assert ask.reply_to == event.message_id and ask.group == event.group
    assert ask.action_id != delete.action_id
    assert "remove" in ask.text


def same_decision(a: Decision | None, b: Decision | None) -> bool:
    return a == b


def action_ids(decision: Decision) -> list[str]:
    found: list[Action] = [*decision.actions]
    for alternatives in decision.fallbacks.values():
        found.extend(alternatives)
    return [action.action_id for action in found]


def wide(text: str) -> str:
    """``text`` with its ASCII letters, digits and punctuation written full-width."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)
