"""Updates as events: every kind the adapter reads, and the ones it skips."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from communitykit_telegram import Normalizer, SkippedUpdate, parse_command

from communitykit import (
    CommandInvoked,
    JoinRequested,
    LeaveReason,
    Media,
    MemberJoined,
    MemberLeft,
    MessageEdited,
    MessagePosted,
    ReactionAdded,
    event_from_json,
)

BOT = 123456
GROUP = -1001234567890
DATE = 1_774_747_800  # 2026-03-29 01:30 UTC
AT = datetime.fromtimestamp(DATE, tz=UTC)


def user(user_id: int, name: str = "Ana", **extra: Any) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": name, **extra}


def chat(chat_id: int = GROUP) -> dict[str, Any]:
    kind = "private" if chat_id > 0 else "supergroup"
    return {"id": chat_id, "type": kind, **({"title": "Group"} if chat_id < 0 else {})}


def message(
    text: str | None = "hello", *, chat_id: int = GROUP, sender: int = 42, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "message_id": 10,
        "date": DATE,
        "chat": chat(chat_id),
        "from": user(sender),
        **extra,
    }
    if text is not None:
        body["text"] = text
    return body


@pytest.fixture
def normalizer() -> Normalizer:
    return Normalizer(bot_id=BOT, bot_username="communitykit_test_bot")


def one(normalizer: Normalizer, update: dict[str, Any]) -> Any:
    [event] = normalizer.normalize(update).events
    return event


def test_a_message(normalizer: Normalizer) -> None:
    event = one(normalizer, {"update_id": 7, "message": message("hello")})
    assert isinstance(event, MessagePosted)
    assert (event.event_id, event.platform, event.group, event.user) == (
        "u7",
        "telegram",
        str(GROUP),
        "42",
    )
    assert event.at == AT
    assert event.at.tzinfo is not None
    assert (event.message_id, event.text, event.reply_to, event.media) == (
        "10",
        "hello",
        None,
        None,
    )
    # its JSON form is the contract's
    assert event_from_json(event.to_json()) == event


def test_a_reply_with_a_photo_and_a_caption(normalizer: Normalizer) -> None:
    body = message(None, caption="look", photo=[{"file_id": "x"}])
    body["reply_to_message"] = message("earlier", message_id=3) | {"message_id": 3}
    event = one(normalizer, {"update_id": 8, "message": body})
    assert (event.text, event.media, event.reply_to) == ("look", Media.PHOTO, "3")


@pytest.mark.parametrize(
    ("field", "media"),
    [
        ("video", Media.VIDEO),
        ("animation", Media.VIDEO),
        ("voice", Media.VOICE),
        ("document", Media.FILE),
        ("audio", Media.FILE),
        ("sticker", Media.STICKER),
    ],
)
def test_media_kinds(normalizer: Normalizer, field: str, media: Media) -> None:
    event = one(normalizer, {"update_id": 1, "message": message(None, **{field: {"file_id": "f"}})})
    assert event.media is media
    assert event.text == ""


def test_a_topic_message_is_not_a_reply_to_the_topic(normalizer: Normalizer) -> None:
    body = message("in a topic", is_topic_message=True, message_thread_id=5)
    body["reply_to_message"] = {"message_id": 5, "date": DATE, "chat": chat()}
    assert one(normalizer, {"update_id": 1, "message": body}).reply_to is None


def test_a_private_message_has_no_group(normalizer: Normalizer) -> None:
    event = one(normalizer, {"update_id": 2, "message": message("hi", chat_id=42)})
    assert event.group is None


def test_an_edit(normalizer: Normalizer) -> None:
    body = message("fixed", edit_date=DATE + 60)
    event = one(normalizer, {"update_id": 3, "edited_message": body})
    assert isinstance(event, MessageEdited)
    assert (event.message_id, event.text) == ("10", "fixed")
    assert event.at == datetime.fromtimestamp(DATE + 60, tz=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/checkin", ("checkin", ())),
        ("/checkin@communitykit_test_bot day 3", ("checkin", ("day", "3"))),
        ("/CheckIn@CommunityKit_Test_Bot", ("checkin", ())),
        ("/points  a\tb\nc", ("points", ("a", "b", "c"))),
        ("/start@other_bot", None),
        ("/ not a command", None),
        ("checkin", None),
        ("/check-in", None),
    ],
)
def test_parse_command(text: str, expected: tuple[str, tuple[str, ...]] | None) -> None:
    assert parse_command(text, "communitykit_test_bot") == expected


def test_commands_for_this_bot_or_unaddressed(normalizer: Normalizer) -> None:
    event = one(
        normalizer, {"update_id": 4, "message": message("/checkin@communitykit_test_bot x")}
    )
    assert isinstance(event, CommandInvoked)
    assert (event.command, event.args, event.event_id) == ("checkin", ("x",), "u4")
    other = one(normalizer, {"update_id": 5, "message": message("/start@other_bot")})
    assert isinstance(other, MessagePosted)  # another bot's command is just a message
    unknown = Normalizer(bot_id=BOT)  # before getMe answered: only unaddressed commands
    assert isinstance(one(unknown, {"update_id": 6, "message": message("/a@x_bot")}), MessagePosted)
    assert isinstance(one(unknown, {"update_id": 6, "message": message("/a")}), CommandInvoked)


def test_a_callback_query_is_a_command_and_is_answered(normalizer: Normalizer) -> None:
    update = {
        "update_id": 9,
        "callback_query": {
            "id": "q1",
            "from": user(42),
            "chat_instance": "1",
            "data": "/vote 3",
            "message": message("pick one", sender=BOT),
        },
    }
    result = normalizer.normalize(update)
    [event] = result.events
    assert isinstance(event, CommandInvoked)
    assert (event.command, event.args, event.group, event.user) == (
        "vote",
        ("3",),
        str(GROUP),
        "42",
    )
    assert event.extra == {"via": "callback_query"}
    assert event.at.tzinfo is not None
    assert result.callback_query_id == "q1"
    empty = normalizer.normalize(
        {"update_id": 10, "callback_query": {"id": "q2", "from": user(42), "data": "  "}}
    )
    assert empty.events == ()
    assert empty.callback_query_id == "q2"  # answered all the same


def member(status: str, user_id: int = 42, **extra: Any) -> dict[str, Any]:
    return {"status": status, "user": user(user_id, "Bo", last_name="Li"), **extra}


def chat_member(old: dict[str, Any], new: dict[str, Any], actor: int = 42, **extra: Any) -> Any:
    return {
        "update_id": 11,
        "chat_member": {
            "chat": chat(),
            "from": user(actor),
            "date": DATE,
            "old_chat_member": old,
            "new_chat_member": new,
            **extra,
        },
    }


def test_a_join_through_an_invite_link(normalizer: Normalizer) -> None:
    link = {"invite_link": "https://t.me/+abc", "name": "ref-7", "creator": user(BOT)}
    event = one(normalizer, chat_member(member("left"), member("member"), invite_link=link))
    assert isinstance(event, MemberJoined)
    assert (event.invite, event.display_name, event.added_by) == (
        "https://t.me/+abc",
        "Bo Li",
        None,
    )
    assert event.event_id == "u11"


def test_a_member_added_by_another(normalizer: Normalizer) -> None:
    event = one(normalizer, chat_member(member("left"), member("member"), actor=7))
    assert event.added_by == "7"
    restricted = one(
        normalizer, chat_member(member("kicked"), member("restricted", is_member=True), actor=42)
    )
    assert isinstance(restricted, MemberJoined)


@pytest.mark.parametrize(
    ("new", "actor", "kicked_by_us", "reason"),
    [
        ("left", 42, False, LeaveReason.LEFT),
        ("left", 7, False, LeaveReason.KICKED),
        ("kicked", 7, False, LeaveReason.BANNED),
        ("kicked", BOT, True, LeaveReason.KICKED),
    ],
)
def test_leaves(
    normalizer: Normalizer, new: str, actor: int, kicked_by_us: bool, reason: LeaveReason
) -> None:
    if kicked_by_us:
        normalizer.kicked(GROUP, 42)
    event = one(normalizer, chat_member(member("member"), member(new), actor=actor))
    assert isinstance(event, MemberLeft)
    assert event.reason is reason


def test_membership_changes_that_are_not_joins_or_leaves(normalizer: Normalizer) -> None:
    promoted = chat_member(member("member"), member("administrator"))
    assert normalizer.normalize(promoted).events == ()
    muted = chat_member(member("member"), member("restricted", is_member=True))
    assert normalizer.normalize(muted).events == ()
    unbanned = chat_member(member("kicked"), member("left"))
    assert normalizer.normalize(unbanned).events == ()


def test_service_message_joins_when_configured() -> None:
    normalizer = Normalizer(bot_id=BOT, joins_from="service_messages")
    body = message(
        None, new_chat_members=[user(50, "A"), user(51, "B"), user(BOT) | {"is_bot": True}]
    )
    events = normalizer.normalize({"update_id": 12, "message": body}).events
    assert [(e.event_id, e.user, e.added_by) for e in events] == [
        ("u12", "50", "42"),
        ("u12.1", "51", "42"),
    ]
    left = normalizer.normalize(
        {"update_id": 13, "message": message(None, left_chat_member=user(42))}
    ).events
    assert [(type(e), e.reason) for e in left] == [(MemberLeft, LeaveReason.LEFT)]
    # in the default mode the service messages are not joins (chat_member updates are)
    default = Normalizer(bot_id=BOT)
    assert default.normalize({"update_id": 12, "message": body}).events == ()
    assert normalizer.normalize(chat_member(member("left"), member("member"))).events == ()


def test_a_join_request(normalizer: Normalizer) -> None:
    update = {
        "update_id": 14,
        "chat_join_request": {
            "chat": chat(),
            "from": user(42),
            "user_chat_id": 42,
            "date": DATE,
            "bio": "I like chess",
            "invite_link": {"invite_link": "https://t.me/+req", "creates_join_request": True},
        },
    }
    event = one(normalizer, update)
    assert isinstance(event, JoinRequested)
    assert (event.invite, event.user, event.group) == ("https://t.me/+req", "42", str(GROUP))
    assert event.extra == {"bio": "I like chess"}


def reaction(new: list[dict[str, Any]], old: list[dict[str, Any]] | None = None) -> Any:
    return {
        "update_id": 15,
        "message_reaction": {
            "chat": chat(),
            "message_id": 10,
            "user": user(43, "Cy"),
            "date": DATE,
            "old_reaction": old or [],
            "new_reaction": new,
        },
    }


def test_reactions_name_the_author_when_the_message_was_seen(normalizer: Normalizer) -> None:
    thumbs = {"type": "emoji", "emoji": "👍"}
    unseen = one(normalizer, reaction([thumbs]))
    assert isinstance(unseen, ReactionAdded)
    assert (unseen.message_id, unseen.emoji, unseen.to_user) == ("10", "👍", None)
    normalizer.normalize({"update_id": 1, "message": message("mine", sender=42)})
    seen = one(normalizer, reaction([thumbs]))
    assert seen.to_user == "42"
    both = normalizer.normalize(
        reaction(
            [
                thumbs,
                {"type": "emoji", "emoji": "🔥"},
                {"type": "custom_emoji", "custom_emoji_id": "9"},
            ],
            [thumbs],
        )
    ).events
    assert [(e.event_id, e.emoji) for e in both] == [("u15", "🔥"), ("u15.1", "custom:9")]
    assert normalizer.normalize(reaction([], [thumbs])).events == ()  # a reaction removed


def test_the_author_memory_is_bounded() -> None:
    normalizer = Normalizer(bot_id=BOT, remember=2)
    for n in range(3):
        normalizer.normalize({"update_id": n, "message": message("x") | {"message_id": n}})
    assert normalizer.author_of(GROUP, 0) is None
    assert normalizer.author_of(GROUP, 2) == 42


def test_a_migration_is_reported_not_an_event(normalizer: Normalizer) -> None:
    old = normalizer.normalize(
        {"update_id": 16, "message": message(None, chat_id=-4001, migrate_to_chat_id=GROUP)}
    )
    assert (old.events, old.moved) == ((), (-4001, GROUP))
    new = normalizer.normalize(
        {"update_id": 17, "message": message(None, migrate_from_chat_id=-4001)}
    )
    assert new.moved == (-4001, GROUP)


def test_bots_channels_and_service_messages_give_no_events(normalizer: Normalizer) -> None:
    from_bot = message("beep") | {"from": user(99) | {"is_bot": True}}
    anonymous = message("from the channel", sender_chat={"id": -100, "type": "channel"})
    pinned = message(None, pinned_message={"message_id": 1})
    for body in (from_bot, anonymous, pinned):
        assert normalizer.normalize({"update_id": 1, "message": body}).events == ()
    for kind in ("channel_post", "poll", "my_chat_member", "inline_query"):
        assert normalizer.normalize({"update_id": 1, kind: {}}).events == ()


@pytest.mark.parametrize(
    "update",
    [
        {"message": message()},  # no update_id
        {"update_id": "1", "message": message()},
        {"update_id": 1, "message": "text"},
        {"update_id": 1, "message": message() | {"chat": None}},
        {"update_id": 1, "message": message() | {"date": "yesterday"}},
        {"update_id": 1, "message": message() | {"date": 10**20}},
        {"update_id": 1, "message": message() | {"from": {"id": "42"}}},
        {"update_id": 1, "callback_query": {"from": user(1)}},
        {
            "update_id": 1,
            "message_reaction": reaction([])["message_reaction"] | {"new_reaction": 3},
        },
        {"update_id": 1, "something_new": {}},
        {"update_id": 1},
    ],
)
def test_malformed_updates_are_skipped(normalizer: Normalizer, update: dict[str, Any]) -> None:
    with pytest.raises(SkippedUpdate):
        normalizer.normalize(update)
