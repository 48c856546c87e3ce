"""Segment algebra obeys the laws of sets, property-tested on random members."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import given
from hypothesis import strategies as st

from communitykit import Member, MemberState, MemberStatus, PlatformIdentity, Role, Stage
from communitykit.model._segments import (
    And,
    MemberView,
    Not,
    Or,
    Segment,
    build,
    builtin_segment,
    evaluate,
    parse_expression,
)

TODAY = date(2026, 3, 1)
AT = datetime(2026, 1, 1, tzinfo=UTC)
LEAVES = [
    "all",
    *[stage.value for stage in Stage],
    "paying",
    "admins",
    "kols",
    "contributors",
    "tier:gold",
    "tier:base",
    "tag:staff",
    "tag:vip",
    "group:main",
    "platform:telegram",
    "platform:console",
]


@st.composite
def views(draw: st.DrawFn, current_only: bool = False) -> MemberView:
    number = draw(st.integers(0, 10**6))
    platforms = draw(st.lists(st.sampled_from(["telegram", "console"]), min_size=1, unique=True))
    statuses = [MemberStatus.ACTIVE, MemberStatus.PENDING]
    if not current_only:
        statuses += [MemberStatus.LEFT, MemberStatus.BANNED]
    status = draw(st.sampled_from(statuses))
    member = Member(
        member_id=f"m{number}",
        identities=tuple(PlatformIdentity(p, str(number)) for p in platforms),
        role=draw(st.sampled_from(list(Role))),
        status=status,
        tags=frozenset(draw(st.lists(st.sampled_from(["staff", "vip", "new"]), unique=True))),
        paid_until=draw(st.none() | st.just(date(2026, 2, 1)) | st.just(date(2026, 4, 1))),
    )
    tier = draw(st.sampled_from(["base", "gold"]))
    stage = (
        Stage.LEFT
        if status in (MemberStatus.LEFT, MemberStatus.BANNED)
        else draw(st.sampled_from([s for s in Stage if s is not Stage.LEFT]))
    )
    return MemberView(
        member=member,
        state=MemberState(member_id=member.member_id, tier=tier, tier_since=AT),
        stage=stage,
        tier=tier,
        today=TODAY,
        groups=frozenset(draw(st.lists(st.sampled_from(["main", "side"]), unique=True))),
    )


def populations(current_only: bool = False) -> st.SearchStrategy[list[MemberView]]:
    return st.lists(views(current_only), max_size=15, unique_by=lambda view: view.member_id)


def _leaf(name: str) -> Segment:
    segment = builtin_segment(name)
    assert segment is not None
    return segment


segments = st.recursive(
    st.sampled_from(LEAVES).map(_leaf),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda pair: pair[0] & pair[1]),
        st.tuples(inner, inner).map(lambda pair: pair[0] | pair[1]),
        inner.map(lambda segment: ~segment),
    ),
    max_leaves=6,
)


@given(populations(), segments, segments)
def test_de_morgan_laws_hold(people: list[MemberView], a: Segment, b: Segment) -> None:
    assert evaluate(~(a | b), people) == evaluate(~a & ~b, people)
    assert evaluate(~(a & b), people) == evaluate(~a | ~b, people)


@given(populations(), segments, segments, segments)
def test_and_and_or_distribute_over_each_other(
    people: list[MemberView], a: Segment, b: Segment, c: Segment
) -> None:
    assert evaluate(a & (b | c), people) == evaluate((a & b) | (a & c), people)
    assert evaluate(a | (b & c), people) == evaluate((a | b) & (a | c), people)


@given(populations(), segments, segments)
def test_and_or_not_are_intersection_union_complement(
    people: list[MemberView], a: Segment, b: Segment
) -> None:
    everyone = frozenset(view.member_id for view in people)
    left, right = evaluate(a, people), evaluate(b, people)
    assert evaluate(a & b, people) == left & right
    assert evaluate(a | b, people) == left | right
    assert evaluate(~a, people) == everyone - left
    assert evaluate(And((a, b)), people) == evaluate(b & a, people)
    assert evaluate(Or((a, b)), people) == evaluate(b | a, people)


@given(populations(), segments)
def test_double_negation_is_the_segment_itself(people: list[MemberView], a: Segment) -> None:
    assert evaluate(Not(Not(a)), people) == evaluate(a, people)


@given(populations(current_only=True), segments)
def test_all_is_the_identity_and_a_segment_and_its_complement_make_all(
    people: list[MemberView], a: Segment
) -> None:
    every = _leaf("all")
    assert evaluate(every, people) == frozenset(view.member_id for view in people)
    assert evaluate(a & every, people) == evaluate(a, people)
    assert evaluate(a | ~a, people) == evaluate(every, people)
    assert evaluate(a & ~a, people) == frozenset()
    assert evaluate(a | every, people) == evaluate(every, people)


@given(populations())
def test_stage_segments_partition_the_members(people: list[MemberView]) -> None:
    sets = [evaluate(_leaf(stage.value), people) for stage in Stage]
    assert sum(len(s) for s in sets) == len(people)
    assert frozenset().union(*sets) == frozenset(view.member_id for view in people)


@given(populations(), segments)
def test_an_expression_written_out_and_parsed_again_selects_the_same_members(
    people: list[MemberView], a: Segment
) -> None:
    again = build(parse_expression(a.text), _leaf)
    assert evaluate(again, people) == evaluate(a, people)
