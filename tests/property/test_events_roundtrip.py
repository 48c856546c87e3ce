"""Properties of the JSON form of events and actions (``EVENTS.md``).

Every event and every action survives a trip through JSON unchanged (offsets,
decimal exponents and unknown fields included), and no input whatsoever makes
the readers raise anything but ``FormatError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from communitykit._errors import FormatError
from communitykit.model._actions import (
    ACTION_TYPES,
    Action,
    ApproveJoin,
    Ban,
    CreateInviteLink,
    DeclineJoin,
    DeleteMessage,
    Kick,
    Mute,
    SendDirectMessage,
    SendMessage,
    SetTitle,
    Warn,
    action_from_dict,
    action_from_json,
)
from communitykit.model._events import (
    EVENT_TYPES,
    CommandInvoked,
    Event,
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
from communitykit.model._json import _thaw, _write_plan
from communitykit.model._time import epoch_us, iso_text

# --------------------------------------------------------------------------- building blocks

CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
EMOJI = st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)
texts = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.one_of(CJK, EMOJI, st.sampled_from(' ,.!?\n"\\/')), max_size=20),
    st.sampled_from(["打卡", "早安 🌞", "欢迎新朋友 🎉", "👍🏽", "ok"]),
)
optional_texts = st.none() | texts

offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
aware_datetimes = st.builds(
    lambda naive, tz: naive.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
    offsets,
)

amounts = st.builds(
    lambda coefficient, exponent: Decimal((0, tuple(map(int, str(coefficient))), exponent)),
    st.integers(min_value=0, max_value=10**15),
    st.integers(min_value=-6, max_value=3),
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=8,
)


def extras_for(cls: type[Event | Action]) -> st.SearchStrategy[dict[str, Any]]:
    """Unknown fields that do not collide with ``type`` or a declared field of ``cls``."""
    taken = {"type"} | {field.name for field in attrs.fields(cls)} - {"extra"}
    keys = texts.filter(lambda key: key not in taken)
    return st.dictionaries(keys, json_values, max_size=3)


def events_of(cls: type[Event], **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Event]:
    return st.builds(
        cls,
        event_id=texts,
        platform=st.sampled_from(["telegram", "discord", "wecom", "console"]) | texts,
        group=optional_texts,
        user=texts,
        at=aware_datetimes,
        extra=extras_for(cls),
        **fields,
    )


def actions_of(cls: type[Action], **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Action]:
    return st.builds(
        cls,
        action_id=texts,
        platform=texts,
        group=optional_texts,
        user=optional_texts,
        source=st.sampled_from(["rule:links", "campaign:checkin"]) | texts,
        reason=texts,
        extra=extras_for(cls),
        **fields,
    )


commands = texts.filter(lambda text: text != "" and not text.startswith("/"))

EVENT_STRATEGIES: dict[type[Event], st.SearchStrategy[Event]] = {
    MemberJoined: events_of(
        MemberJoined, display_name=optional_texts, invite=optional_texts, added_by=optional_texts
    ),
    MemberLeft: events_of(MemberLeft, reason=st.sampled_from(LeaveReason)),
    JoinRequested: events_of(
        JoinRequested, answers=st.dictionaries(texts, texts, max_size=3), invite=optional_texts
    ),
    MessagePosted: events_of(
        MessagePosted,
        message_id=texts,
        text=texts,
        reply_to=optional_texts,
        media=st.none() | st.sampled_from(Media),
    ),
    MessageEdited: events_of(MessageEdited, message_id=texts, text=texts),
    ReactionAdded: events_of(ReactionAdded, message_id=texts, emoji=texts, to_user=optional_texts),
    CommandInvoked: events_of(
        CommandInvoked, command=commands, args=st.lists(texts, max_size=4).map(tuple)
    ),
    MemberPaid: events_of(
        MemberPaid,
        amount=amounts,
        currency=st.sampled_from(["CNY", "USD", "EUR"]) | texts,
        valid_until=st.none() | st.dates(),
    ),
}

ACTION_STRATEGIES: dict[type[Action], st.SearchStrategy[Action]] = {
    SendMessage: actions_of(SendMessage, text=texts, reply_to=optional_texts),
    SendDirectMessage: actions_of(SendDirectMessage, text=texts),
    DeleteMessage: actions_of(DeleteMessage, message_id=texts),
    Warn: actions_of(Warn, count=st.integers(min_value=0)),
    Mute: actions_of(Mute, until=aware_datetimes),
    Kick: actions_of(Kick),
    Ban: actions_of(Ban, until=st.none() | aware_datetimes),
    ApproveJoin: actions_of(ApproveJoin),
    DeclineJoin: actions_of(DeclineJoin),
    CreateInviteLink: actions_of(CreateInviteLink, name=texts),
    SetTitle: actions_of(SetTitle, title=texts),
}

events = st.one_of(list(EVENT_STRATEGIES.values()))
actions = st.one_of(list(ACTION_STRATEGIES.values()))


def test_strategies_cover_every_type() -> None:
    assert set(EVENT_STRATEGIES) == set(EVENT_TYPES.values())
    assert set(ACTION_STRATEGIES) == set(ACTION_TYPES.values())


# --------------------------------------------------------------------------- round trips


@given(events)
def test_events_round_trip_through_json(event: Event) -> None:
    line = event.to_json()
    parsed = event_from_json(line)
    assert type(parsed) is type(event)
    assert parsed == event
    assert parsed.to_json() == line
    assert "\n" not in line
    assert event_from_dict(json.loads(line)) == event


@given(actions)
def test_actions_round_trip_through_json(action: Action) -> None:
    line = action.to_json()
    parsed = action_from_json(line)
    assert type(parsed) is type(action)
    assert parsed == action
    assert parsed.to_json() == line
    assert "\n" not in line
    assert action_from_dict(json.loads(line)) == action


def _to_dict_by_plan(record: Event | Action) -> dict[str, Any]:
    """``to_dict`` as the write plan says it, field by field (what the unrolled one does)."""
    out: dict[str, Any] = {"type": record.TYPE}
    for name, encode, has_default, default in _write_plan(type(record)):
        value = getattr(record, name)
        if value is None:
            if not has_default or default is not None:
                out[name] = None
        elif not has_default or default is None or value != default:
            out[name] = value if encode is None else encode(value)
    if record.extra:
        out.update((key, _thaw(value)) for key, value in record.extra.items())
    return out


@given(st.one_of(events, actions))
def test_to_dict_writes_what_the_write_plan_says(record: Event | Action) -> None:
    data = record.to_dict()
    assert data == _to_dict_by_plan(record)
    assert list(data) == list(_to_dict_by_plan(record))


@given(st.one_of(events, actions))
def test_to_json_is_the_encoders_text_byte_for_byte(record: Event | Action) -> None:
    # to_json writes strings, integers and timestamps itself: exactly what the
    # standard encoder makes of to_dict, separators, escapes and order included
    expected = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode(record.to_dict())
    assert record.to_json() == expected
    assert record.to_json() == expected  # written again (timestamp texts remembered)


@given(st.lists(st.tuples(aware_datetimes, offsets), min_size=1, max_size=30))
def test_remembered_timestamp_text_is_always_the_objects_own(
    moments: list[tuple[datetime, timezone]],
) -> None:
    # the same instant at several offsets: equal datetimes, each with its own text
    written = []
    for at, tz in moments:
        written.extend([at, at.astimezone(tz)])
    for at in written + written[::-1]:
        assert iso_text(at) == at.isoformat()
        assert epoch_us(at) == (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@given(events, st.datetimes(timezones=st.just(UTC)), offsets)
def test_round_trip_preserves_offset(event: Event, until: datetime, tz: timezone) -> None:
    parsed = event_from_json(event.to_json())
    assert parsed.at.utcoffset() == event.at.utcoffset()
    assert parsed.at.isoformat() == event.at.isoformat()

    mute = Mute(
        action_id="a", platform="console", source="rule:x", reason="r", until=until.astimezone(tz)
    )
    parsed_mute = action_from_json(mute.to_json())
    assert isinstance(parsed_mute, Mute)
    assert parsed_mute.until.utcoffset() == tz.utcoffset(None)


@given(amounts)
def test_round_trip_preserves_decimal_exponent(amount: Decimal) -> None:
    event = MemberPaid(
        event_id="p",
        platform="console",
        user="u",
        at=datetime(2026, 3, 29, tzinfo=UTC),
        amount=amount,
        currency="CNY",
    )
    written = event.to_dict()["amount"]
    parsed = event_from_json(event.to_json())
    assert isinstance(parsed, MemberPaid)
    assert parsed.amount == amount
    assert parsed.to_dict()["amount"] == written
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent <= 0:
        assert parsed.amount.as_tuple() == amount.as_tuple()


# --------------------------------------------------------------------------- hostile input

ALL_KEYS = sorted(
    {"type"}
    | {f.name for cls in EVENT_TYPES.values() for f in attrs.fields(cls)}
    | {f.name for cls in ACTION_TYPES.values() for f in attrs.fields(cls)}
)
type_values = st.sampled_from(sorted([*EVENT_TYPES, *ACTION_TYPES])) | json_values
hostile_dicts = st.dictionaries(
    st.sampled_from(ALL_KEYS) | texts,
    st.one_of(
        json_values,
        aware_datetimes.map(datetime.isoformat),
        st.datetimes().map(datetime.isoformat),
        st.dates().map(str),
        st.sampled_from(["99.00", "-1", "1e3", "NaN", " 1", "left", "photo", "/x", ""]),
        st.lists(texts, max_size=3),
    ),
    max_size=12,
).flatmap(lambda data: st.just(data) | type_values.map(lambda kind: {**data, "type": kind}))


def _mutations(
    records: st.SearchStrategy[Event] | st.SearchStrategy[Action],
) -> st.SearchStrategy[dict[str, Any]]:
    """A valid record's JSON object with one key replaced by anything, or deleted."""

    def mutate(data: dict[str, Any], draw: st.DrawFn) -> dict[str, Any]:
        key = draw(st.sampled_from(sorted(data)))
        if draw(st.booleans()):
            return {k: v for k, v in data.items() if k != key}
        return {**data, key: draw(json_values)}

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        return mutate(draw(records).to_dict(), draw)

    return build()


