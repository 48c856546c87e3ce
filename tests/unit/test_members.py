from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from communitykit import (
    IdentityGraph,
    InvalidOperation,
    LinkMethod,
    LinkProvenance,
    Member,
    ModelError,
    PlatformIdentity,
    Role,
    UnknownMember,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
TG = PlatformIdentity("telegram", "1")
DC = PlatformIdentity("discord", "9")
WC = PlatformIdentity("wecom", "zhang.san")


def prov(method: str = "operator") -> LinkProvenance:
    return LinkProvenance(method=method, at=T0, by="admin")  # type: ignore[arg-type]


def test_identity_text_round_trip() -> None:
    assert str(PlatformIdentity.parse("wecom:corp:zhang")) == "wecom:corp:zhang"
    with pytest.raises(ModelError, match="platform:user_id"):
        PlatformIdentity.parse("nocolon")


def test_member_invariants() -> None:
    with pytest.raises(ModelError, match="at least one platform identity"):
        Member(member_id="m", identities=[])
    with pytest.raises(ModelError, match="lists an identity twice"):
        Member(member_id="m", identities=[TG, TG])
    with pytest.raises(ModelError, match="before joining"):
        Member(member_id="m", identities=[TG], joined_at=T0, left_at=T0 - timedelta(days=1))
    with pytest.raises(ModelError, match="timezone-aware"):
        Member(member_id="m", identities=[TG], joined_at=datetime(2026, 3, 1))
    with pytest.raises(ModelError, match="tags must be a collection"):
        Member(member_id="m", identities=[TG], tags="vip")  # type: ignore[arg-type]


def test_paid_membership_covers_through_its_last_day() -> None:
    member = Member(member_id="m", identities=[TG], paid_until=date(2026, 3, 31))
    assert member.is_paid(date(2026, 3, 31))
    assert not member.is_paid(date(2026, 4, 1))


def test_link_adds_an_identity_with_provenance() -> None:
    graph = IdentityGraph([Member(member_id="m1", identities=[TG])])
    graph.link("m1", DC, prov("verified_code"))
    assert graph.find(DC) == graph.get("m1")
    (link,) = graph.links(DC)
    assert link.provenance.method is LinkMethod.VERIFIED_CODE
    # linking an identity someone else has is refused: that is a merge
    graph.add(Member(member_id="m2", identities=[WC]))
    with pytest.raises(InvalidOperation, match="merge the two members"):
        graph.link("m1", WC, prov())


def test_merge_combines_and_unmerge_restores() -> None:
    graph = IdentityGraph(
        [
            Member(member_id="m1", identities=[TG], joined_at=T0, tags={"a"}),
            Member(
                member_id="m2",
                identities=[DC],
                joined_at=T0 - timedelta(days=30),
                role=Role.KOL,
                tags={"b"},
                paid_until=date(2026, 12, 31),
            ),
        ]
    )
    before = (graph.get("m1"), graph.get("m2"))
    graph.merge("m1", "m2", prov())
    merged = graph.get("m1")
    assert set(merged.identities) == {TG, DC}
    assert merged.tags == {"a", "b"}
    assert merged.joined_at == T0 - timedelta(days=30)
    assert merged.role is Role.KOL
    assert merged.paid_until == date(2026, 12, 31)
    assert "m2" not in graph
    with pytest.raises(UnknownMember):
        graph.get("m2")
    restored = graph.unmerge("m2", prov())
    assert restored == before
    assert graph.find(DC) == before[1]


def test_unmerge_keeps_changes_made_to_the_survivor_after_the_merge() -> None:
    graph = IdentityGraph(
        [Member(member_id="m1", identities=[TG]), Member(member_id="m2", identities=[DC])]
    )
    graph.merge("m1", "m2", prov())
    graph.update(graph.get("m1").with_tags("joined-camp"))
    graph.link("m1", WC, prov("verified_code"))
    survivor, absorbed = graph.unmerge("m2", prov())
    assert survivor.tags == {"joined-camp"}
    assert set(survivor.identities) == {TG, WC}
    assert absorbed.identities == (DC,)


def test_merge_chain_must_be_undone_in_reverse_order() -> None:
    graph = IdentityGraph(
        [
            Member(member_id="a", identities=[TG]),
            Member(member_id="b", identities=[DC]),
            Member(member_id="c", identities=[WC]),
        ]
    )
    graph.merge("a", "b", prov())
    graph.merge("c", "a", prov())
    with pytest.raises(InvalidOperation, match="unmerge it first"):
        graph.unmerge("b", prov())
    graph.unmerge("a", prov())
    graph.unmerge("b", prov())
    assert [graph.find(i).member_id for i in (TG, DC, WC)] == ["a", "b", "c"]  # type: ignore[union-attr]


def test_merge_refuses_nonsense() -> None:
    graph = IdentityGraph([Member(member_id="m1", identities=[TG])])
    with pytest.raises(InvalidOperation, match="into itself"):
        graph.merge("m1", "m1", prov())
    with pytest.raises(UnknownMember):
        graph.merge("m1", "nobody", prov())
    with pytest.raises(InvalidOperation, match="was not merged"):
        graph.unmerge("m1", prov())
    with pytest.raises(InvalidOperation, match="already belongs"):
        graph.add(Member(member_id="m9", identities=[TG]))
