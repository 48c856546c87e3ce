"""The store contract (``communitykit.store._protocol``), run on every store.

Each test gets a fresh, open store from the ``store`` fixture (memory, SQLite).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import pytest

from communitykit.model import (
    Action,
    Ban,
    CommandInvoked,
    Entry,
    EntryKind,
    Event,
    IdentityLink,
    JoinRequested,
    LeaveReason,
    Ledger,
    LinkMethod,
    LinkProvenance,
    Media,
    Member,
    MemberJoined,
    MemberLeft,
    MemberPaid,
    MemberState,
    MemberStatus,
    MessageEdited,
    MessagePosted,
    Mute,
    PlatformIdentity,
    ReactionAdded,
    Role,
    SendDirectMessage,
    SendMessage,
    Warn,
)
from communitykit.store import Batch, OutboxItem, OutboxStatus, Store, StoreError

CST = timezone(timedelta(hours=8))
NYC = timezone(timedelta(hours=-5))
T0 = datetime(2026, 3, 29, 9, 30, 15, 123456, tzinfo=CST)


def at(minutes: float, tz: timezone = CST) -> datetime:
    return (T0 + timedelta(minutes=minutes)).astimezone(tz)


# --------------------------------------------------------------------------- sample data


def sample_events() -> list[Event]:
    common: dict[str, Any] = {"platform": "telegram", "group": "-100123"}
    return [
        MemberJoined(
            event_id="tg-1", user="42", at=at(0), display_name="Ana", invite="inv-7", **common
        ),
        MessagePosted(
            event_id="tg-2",
            user="42",
            at=at(1),
            message_id="7",
            text="早上好 👋",
            media=Media.PHOTO,
            extra={"edited": False, "entities": [{"type": "bold", "offset": 0}]},
            **common,
        ),
        MessageEdited(
            event_id="tg-3", user="42", at=at(2, UTC), message_id="7", text="hi", **common
        ),
        ReactionAdded(
            event_id="tg-4",
            user="43",
            at=at(3, NYC),
            message_id="7",
            emoji="👍",
            to_user="42",
            **common,
        ),
        CommandInvoked(
            event_id="tg-5", user="42", at=at(4), command="checkin", args=("a", "b"), **common
        ),
        JoinRequested(event_id="tg-6", user="44", at=at(5), answers={"why": "to learn"}, **common),
        MemberLeft(event_id="tg-7", user="43", at=at(6), reason=LeaveReason.KICKED, **common),
        MemberPaid(
            event_id="pay-1",
            platform="shop",
            user="42",
            at=at(7),
            amount=Decimal("99.00"),
            currency="CNY",
            valid_until=date(2027, 3, 29),
        ),
        MessagePosted(  # a direct message: no group
            event_id="dm-1", platform="discord", user="9", at=at(8), message_id="1", text="hey"
        ),
    ]


def sample_members() -> list[Member]:
    return [
        Member(
            member_id="m-ana",
            identities=(
                PlatformIdentity("telegram", "42"),
                PlatformIdentity("discord", "9"),
                PlatformIdentity("shop", "42"),
            ),
            display_name="Ana",
            joined_at=at(0),
            role=Role.ADMIN,
            tags={"vip", "camp-3", "早起"},
            paid_until=date(2027, 3, 29),
        ),
        Member(
            member_id="m-bo",
            identities=(PlatformIdentity("telegram", "43"),),
            joined_at=at(0, NYC),
            left_at=at(6, UTC),
            status=MemberStatus.LEFT,
        ),
        Member(member_id="m-cy", identities=(PlatformIdentity("telegram", "44"),)),
    ]


def sample_links() -> list[IdentityLink]:
    return [
        IdentityLink(
            identity=PlatformIdentity("telegram", "42"),
            member_id="m-ana",
            provenance=LinkProvenance(method=LinkMethod.JOINED, at=at(0)),
        ),
        IdentityLink(
            identity=PlatformIdentity("discord", "9"),
            member_id="m-ana",
            provenance=LinkProvenance(
                method=LinkMethod.VERIFIED_CODE, at=at(9, NYC), by="m-ana", note="code 381-204"
            ),
        ),
        IdentityLink(
            identity=PlatformIdentity("shop", "42"),
            member_id="m-ana",
            provenance=LinkProvenance(method=LinkMethod.OPERATOR, at=at(10, UTC), by="op:lee"),
        ),
    ]


def sample_ledger() -> Ledger:
    """A ledger holding an entry of every kind, lots, a reference and unrecovered points."""
    ledger = Ledger("Asia/Shanghai")
    ledger.award("m-ana", 10, reason="message", at=at(1), key="k1", expires_at=at(60 * 24))
    ledger.award("m-ana", 5, reason="checkin", at=at(2, NYC), key="k2")
    ledger.spend("m-ana", 12, reason="shop", at=at(3), key="k3")  # lots e0:10, e1:2
    ledger.reverse("e1", at=at(4), reason="fraud", key="k4")  # unrecovered 2
    pending = ledger.award_pending("m-bo", 7, reason="referral", at=at(5), key="k5")
    ledger.confirm(pending.entry_id, at=at(6))
    second = ledger.award_pending("m-bo", 3, reason="referral", at=at(7), key="k6")
    ledger.cancel(second.entry_id, at=at(8), reason="left the group")
    ledger.award("m-cy", 4, reason="bonus", at=at(9), key="k7", expires_at=at(70))
    ledger.expire(at(120))
    return ledger


def sample_entries() -> list[Entry]:
    return sample_ledger().entries()


def sample_states() -> list[MemberState]:
    return [
        MemberState(
            member_id="m-ana",
            tier="gold",
            tier_since=at(0),
            below_since=at(5, NYC),
            last_active_at=at(8, UTC),
            messages=120,
            reactions_received=33,
        ),
        MemberState(member_id="m-bo", tier="newcomer", tier_since=at(0, NYC)),
    ]


def sample_actions() -> list[Action]:
    common: dict[str, Any] = {"platform": "telegram", "group": "-100123", "source": "rule:test"}
    return [
        SendMessage(action_id="a-1", reason="welcome", text="欢迎 Ana!", reply_to="7", **common),
        Warn(action_id="a-2", user="43", reason="posted a link", count=2, **common),
        Mute(action_id="a-3", user="43", reason="flooding", until=at(60, NYC), **common),
        Ban(action_id="a-4", user="43", reason="spam", extra={"revoke": True}, **common),
        SendDirectMessage(
            action_id="a-5",
            platform="discord",
            user="9",
            source="campaign:camp",
            reason="r",
            text="day 1",
        ),
    ]


def full_batch() -> Batch:
    return Batch(
        events=sample_events(),
        members={m.member_id: m for m in sample_members()},
        links=sample_links(),
        entries=sample_entries(),
        states={s.member_id: s for s in sample_states()},
        actions=sample_actions(),
        created_at=at(10),
        meta={"schedule:digest": at(10).isoformat(), "cursor:telegram": "1234"},
    )


def snapshot(store: Store) -> dict[str, object]:
    """Everything a store holds, read back through the contract."""
    return {
        "events": list(store.iter_events()),
        "count": store.count_events(),
        "members": list(store.load_members()),
        "links": list(store.load_links()),
        "entries": list(store.load_entries()),
        "states": list(store.load_states()),
        "outbox": list(store.outbox()),
        "meta": {key: store.get_meta(key) for key in ("schedule:digest", "cursor:telegram")},
    }


def by_id(members: list[Member]) -> dict[str, Member]:
    return {m.member_id: m for m in members}


# --------------------------------------------------------------------------- round trips


def test_the_sample_ledger_holds_every_kind_of_entry() -> None:
    entries = sample_entries()
    assert {e.kind for e in entries} == set(EntryKind)
    assert any(e.lots for e in entries)
    assert any(e.unrecovered for e in entries)
    assert any(e.refers_to for e in entries)
    assert any(e.expires_at for e in entries)


def test_a_fresh_store_is_empty_and_at_the_newest_schema(store: Store) -> None:
    from communitykit.store._schema import SCHEMA_VERSION

    assert store.schema_version() == SCHEMA_VERSION
    assert store.count_events() == 0
    assert list(store.iter_events()) == []
    assert list(store.load_members()) == []
    assert list(store.load_entries()) == []
    assert list(store.outbox()) == []
    assert store.next_due() is None
    assert store.get_meta("anything") is None


def test_everything_committed_reads_back_equal(store: Store) -> None:
    store.commit(full_batch())

    assert list(store.iter_events()) == sample_events()
    assert store.count_events() == len(sample_events())
    assert by_id(list(store.load_members())) == by_id(sample_members())
    assert list(store.load_links()) == sample_links()
    assert list(store.load_entries()) == sample_entries()
    assert {s.member_id: s for s in store.load_states()} == {
        s.member_id: s for s in sample_states()
    }
    assert [item.action for item in store.outbox()] == sample_actions()
    assert store.get_meta("cursor:telegram") == "1234"


def test_times_read_back_with_their_original_offset(store: Store) -> None:
    store.commit(full_batch())
    offsets = [e.at.utcoffset() for e in store.iter_events()]
    assert offsets == [e.at.utcoffset() for e in sample_events()]
    assert [e.at.isoformat() for e in store.load_entries()] == [
        e.at.isoformat() for e in sample_entries()
    ]
    assert [e.expires_at and e.expires_at.isoformat() for e in store.load_entries()] == [
        e.expires_at and e.expires_at.isoformat() for e in sample_entries()
    ]
    assert [ln.provenance.at.isoformat() for ln in store.load_links()] == [
        ln.provenance.at.isoformat() for ln in sample_links()
    ]
    bo = by_id(list(store.load_members()))["m-bo"]
    assert bo.joined_at is not None and bo.joined_at.utcoffset() == timedelta(hours=-5)
    assert bo.left_at is not None and bo.left_at.utcoffset() == timedelta(0)
    (item, *_) = store.outbox()
    assert item.created_at.isoformat() == at(10).isoformat()


def test_entries_keep_kind_lots_references_and_unrecovered_points(store: Store) -> None:
    store.commit(full_batch())
    loaded = list(store.load_entries())
    for mine, theirs in zip(loaded, sample_entries(), strict=True):
        assert type(mine.kind) is EntryKind
        assert mine.lots == theirs.lots
        assert isinstance(mine.lots, tuple)
        assert all(isinstance(lot, tuple) for lot in mine.lots)
        assert mine.to_dict() == theirs.to_dict()


def test_members_keep_identity_order_tags_and_paid_until(store: Store) -> None:
    store.commit(full_batch())
    ana = by_id(list(store.load_members()))["m-ana"]
    assert [str(i) for i in ana.identities] == ["telegram:42", "discord:9", "shop:42"]
    assert isinstance(ana.tags, frozenset)
    assert ana.tags == {"vip", "camp-3", "早起"}
    assert ana.paid_until == date(2027, 3, 29)
    assert type(ana.paid_until) is date
    assert ana.role is Role.ADMIN


def test_batches_append_in_order(store: Store) -> None:
    ledger = sample_ledger()
    entries = ledger.entries()
    events = sample_events()
    store.commit(Batch(events=events[:4], entries=entries[:3]))
    store.commit(Batch(events=events[4:], entries=entries[3:]))
    assert list(store.iter_events()) == events
    assert list(store.load_entries()) == entries


def test_many_events_stream_back_in_order(store: Store) -> None:
    events: list[Event] = [
        MessagePosted(
            event_id=f"e-{i}",
            platform="telegram",
            group="g",
            user=str(i % 7),
            at=at(i),
            message_id=str(i),
            text=f"message {i}",
        )
        for i in range(2_500)
    ]
    for start in range(0, len(events), 1000):
        store.commit(Batch(events=events[start : start + 1000]))
    assert store.count_events() == 2_500
    assert list(store.iter_events()) == events


def test_an_empty_batch_changes_nothing(store: Store) -> None:
    store.commit(full_batch())
    before = snapshot(store)
    store.commit(Batch())
    assert snapshot(store) == before


# --------------------------------------------------------------------------- all or nothing


def _refused(store: Store, batch: Batch, match: str) -> None:
    before = snapshot(store)
    with pytest.raises(StoreError, match=match) as info:
        store.commit(batch)
    assert "nothing was written" in str(info.value)
    assert snapshot(store) == before


def _more(events: list[Event] | None = None, entries: list[Entry] | None = None) -> Batch:
    """A batch that would change every kind of data, were it accepted."""
    new_member = Member(member_id="m-dee", identities=(PlatformIdentity("telegram", "45"),))
    return Batch(
        events=events or [],
        members={"m-dee": new_member},
        links=[
            IdentityLink(
                identity=PlatformIdentity("telegram", "45"),
                member_id="m-dee",
                provenance=LinkProvenance(method=LinkMethod.JOINED, at=at(30)),
            )
        ],
        entries=entries or [],
        states={"m-dee": MemberState(member_id="m-dee", tier="newcomer", tier_since=at(30))},
        actions=[
            SendMessage(
                action_id="a-99", platform="telegram", group="g", source="s", reason="r", text="x"
            )
        ],
        created_at=at(30),
        meta={"cursor:telegram": "9999"},
    )


def _message(event_id: str) -> MessagePosted:
    return MessagePosted(
        event_id=event_id,
        platform="telegram",
        group="g",
        user="45",
        at=at(31),
        message_id=event_id,
        text="x",
    )


def test_a_batch_with_an_event_already_stored_writes_nothing(store: Store) -> None:
    store.commit(full_batch())
    ledger = sample_ledger()
    entry = ledger.award("m-dee", 1, reason="message", at=at(31), key="fresh-key")
    assert entry is not None
    duplicate = _more(events=[_message("new-1"), sample_events()[2]], entries=[entry])
    _refused(store, duplicate, "event telegram:tg-3 is already stored")


def test_a_batch_with_an_idempotency_key_already_used_writes_nothing(store: Store) -> None:
    store.commit(full_batch())
    ledger = sample_ledger()
    entry = ledger.award("m-dee", 1, reason="message", at=at(31), key="k2-again")
    assert entry is not None
    reused = attrs.evolve(entry, idempotency_key="k2")
    _refused(store, _more(events=[_message("new-1")], entries=[reused]), "'k2' is already used")


def test_duplicates_inside_one_batch_write_nothing(store: Store) -> None:
    store.commit(full_batch())
    _refused(store, _more(events=[_message("x"), _message("x")]), "twice in the batch")
    ledger = sample_ledger()
    first = ledger.award("m-dee", 1, reason="message", at=at(31), key="a")
    second = ledger.award("m-dee", 1, reason="message", at=at(31), key="b")
    assert first is not None and second is not None
    twice = [first, attrs.evolve(second, idempotency_key="a")]
    _refused(store, _more(entries=twice), "'a' is twice in the batch")


def test_entries_must_continue_the_stored_sequence(store: Store) -> None:
    store.commit(full_batch())
    ledger = sample_ledger()
    ledger.award("m-dee", 1, reason="message", at=at(31), key="a")
    entry = ledger.award("m-dee", 1, reason="message", at=at(31), key="b")
    assert entry is not None
    n = len(sample_entries())
    _refused(
        store, _more(entries=[entry]), f"does not continue the stored ledger .the next is e{n}"
    )
    again = sample_entries()[-1:]  # e{n-1} again
    _refused(store, _more(entries=again), "does not continue|already used")
    gap = [ledger.entries()[n], entry]
    gap[1] = attrs.evolve(entry, entry_id=f"e{n + 5}")
    _refused(store, _more(entries=gap), "out of sequence")


def test_an_identity_of_another_member_is_refused(store: Store) -> None:
    store.commit(full_batch())
    thief = Member(member_id="m-dee", identities=(PlatformIdentity("telegram", "42"),))
    batch = _more()
    batch.members = {"m-dee": thief}
    _refused(store, batch, "identity telegram:42 already belongs to member 'm-ana'")


def test_actions_need_a_creation_time(store: Store) -> None:
    batch = _more()
    batch.created_at = None
    _refused(store, batch, "no created_at")


def test_an_action_id_already_in_the_outbox_is_refused(store: Store) -> None:
    store.commit(full_batch())
    batch = _more()
    batch.actions = [sample_actions()[0]]
    _refused(store, batch, "'a-1' is already in the outbox")


def test_known_actions_are_those_in_the_outbox_whatever_their_status(store: Store) -> None:
    store.commit(full_batch())
    ids = [a.action_id for a in sample_actions()]
    store.mark_failed(ids[0], "gone", T0)
    assert store.known_actions([*ids, "a-nope", ids[0]]) == set(ids)
    assert store.known_actions([]) == set()


def test_a_refused_batch_can_be_committed_once_corrected(store: Store) -> None:
    store.commit(full_batch())
    batch = _more(events=[_message("n-1"), sample_events()[0]])
    with pytest.raises(StoreError):
        store.commit(batch)
    batch.events = [_message("n-1")]
    store.commit(batch)
    assert store.count_events() == len(sample_events()) + 1
    assert store.get_meta("cursor:telegram") == "9999"


# --------------------------------------------------------------------------- events seen


def test_seen_events_names_the_stored_keys(store: Store) -> None:
    assert store.seen_events([("telegram", "tg-1")]) == set()
    store.commit(Batch(events=sample_events()))
    asked = [("telegram", "tg-1"), ("telegram", "nope"), ("shop", "pay-1"), ("shop", "tg-1")]
    assert store.seen_events(asked) == {("telegram", "tg-1"), ("shop", "pay-1")}
    assert store.seen_events([]) == set()
    many = [("telegram", f"x-{i}") for i in range(1_200)] + [("discord", "dm-1")]
    assert store.seen_events(many) == {("discord", "dm-1")}


# --------------------------------------------------------------------------- members


def test_member_upserts_replace_the_record(store: Store) -> None:
    store.commit(full_batch())
    ana = by_id(list(store.load_members()))["m-ana"]
    renamed = attrs.evolve(ana, display_name="Ana L.", tags=frozenset({"alumni"}), paid_until=None)
    store.commit(Batch(members={"m-ana": renamed}))
    members = by_id(list(store.load_members()))
    assert members["m-ana"] == renamed
    assert len(members) == 3


def test_a_merge_removes_the_absorbed_member_and_moves_its_identities(store: Store) -> None:
    store.commit(full_batch())
    members = by_id(list(store.load_members()))
    ana, bo = members["m-ana"], members["m-bo"]
    merged = attrs.evolve(ana, identities=(*ana.identities, *bo.identities))
    store.commit(Batch(members={"m-ana": merged}, removed_members={"m-bo"}))
    after = by_id(list(store.load_members()))
    assert set(after) == {"m-ana", "m-cy"}
    assert after["m-ana"] == merged

    # and back: the survivor gives the identity back to the absorbed member
    store.commit(Batch(members={"m-ana": ana, "m-bo": bo}))
    assert by_id(list(store.load_members())) == members


def test_a_member_cannot_be_both_written_and_removed(store: Store) -> None:
    store.commit(full_batch())
    ana = sample_members()[0]
    _refused(store, Batch(members={"m-ana": ana}, removed_members={"m-ana"}), "both written")


def test_member_states_are_upserted(store: Store) -> None:
    store.commit(full_batch())
    ana = sample_states()[0]
    newer = attrs.evolve(ana, tier="platinum", tier_since=at(50), below_since=None, messages=121)
    cy = MemberState(member_id="m-cy", tier="newcomer", tier_since=at(50))
    store.commit(Batch(states={"m-ana": newer, "m-cy": cy}))
    assert {s.member_id: s for s in store.load_states()} == {
        "m-ana": newer,
        "m-bo": sample_states()[1],
        "m-cy": cy,
    }


# --------------------------------------------------------------------------- meta


def test_meta_is_upserted(store: Store) -> None:
    store.commit(Batch(meta={"a": "1", "b": "2"}))
    store.commit(Batch(meta={"a": "3"}))
    assert (store.get_meta("a"), store.get_meta("b"), store.get_meta("c")) == ("3", "2", None)


# --------------------------------------------------------------------------- outbox


def _outbox_batch(created: datetime) -> Batch:
    return Batch(actions=sample_actions(), created_at=created)


def test_new_actions_are_pending_and_due_from_their_creation(store: Store) -> None:
    store.commit(_outbox_batch(at(10)))
    items = list(store.outbox())
    assert [i.action.action_id for i in items] == ["a-1", "a-2", "a-3", "a-4", "a-5"]
    assert [i.seq for i in items] == sorted(i.seq for i in items)
    assert len({i.seq for i in items}) == 5
    for item in items:
        assert isinstance(item, OutboxItem)
        assert item.status is OutboxStatus.PENDING
        assert item.attempts == 0
        assert item.next_attempt_at == at(10)
        assert item.created_at == at(10)
        assert item.receipt is None and item.error is None
    assert store.next_due() == at(10)
    assert store.due_actions(at(9)) == []
    assert [i.action.action_id for i in store.due_actions(at(10))] == [
        "a-1",
        "a-2",
        "a-3",
        "a-4",
        "a-5",
    ]
    assert [i.action.action_id for i in store.due_actions(at(11), limit=2)] == ["a-1", "a-2"]


def test_the_outbox_lifecycle(store: Store) -> None:
    store.commit(_outbox_batch(at(10)))
    later = Batch(
        actions=[
            SendMessage(
                action_id="b-1", platform="telegram", group="g", source="s", reason="r", text="t"
            )
        ],
        created_at=at(12),
    )
    store.commit(later)

    store.mark_delivered("a-1", "pm-1", at(11))
    store.mark_failed("a-2", "bot was kicked", at(11))
    store.reschedule("a-3", "429 too many requests", at(20))
    store.reschedule("a-3", "429 again", at(25))
    store.mark_delivered("a-5", None, at(11))

    items = {i.action.action_id: i for i in store.outbox()}
    assert (items["a-1"].status, items["a-1"].receipt, items["a-1"].attempts) == (
        OutboxStatus.DELIVERED,
        "pm-1",
        1,
    )
    assert items["a-1"].next_attempt_at is None
    assert (items["a-2"].status, items["a-2"].error, items["a-2"].attempts) == (
        OutboxStatus.FAILED,
        "bot was kicked",
        1,
    )
    assert (items["a-3"].status, items["a-3"].error, items["a-3"].attempts) == (
        OutboxStatus.PENDING,
        "429 again",
        2,
    )
    assert items["a-3"].next_attempt_at == at(25)
    assert items["a-5"].receipt is None

    # due: a-4 (since 10) and b-1 (since 12), oldest first; a-3 only from 25
    assert [i.action.action_id for i in store.due_actions(at(12))] == ["a-4", "b-1"]
    assert [i.action.action_id for i in store.due_actions(at(11))] == ["a-4"]
    assert [i.action.action_id for i in store.due_actions(at(30))] == ["a-3", "a-4", "b-1"]
    assert store.next_due() == at(10)

    store.mark_delivered("a-4", "pm-4", at(13))
    store.mark_delivered("b-1", "pm-5", at(13))
    assert store.next_due() == at(25)
    store.mark_delivered("a-3", "pm-3", at(26))
    assert store.next_due() is None
    assert store.due_actions(at(1000)) == []

    assert [i.action.action_id for i in store.outbox(OutboxStatus.FAILED)] == ["a-2"]
    assert [i.action.action_id for i in store.outbox(OutboxStatus.PENDING)] == []
    assert [i.action.action_id for i in store.outbox(OutboxStatus.DELIVERED)] == [
        "a-1",
        "a-3",
        "a-4",
        "a-5",
        "b-1",
    ]
    assert [i.action for i in store.outbox()][:5] == sample_actions()


def test_only_pending_actions_can_be_settled(store: Store) -> None:
    store.commit(_outbox_batch(at(10)))
    store.mark_delivered("a-1", "pm-1", at(11))
    with pytest.raises(StoreError, match=r"'a-1' .* is delivered, not pending"):
        store.reschedule("a-1", "late", at(20))
    with pytest.raises(StoreError, match="no action 'zzz'"):
        store.mark_failed("zzz", "?", at(11))
    item = next(i for i in store.outbox() if i.action.action_id == "a-1")
    assert (item.status, item.attempts) == (OutboxStatus.DELIVERED, 1)


def test_due_actions_compare_instants_not_wall_clocks(store: Store) -> None:
    store.commit(_outbox_batch(at(10)))  # 09:40:15+08:00
    just_before = at(10, NYC) - timedelta(microseconds=1)  # 20:40:15-05:00 the day before
    assert store.due_actions(just_before) == []
    assert len(store.due_actions(at(10, UTC))) == 5


# --------------------------------------------------------------------------- life cycle


def test_a_closed_store_refuses_work(store: Store) -> None:
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="not open"):
        store.count_events()
    with pytest.raises(StoreError, match="not open"):
        store.commit(Batch())
    store.open()
    store.open()  # idempotent
    assert store.count_events() == 0


def test_data_survives_close_and_open(store: Store) -> None:
    store.commit(full_batch())
    before = snapshot(store)
    store.close()
    store.open()
    assert snapshot(store) == before


def test_a_read_in_progress_is_not_disturbed_by_a_commit(store: Store) -> None:
    events: list[Event] = [
        MessagePosted(
            event_id=f"e-{i}",
            platform="telegram",
            group="g",
            user="1",
            at=at(i),
            message_id=str(i),
            text="x",
        )
        for i in range(1_500)
    ]
    store.commit(Batch(events=events[:1_200]))
    reading = store.iter_events()
    first = next(reading)
    store.commit(Batch(events=events[1_200:]))
    assert [first, *reading] == events[:1_200]
    assert list(store.iter_events()) == events


# ------------------------------------------------------------------ moderation


def test_moderation_state_reads_back_as_written_and_forgotten_state_is_gone(
    store: Store,
) -> None:
    from communitykit.model import AuditKind, AuditRecord, SendMessage, Warn

    at = datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=8)))
    warn = Warn(
        action_id="a-w",
        platform="console",
        group="g",
        user="u",
        source="rule:x",
        reason="r",
        count=1,
    )
    instead = SendMessage(
        action_id="a-s", platform="console", group="g", source="rule:x", reason="r", text="hi"
    )
    first = Batch(
        rule_states={
            ("flood", "m1"): {"muted_until": "2026-03-01T10:00:00+08:00", "n": [1, 2]},
            ("captcha", "m2"): {"code": "1234"},
        },
        group_members={("main", "m1"): at, ("main", "m2"): at},
        invites={("console", "https://t.me/+abc"): "m1"},
        audit=[
            AuditRecord(
                at=at,
                kind=AuditKind.VERDICT,
                rule="links",
                member_id="m1",
                event="console:e1",
                actions=(warn,),
                explanation="posted a link",
            ),
            AuditRecord(
                at=at, kind=AuditKind.PARDON, rule="links", member_id="m2", explanation="pardoned"
            ),
        ],
        fallbacks={"a-w": ("links", "m1", (instead,))},
    )
    store.commit(first)
    store.commit(Batch(rule_states={("captcha", "m2"): None}, group_members={("main", "m2"): None}))

    assert list(store.load_rule_states()) == [
        ("flood", "m1", {"muted_until": "2026-03-01T10:00:00+08:00", "n": [1, 2]})
    ]
    assert list(store.load_group_members()) == [("main", "m1", at)]
    assert list(store.load_invites()) == [("console", "https://t.me/+abc", "m1")]
    trail = list(store.audit_trail())
    assert [(r.seq, r.kind, r.member_id) for r in trail] == [
        (1, AuditKind.VERDICT, "m1"),
        (2, AuditKind.PARDON, "m2"),
    ]
    assert trail[0].actions == (warn,) and trail[0].at == at and trail[0].event == "console:e1"
    # every field as written, numbered in order
    assert trail == [attrs.evolve(r, seq=n) for n, r in enumerate(first.audit, start=1)]
    assert [r.seq for r in store.audit_trail(member_id="m2")] == [2]
    assert [r.seq for r in store.audit_trail(rule="links", member_id="m1")] == [1]
    assert store.fallbacks_of("a-w") == ("links", "m1", (instead,))
    assert store.fallbacks_of("a-nothing") is None


def test_events_since_a_moment_are_those_at_or_after_it(store: Store) -> None:
    batch = full_batch()
    store.commit(batch)
    moments = sorted(e.at for e in batch.events)
    middle = moments[len(moments) // 2]
    got = list(store.iter_events_since(middle))
    assert got == [e for e in batch.events if e.at >= middle]
