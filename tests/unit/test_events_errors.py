"""Reading events and actions: the examples of ``EVENTS.md``, and every kind of bad input."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from communitykit._errors import FormatError
from communitykit.model._actions import (
    ACTION_TYPES,
    Ban,
    Kick,
    Mute,
    SendMessage,
    Warn,
    action_from_dict,
    action_from_json,
)
from communitykit.model._events import (
    EVENT_TYPES,
    CommandInvoked,
    JoinRequested,
    LeaveReason,
    Media,
    MemberJoined,
    MemberLeft,
    MemberPaid,
    MessageEdited,
    MessagePosted,
    ReactionAdded,
    event_from_dict,
    event_from_json,
)

CST = timezone(timedelta(hours=8))
AT = "2026-03-29T01:30:00+08:00"
COMMON: dict[str, Any] = {
    "event_id": "tg-1001",
    "platform": "telegram",
    "group": "-100123",
    "user": "42",
    "at": AT,
}
ACTION_COMMON: dict[str, Any] = {
    "action_id": "act-1",
    "platform": "telegram",
    "group": "-100123",
    "user": "42",
    "source": "rule:links",
    "reason": "posted a link, which the group rules forbid",
}


def event(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, **COMMON, **fields}


def action(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, **ACTION_COMMON, **fields}


# --------------------------------------------------------------------------- good input


def test_registries_hold_every_type_of_the_contract() -> None:
    assert set(EVENT_TYPES) == {
        "member_joined",
        "member_left",
        "join_requested",
        "message_posted",
        "message_edited",
        "reaction_added",
        "command_invoked",
        "member_paid",
    }
    assert set(ACTION_TYPES) == {
        "send_message",
        "send_direct_message",
        "delete_message",
        "warn",
        "mute",
        "kick",
        "ban",
        "approve_join",
        "decline_join",
        "create_invite_link",
        "set_title",
    }
    for name, cls in [*EVENT_TYPES.items(), *ACTION_TYPES.items()]:
        assert name == cls.TYPE


def test_member_joined_with_invite() -> None:
    parsed = event_from_json(
        json.dumps(event("member_joined", display_name="小王", invite="https://t.me/+abc"))
    )
    assert parsed == MemberJoined(
        event_id="tg-1001",
        platform="telegram",
        group="-100123",
        user="42",
        at=datetime(2026, 3, 29, 1, 30, tzinfo=CST),
        display_name="小王",
        invite="https://t.me/+abc",
    )
    assert isinstance(parsed, MemberJoined)
    assert parsed.added_by is None
    assert parsed.at.utcoffset() == timedelta(hours=8)
    assert parsed.extra == {}


def test_member_left_reason_is_an_enum() -> None:
    parsed = event_from_dict(event("member_left", reason="kicked"))
    assert isinstance(parsed, MemberLeft)
    assert parsed.reason is LeaveReason.KICKED


def test_join_requested_answers_are_read_only() -> None:
    parsed = event_from_dict(event("join_requested", answers={"你从哪里来?": "朋友推荐"}))
    assert isinstance(parsed, JoinRequested)
    assert dict(parsed.answers) == {"你从哪里来?": "朋友推荐"}
    assert parsed.invite is None
    with pytest.raises(TypeError):
        parsed.answers["x"] = "y"  # type: ignore[index]
    assert "answers" not in event_from_dict(event("join_requested")).to_dict()


def test_direct_message_has_no_group() -> None:
    data = event("message_posted", message_id="7", text="早安 🌞", reply_to="6", media="photo")
    del data["group"]
    parsed = event_from_dict(data)
    assert isinstance(parsed, MessagePosted)
    assert parsed.group is None
    assert (parsed.message_id, parsed.text, parsed.reply_to) == ("7", "早安 🌞", "6")
    assert parsed.media is Media.PHOTO
    assert "group" not in parsed.to_dict()


def test_null_in_an_optional_field_means_absent() -> None:
    parsed = event_from_dict(event("message_posted", message_id="7", text="hi", reply_to=None))
    assert isinstance(parsed, MessagePosted)
    assert parsed.reply_to is None
    assert "reply_to" not in parsed.to_dict()


def test_message_edited_and_reaction_added() -> None:
    edited = event_from_dict(event("message_edited", message_id="7", text="new"))
    assert edited == MessageEdited(
        **{**COMMON, "at": datetime(2026, 3, 29, 1, 30, tzinfo=CST)}, message_id="7", text="new"
    )
    reaction = event_from_dict(event("reaction_added", message_id="7", emoji="👍", to_user="9"))
    assert isinstance(reaction, ReactionAdded)
    assert (reaction.message_id, reaction.emoji, reaction.to_user) == ("7", "👍", "9")


def test_command_invoked() -> None:
    parsed = event_from_dict(event("command_invoked", command="checkin", args=["day", "3"]))
    assert isinstance(parsed, CommandInvoked)
    assert parsed.command == "checkin"
    assert parsed.args == ("day", "3")
    assert parsed.to_dict()["args"] == ["day", "3"]


def test_member_paid_keeps_the_amount_as_written() -> None:
    parsed = event_from_dict(
        event("member_paid", amount="99.00", currency="CNY", valid_until="2026-12-31")
    )
    assert isinstance(parsed, MemberPaid)
    assert parsed.amount == Decimal("99.00")
    assert parsed.currency == "CNY"
    assert parsed.valid_until == date(2026, 12, 31)
    assert parsed.to_dict()["amount"] == "99.00"
    plain = event_from_dict(event("member_paid", amount="99", currency="CNY"))
    assert plain.to_dict()["amount"] == "99"
    assert "valid_until" not in plain.to_dict()


def test_unknown_fields_are_kept_after_the_known_ones() -> None:
    line = json.dumps(
        {**event("member_left", reason="left"), "chat_title": "读书会", "raw": {"a": [1, 2]}},
        ensure_ascii=False,
    )
    parsed = event_from_json(line)
    assert parsed.extra["chat_title"] == "读书会"
    assert parsed.extra["raw"]["a"] == (1, 2)
    assert list(parsed.to_dict()) == [
        "type",
        "event_id",
        "platform",
        "group",
        "user",
        "at",
        "reason",
        "chat_title",
        "raw",
    ]
    assert parsed.to_json() == line


def test_to_json_is_one_line_and_keeps_non_ascii() -> None:
    parsed = event_from_dict(event("message_posted", message_id="7", text="第一行\n第二行 🎉"))
    line = parsed.to_json()
    assert "\n" not in line
    assert "第一行" in line
    assert "🎉" in line


def test_events_are_hashable_and_frozen() -> None:
    parsed = event_from_dict({**event("member_left", reason="left"), "x": {"y": 1}})
    assert hash(parsed) == hash(event_from_dict({**event("member_left", reason="left")}))
    with pytest.raises(AttributeError):
        parsed.user = "43"  # type: ignore[misc]
    with pytest.raises(TypeError):
        parsed.extra["x"]["y"] = 2


def test_actions_parse() -> None:
    warn = action_from_dict(action("warn", count=2))
    assert warn == Warn(**ACTION_COMMON, count=2)
    mute = action_from_json(json.dumps(action("mute", until="2026-03-30T01:30:00+08:00")))
    assert isinstance(mute, Mute)
    assert mute.until == datetime(2026, 3, 30, 1, 30, tzinfo=CST)
    assert mute.until.utcoffset() == timedelta(hours=8)
    ban = action_from_dict(action("ban"))
    assert isinstance(ban, Ban)
    assert ban.until is None
    kick = action_from_dict({"type": "kick", **ACTION_COMMON, "user": None})
    assert kick == Kick(**{**ACTION_COMMON, "user": None})
    reply = SendMessage(**{**ACTION_COMMON, "user": None}, text="欢迎!", reply_to="7")
    assert list(reply.to_dict()) == [
        "type",
        "action_id",
        "platform",
        "group",
        "source",
        "reason",
        "text",
        "reply_to",
    ]


# --------------------------------------------------------------------------- bad input

BAD_EVENTS: list[tuple[str, object, str | None, list[str]]] = [
    ("not an object", ["member_joined"], None, ["expected a JSON object", "found a list"]),
    ("null", None, None, ["expected a JSON object", "found null"]),
    ("missing type", COMMON, "type", ["member_joined", "found nothing"]),
    ("type not a string", {**COMMON, "type": 3}, "type", ["event type", "found an integer (3)"]),
    (
        "unknown type",
        event("member_exploded"),
        "type",
        ["unknown event type 'member_exploded'", "member_joined", "message_posted"],
    ),
    (
        "missing required field",
        event("message_posted", message_id="7"),
        "text",
        ["expected a string", "found nothing", "message_posted"],
    ),
    (
        "missing common field",
        {k: v for k, v in event("member_left", reason="left").items() if k != "at"},
        "at",
        ["expected an ISO 8601 timestamp", "found nothing"],
    ),
    (
        "int where a string is expected",
        event("member_left", reason="left", event_id=1001),
        "event_id",
        ["expected a string", "found an integer (1001)"],
    ),
    (
        "null in a required field",
        event("member_left", reason="left", user=None),
        "user",
        ["expected a string", "found null"],
    ),
    (
        "args not a list",
        event("command_invoked", command="checkin", args="day 3"),
        "args",
        ["expected a list of strings", "found a string ('day 3')"],
    ),
    (
        "args item not a string",
        event("command_invoked", command="checkin", args=["day", 3]),
        "args.1",
        ["expected a string", "found an integer (3)"],
    ),
    (
        "command with a slash",
        event("command_invoked", command="/checkin", args=[]),
        "command",
        ["without the leading '/'", "found '/checkin'"],
    ),
    (
        "empty command",
        event("command_invoked", command="", args=[]),
        "command",
        ["command name", "found ''"],
    ),
    (
        "timestamp without offset",
        event("member_left", reason="left", at="2026-03-29T01:30:00"),
        "at",
        [
            "must include a UTC offset, e.g. 2026-03-29T01:30:00+08:00",
            "found '2026-03-29T01:30:00'",
        ],
    ),
    (
        "timestamp that is not one",
        event("member_left", reason="left", at="yesterday"),
        "at",
        ["expected an ISO 8601 timestamp with a UTC offset", "found a string ('yesterday')"],
    ),
    (
        "timestamp as a number",
        event("member_left", reason="left", at=1774719000),
        "at",
        ["expected an ISO 8601 timestamp", "found an integer (1774719000)"],
    ),
    (
        "bad leave reason",
        event("member_left", reason="quit"),
        "reason",
        ["expected one of 'left', 'kicked', 'banned'", "found a string ('quit')"],
    ),
    (
        "bad media",
        event("message_posted", message_id="7", text="t", media="gif"),
        "media",
        ["'photo', 'video', 'file', 'voice', 'sticker'", "found a string ('gif')"],
    ),
    (
        "amount as a number",
        event("member_paid", amount=99.0, currency="CNY"),
        "amount",
        ['decimal string such as "99.00"', "found a number (99.0)"],
    ),
    (
        "amount with a comma",
        event("member_paid", amount="99,00", currency="CNY"),
        "amount",
        ["decimal string", "found a string ('99,00')"],
    ),
    (
        "negative amount",
        event("member_paid", amount="-5", currency="CNY"),
        "amount",
        ["non-negative decimal", "found a string ('-5')"],
    ),
    (
        "amount NaN",
        event("member_paid", amount="NaN", currency="CNY"),
        "amount",
        ["decimal string", "found a string ('NaN')"],
    ),
    (
        "bad date",
        event("member_paid", amount="9", currency="CNY", valid_until="2026-02-30"),
        "valid_until",
        ["expected an ISO 8601 date", "found a string ('2026-02-30')"],
    ),
    (
        "answers not an object",
        event("join_requested", answers=["a"]),
        "answers",
        ["expected an object with string values", "found a list"],
    ),
    (
        "answer not a string",
        event("join_requested", answers={"age": 30}),
        "answers.age",
        ["expected a string", "found an integer (30)"],
    ),
]


@pytest.mark.parametrize(
    ("data", "field", "fragments"),
    [pytest.param(data, field, fragments, id=name) for name, data, field, fragments in BAD_EVENTS],
)
def test_bad_event_names_the_field(data: object, field: str | None, fragments: list[str]) -> None:
    with pytest.raises(FormatError) as info:
        event_from_dict(data)
    assert info.value.field == field
    for fragment in fragments:
        assert fragment in info.value.detail
    assert info.value.line is None


BAD_ACTIONS: list[tuple[str, object, str | None, list[str]]] = [
    (
        "unknown type",
        action("explode"),
        "type",
        ["unknown action type 'explode'", "send_message", "set_title"],
    ),
    ("count is a boolean", action("warn", count=True), "count", ["an integer", "boolean (true)"]),
    ("count is a string", action("warn", count="2"), "count", ["an integer", "a string ('2')"]),
    ("negative count", action("warn", count=-1), "count", ["non-negative", "integer (-1)"]),
    (
        "mute without until",
        action("mute"),
        "until",
        ["ISO 8601 timestamp", "found nothing", "mute action"],
    ),
    (
        "ban until without offset",
        action("ban", until="2026-04-01T00:00:00"),
        "until",
        ["must include a UTC offset", "'2026-04-01T00:00:00'"],
    ),
    ("source not a string", action("kick", source=["rule"]), "source", ["a string", "a list"]),
    (
        "missing reason",
        {k: v for k, v in action("kick").items() if k != "reason"},
        "reason",
        ["expected a string", "found nothing"],
    ),
]


@pytest.mark.parametrize(
    ("data", "field", "fragments"),
    [pytest.param(data, field, fragments, id=name) for name, data, field, fragments in BAD_ACTIONS],
)
def test_bad_action_names_the_field(data: object, field: str | None, fragments: list[str]) -> None:
    with pytest.raises(FormatError) as info:
        action_from_dict(data)
    assert info.value.field == field
    for fragment in fragments:
        assert fragment in info.value.detail


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "not valid JSON"),
        ('{"type": "member_left",', "not valid JSON"),
        ('{"type": "warn", "count": NaN}', "NaN is not a JSON number"),
        ("[" * 50_000, "not valid JSON"),
    ],
)
def test_invalid_json_is_a_format_error(text: str, fragment: str) -> None:
    for read in (event_from_json, action_from_json):
        with pytest.raises(FormatError) as info:
            read(text, line=12)
        assert fragment in info.value.detail
        assert info.value.field is None
        assert info.value.line == 12


def test_line_is_carried_into_the_error() -> None:
    line = json.dumps(event("member_left", reason="quit"))
    with pytest.raises(FormatError) as info:
        event_from_json(line, line=7)
    assert (info.value.line, info.value.field) == (7, "reason")
    assert str(info.value).startswith("line 7: field 'reason': expected one of")

    with pytest.raises(FormatError) as info:
        action_from_dict(action("warn", count=-2), line=8)
    assert (info.value.line, info.value.field) == (8, "count")


def test_python_values_that_are_not_json_are_format_errors() -> None:
    with pytest.raises(FormatError) as info:
        event_from_dict({**event("member_left", reason="left"), "extra_set": {1, 2}})
    assert info.value.field == "extra_set"
    assert "expected a JSON value, found a Python set" in info.value.detail

    non_string_key: dict[Any, Any] = {**event("member_left", reason="left"), 5: "x"}
    with pytest.raises(FormatError) as info:
        event_from_dict(non_string_key)
    assert "keys must be strings" in info.value.detail


# --------------------------------------------------------------------------- construction


def test_constructing_with_a_naive_datetime_is_refused() -> None:
    with pytest.raises(FormatError) as info:
        MemberLeft(
            event_id="e", platform="p", user="u", at=datetime(2026, 3, 29), reason=LeaveReason.LEFT
        )
    assert info.value.field == "at"
    assert "must include a UTC offset" in info.value.detail

    with pytest.raises(FormatError) as info:
        Mute(**ACTION_COMMON, until=datetime(2026, 3, 29))
    assert info.value.field == "until"


def test_constructing_with_bad_values_is_refused() -> None:
    at = datetime(2026, 3, 29, tzinfo=UTC)
    with pytest.raises(FormatError, match="leading '/'"):
        CommandInvoked(event_id="e", platform="p", user="u", at=at, command="/x", args=())
    with pytest.raises(FormatError, match="non-negative decimal"):
        MemberPaid(event_id="e", platform="p", user="u", at=at, amount=Decimal(-1), currency="X")
    with pytest.raises(FormatError, match="non-negative decimal"):
        MemberPaid(
            event_id="e", platform="p", user="u", at=at, amount=Decimal("Infinity"), currency="X"
        )
    with pytest.raises(FormatError, match="non-negative integer"):
        Warn(**ACTION_COMMON, count=True)
    with pytest.raises(FormatError) as info:
        MemberLeft(
            event_id="e", platform="p", user="u", at=at, reason=LeaveReason.LEFT, extra={"user": 1}
        )
    assert info.value.field == "extra.user"
    assert "clashes with a declared field" in info.value.detail
