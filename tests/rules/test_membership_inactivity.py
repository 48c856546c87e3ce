"""The ``inactivity`` rule type: the daily sweep that reminds, then removes, silent members."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from communitykit import (
    Kick,
    Member,
    MemberState,
    MemberStatus,
    Role,
    SendDirectMessage,
    SendMessage,
)
from communitykit._errors import ModelError
from communitykit.builtins.rules.membership import InactivityRule, communitykit_rule_types
from tests.rules.membership_helpers import FakeSource, community, member, state_of, tick

NOW = datetime.fromisoformat("2026-03-08T10:00:00-04:00")  # the first New York morning in EDT
RULE = InactivityRule.from_settings({})
NEW_YORK = community("America/New_York")
BOTH = frozenset({"main", "main2"})


def sweep(
    people: Mapping[str, tuple[Member, MemberState]],
    states: Mapping[str, Mapping[str, Any]] | None = None,
    groups: Mapping[str, frozenset[str]] | None = None,
    now: datetime = NOW,
    rule: InactivityRule = RULE,
) -> list[Any]:
    source = FakeSource(
        members=people,
        rule_states={rule.name: states or {}},
        groups=groups if groups is not None else dict.fromkeys(people, BOTH),
    )
    return list(rule.on_schedule(tick(now, NEW_YORK, source)))


def silent(
    days: float,
    member_id: str = "m1",
    *,
    role: Role = Role.MEMBER,
    status: MemberStatus = MemberStatus.ACTIVE,
    name: str = "Ann",
) -> dict[str, tuple[Member, MemberState]]:
    m = member(
        member_id,
        user=member_id[1:] or "0",
        role=role,
        status=status,
        name=name,
        joined_at=datetime.fromisoformat("2025-01-01T00:00:00+00:00"),
    )
    return {member_id: (m, state_of(m, last_active_at=NOW - timedelta(days=days)))}


def test_the_type_is_registered_with_paid_members_exempt() -> None:
    (found,) = [t for t in communitykit_rule_types() if t.name == "inactivity"]
    assert found.scope_defaults == {"exempt_paid": True}


# --------------------------------------------------------------------- timing


def test_next_run_is_ten_local_across_the_spring_change() -> None:
    after = datetime.fromisoformat("2026-03-07T10:00:00-05:00")
    when = RULE.next_run(after, tick(after, NEW_YORK))
    assert when == datetime.fromisoformat("2026-03-08T10:00:00-04:00")
    assert when is not None and when - after == timedelta(hours=23)


def test_next_run_is_ten_local_across_the_autumn_change() -> None:
    after = datetime.fromisoformat("2026-10-31T10:00:00-04:00")
    when = RULE.next_run(after, tick(after, NEW_YORK))
    assert when == datetime.fromisoformat("2026-11-01T10:00:00-05:00")
    assert when is not None and when - after == timedelta(hours=25)


def test_next_run_in_shanghai() -> None:
    shanghai = community("Asia/Shanghai")
    after = datetime.fromisoformat("2026-03-08T02:00:00+00:00")  # 10:00 in Shanghai
    when = RULE.next_run(after, tick(after, shanghai))
    assert when == datetime.fromisoformat("2026-03-09T10:00:00+08:00")


def test_next_run_without_a_previous_run_is_the_next_moment_after_now() -> None:
    now = datetime.fromisoformat("2026-03-08T09:59:00-04:00")
    assert RULE.next_run(None, tick(now, NEW_YORK)) == NOW
    later = datetime.fromisoformat("2026-03-08T10:00:00-04:00")
    assert RULE.next_run(None, tick(later, NEW_YORK)) == NOW + timedelta(days=1)


def test_a_time_skipped_by_the_clock_change_runs_an_hour_later_on_the_wall() -> None:
    rule = InactivityRule.from_settings({"at": "02:30"})
    after = datetime.fromisoformat("2026-03-07T02:30:00-05:00")
    assert rule.next_run(after, tick(after, NEW_YORK)) == datetime.fromisoformat(
        "2026-03-08T03:30:00-04:00"
    )


def test_a_time_that_happens_twice_runs_once() -> None:
    rule = InactivityRule.from_settings({"at": "01:30"})
    after = datetime.fromisoformat("2026-10-31T01:30:00-04:00")
    first = rule.next_run(after, tick(after, NEW_YORK))
    assert first == datetime.fromisoformat("2026-11-01T01:30:00-04:00")
    assert first is not None
    second = rule.next_run(first, tick(first, NEW_YORK))
    assert second == datetime.fromisoformat("2026-11-02T01:30:00-05:00")


@given(
    after=st.datetimes(
        min_value=datetime(2026, 1, 1),
        max_value=datetime(2027, 12, 31),
        timezones=st.just(ZoneInfo("UTC")),
    ),
    zone=st.sampled_from(["America/New_York", "Asia/Shanghai", "Europe/Berlin", "UTC"]),
)
def test_next_run_is_the_next_local_ten_oclock(after: datetime, zone: str) -> None:
    where = community(zone)
    when = RULE.next_run(after, tick(after, where))
    assert when is not None
    assert after < when <= after + timedelta(hours=25)
    local = when.astimezone(ZoneInfo(zone))
    assert (local.hour, local.minute) == (10, 0)


# ---------------------------------------------------------------------- sweep


def test_a_member_silent_past_the_reminder_threshold_is_reminded() -> None:
    (decision,) = sweep(silent(15))
    (direct,) = decision.actions
    assert isinstance(direct, SendDirectMessage)
    assert (direct.platform, direct.user, direct.group) == ("tg", "1", None)
    assert "Ann" in direct.text and "15 days" in direct.text and "30 days" in direct.text
    assert decision.member == "m1"
    assert decision.state == {"reminded_at": NOW.isoformat()}
    assert "silent for 15 days" in decision.explanation
    instead = decision.fallbacks[direct.action_id]
    assert [a.group for a in instead] == ["-1", "-2"]
    assert all(isinstance(a, SendMessage) and a.text.startswith("@Ann ") for a in instead)
    ids = {direct.action_id, *(a.action_id for a in instead)}
    assert len(ids) == 3


def test_a_member_reminded_for_this_silence_is_not_reminded_again() -> None:
    reminded = {"m1": {"reminded_at": (NOW - timedelta(days=3)).isoformat()}}
    assert sweep(silent(17), reminded) == []


def test_a_member_silent_past_removal_after_a_reminder_is_removed_from_each_group() -> None:
    reminded = {"m1": {"reminded_at": (NOW - timedelta(days=16)).isoformat()}}
    (decision,) = sweep(silent(30), reminded)
    kicks = decision.actions
    assert all(isinstance(k, Kick) for k in kicks)
    assert [(k.group, k.user) for k in kicks] == [("-1", "1"), ("-2", "1")]
    assert decision.state is not None and "removed_at" in decision.state
    assert "removed from main, main2" in decision.explanation
    assert len({k.action_id for k in kicks}) == 2


def test_removal_only_from_the_groups_the_member_is_in() -> None:
    reminded = {"m1": {"reminded_at": (NOW - timedelta(days=20)).isoformat()}}
    (decision,) = sweep(silent(40), reminded, {"m1": frozenset({"main2"})})
    assert [k.group for k in decision.actions] == ["-2"]


def test_a_long_silent_member_never_reminded_is_reminded_first() -> None:
    (decision,) = sweep(silent(90))
    assert isinstance(decision.actions[0], SendDirectMessage)
    # and removed only once the time between reminder and removal has passed
    reminded = {"m1": {"reminded_at": (NOW - timedelta(days=15)).isoformat()}}
    assert sweep(silent(90), reminded) == []
    reminded = {"m1": {"reminded_at": (NOW - timedelta(days=16)).isoformat()}}
    (removal,) = sweep(silent(90), reminded)
    assert all(isinstance(k, Kick) for k in removal.actions)


def test_a_removed_member_is_not_removed_twice() -> None:
    memory = {
        "m1": {
            "reminded_at": (NOW - timedelta(days=17)).isoformat(),
            "removed_at": (NOW - timedelta(days=1)).isoformat(),
        }
    }
    assert sweep(silent(31), memory) == []


def test_a_member_active_again_is_forgotten() -> None:
    reminded = {"m1": {"reminded_at": (NOW - timedelta(days=3)).isoformat()}}
    (decision,) = sweep(silent(1), reminded)
    assert decision.actions == ()
    assert decision.state == {}
    assert "active again" in decision.explanation


def test_a_member_active_after_the_reminder_then_silent_again_is_reminded_again() -> None:
    reminded = {"m1": {"reminded_at": (NOW - timedelta(days=40)).isoformat()}}
    (decision,) = sweep(silent(20), reminded)
    assert isinstance(decision.actions[0], SendDirectMessage)
    assert decision.state == {"reminded_at": NOW.isoformat()}


def test_the_join_time_counts_when_a_member_never_spoke() -> None:
    m = member("m1", user="1", joined_at=NOW - timedelta(days=20))
    (decision,) = sweep({"m1": (m, state_of(m))})
    assert "silent for 20 days" in decision.explanation


def test_a_member_without_activity_or_join_time_is_skipped() -> None:
    m = member("m1", user="1")
    assert sweep({"m1": (m, state_of(m))}) == []


@pytest.mark.parametrize("status", [MemberStatus.LEFT, MemberStatus.BANNED, MemberStatus.PENDING])
def test_only_active_members_are_swept(status: MemberStatus) -> None:
    assert sweep(silent(60, status=status)) == []


def test_a_member_in_no_group_is_reminded_by_direct_message_without_fallback() -> None:
    (decision,) = sweep(silent(15), groups={})
    assert decision.fallbacks == {}
    reminded = {"m1": {"reminded_at": (NOW - timedelta(days=20)).isoformat()}}
    assert sweep(silent(40), reminded, groups={}) == []  # nothing to remove them from


def test_a_chinese_reminder() -> None:
    rule = InactivityRule.from_settings(
        {"reminder": "{name}，你已经 {days} 天没有发言了，超过 {remove_days} 天将被移出群。"}  # noqa: RUF001
    )
    (decision,) = sweep(silent(15, name="小明"), rule=rule)
    assert decision.actions[0].text == "小明，你已经 15 天没有发言了，超过 30 天将被移出群。"  # noqa: RUF001


def test_a_sweep_iterates_members_once() -> None:
    class Counting(FakeSource):
        calls = 0

        def members(self) -> Iterator[tuple[Member, MemberState]]:
            Counting.calls += 1
            return super().members()

        def groups_of(self, member_id: str) -> frozenset[str]:
            assert member_id in acted, "groups are looked up only for members acted on"
            return BOTH

    people: dict[str, tuple[Member, MemberState]] = {}
    for n in range(20_000):
        people.update(silent(20 if n % 100 == 0 else n % 10, f"m{n}"))
    acted = {f"m{n}" for n in range(0, 20_000, 100)}
    source = Counting(members=people)
    decisions = list(RULE.on_schedule(tick(NOW, NEW_YORK, source)))
    assert Counting.calls == 1
    assert {d.member for d in decisions} == acted


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"at": "25:00"}, "at must be a local time of day like '10:00'"),
        ({"at": 10}, "at must be a local time of day"),
        ({"remind_after": "two weeks"}, "remind_after must be a positive"),
        ({"remind_after": "30d", "remove_after": "30d"}, "remove_after must be longer"),
        ({"remove_after": "7d"}, "remove_after must be longer"),
        ({"reminder": "hi {nick}"}, "unknown: nick"),
        ({"remind": "14d"}, "unknown settings: remind"),
    ],
)
def test_bad_settings_fail_clearly(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError, match="inactivity rule") as raised:
        InactivityRule.from_settings(settings)
    assert message in str(raised.value)


# ----------------------------------------------------------------- properties

ROLES = st.sampled_from(list(Role))
DAYS = st.floats(min_value=0, max_value=120, allow_nan=False)
MEMORY = st.one_of(
    st.none(),
    st.floats(min_value=0, max_value=120).map(
        lambda d: {"reminded_at": (NOW - timedelta(days=d)).isoformat()}
    ),
)


@given(days=st.lists(st.tuples(DAYS, ROLES, MEMORY), min_size=1, max_size=12))
def test_exempt_roles_are_never_swept(days: list[tuple[float, Role, Any]]) -> None:
    people: dict[str, tuple[Member, MemberState]] = {}
    memory: dict[str, Any] = {}
    for n, (silence, role, remembered) in enumerate(days):
        people.update(silent(silence, f"m{n}", role=role))
        if remembered is not None:
            memory[f"m{n}"] = remembered
    staff = {mid for mid, (m, _) in people.items() if m.role in (Role.OWNER, Role.ADMIN)}
    decisions = sweep(people, memory)
    assert not {d.member for d in decisions} & staff


@given(days=st.floats(min_value=0, max_value=13.99), memory=MEMORY)
def test_a_member_active_within_the_threshold_is_never_reminded(days: float, memory: Any) -> None:
    decisions = sweep(silent(days), {"m1": memory} if memory else None)
    assert all(d.actions == () for d in decisions)
    assert all(d.state == {} for d in decisions)


@given(days=DAYS, memory=MEMORY)
def test_evaluation_is_deterministic(days: float, memory: Any) -> None:
    states = {"m1": memory} if memory else None
    assert sweep(silent(days), states) == sweep(silent(days), states)


@given(days=DAYS, memory=MEMORY)
def test_nobody_is_removed_without_a_reminder_long_enough_ago(days: float, memory: Any) -> None:
    for decision in sweep(silent(days), {"m1": memory} if memory else None):
        if any(isinstance(a, Kick) for a in decision.actions):
            assert memory is not None
            reminded = datetime.fromisoformat(memory["reminded_at"])
            assert NOW - reminded >= timedelta(days=16)
            assert days >= 30
            assert all(isinstance(a, Kick) for a in decision.actions)


@given(days=DAYS, paid=st.booleans())
def test_at_most_one_decision_per_member(days: float, paid: bool) -> None:
    people = silent(days)
    m, state = people["m1"]
    other = member(
        "m2", user="2", paid_until=date(2030, 1, 1) if paid else None, joined_at=m.joined_at
    )
    people["m2"] = (other, state_of(other, last_active_at=state.last_active_at))
    members = [d.member for d in sweep(people)]
    assert len(members) == len(set(members))