READERS: list[tuple[str, Callable[..., Any], Callable[..., Any], Any]] = [
    ("event", event_from_dict, event_from_json, events),
    ("action", action_from_dict, action_from_json, actions),
]


def _only_format_error(
    read: Callable[..., Any], data: object, from_json: Callable[..., Any]
) -> None:
    error: FormatError | None = None
    try:
        record = read(data, line=3)
    except FormatError as exc:
        error = exc
    if error is not None:
        assert error.line == 3
        assert str(error).startswith("line 3")
        return
    # Whatever is accepted is a proper record that round-trips.
    assert from_json(record.to_json()) == record


@pytest.mark.parametrize(("kind", "from_dict", "from_json", "records"), READERS)
@given(data=st.data())
def test_arbitrary_input_raises_only_format_error(
    kind: str,
    from_dict: Callable[..., Any],
    from_json: Callable[..., Any],
    records: Any,
    data: st.DataObject,
) -> None:
    value = data.draw(
        st.one_of(json_values, hostile_dicts, _mutations(records)), label=f"{kind} input"
    )
    _only_format_error(from_dict, value, from_json)
    text = json.dumps(value, ensure_ascii=data.draw(st.booleans()))
    _only_format_error(from_json, text, from_json)
    _only_format_error(from_json, data.draw(st.text(), label="raw text"), from_json)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "NaN",
        '{"type": "warn", "count": Infinity}',
        "[" * 100_000,
        "1" * 5000,
        '{"type": "member_joined"} trailing',
        "\ud800",
    ],
)
@pytest.mark.parametrize(("kind", "from_dict", "from_json", "records"), READERS)
def test_invalid_json_raises_only_format_error(
    text: str,
    kind: str,
    from_dict: Callable[..., Any],
    from_json: Callable[..., Any],
    records: Any,
) -> None:
    with pytest.raises(FormatError) as info:
        from_json(text, line=9)
    assert info.value.line == 9
