"""The ``duplicates`` rule type: the same text posted again and again."""

# Chinese chat text and its full-width letters and punctuation are what these tests are about.
# ruff: noqa: RUF001

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from communitykit._errors import ModelError
from communitykit.builtins.rules.content import DuplicatesRule
from communitykit.model import Recent, normalize_text

from .content_helpers import (
    CHAT,
    MAIN,
    T0,
    WX,
    ZONES,
    assert_deleted_with_fallback,
    context,
    edited,
    posted,
    recent,
    wide,
)

AD = "Buy cheap followers now, best price guaranteed"


def duplicates(**settings: Any) -> DuplicatesRule:
    return DuplicatesRule.from_settings(settings)


def copies(text: str, *minutes_ago: float, group: str | None = MAIN) -> list[Recent]:
    return [recent(T0 - timedelta(minutes=m), text, group=group) for m in minutes_ago]


def test_the_third_copy_within_an_hour_is_deleted_and_struck() -> None:
    ctx = context(posted(AD), history=copies(AD, 50, 10))
    decision = duplicates().evaluate(ctx)
    assert decision is not None and decision.strike
    assert decision.source == "rule:duplicates"
    assert_deleted_with_fallback(decision, ctx)
    assert decision.explanation == "posted the same text 3 times within 1h in 1 group"


def test_the_second_copy_is_fine() -> None:
    assert duplicates().evaluate(context(posted(AD), history=copies(AD, 5))) is None


@pytest.mark.parametrize(
    ("earlier", "now"),
    [
        (AD, AD.upper()),
        ("buy  cheap followers NOW, best price guaranteed", AD),
        (AD, wide(AD)),
        ("出售微信号，价格便宜，联系我", "出售微信号,价格便宜,联系我"),
        ("Promo 优惠活动 join now", "PROMO 优惠活动   JOIN NOW"),
    ],
)
def test_copies_are_compared_normalized(earlier: str, now: str) -> None:
    decision = duplicates().evaluate(context(posted(now), history=copies(earlier, 30, 20)))
    assert decision is not None and "3 times" in decision.explanation


def test_copies_in_other_groups_and_platforms_count() -> None:
    history = [
        *copies(AD, 40, group=CHAT),
        recent(T0 - timedelta(minutes=3), AD, platform="wechat", group=WX),
    ]
    decision = duplicates().evaluate(context(posted(AD), history=history))
    assert decision is not None
    assert decision.explanation == "posted the same text 3 times within 1h in 3 groups"


def test_across_groups_false_counts_the_group_alone() -> None:
    history = [*copies(AD, 40, group=CHAT), *copies(AD, 30, group=CHAT)]
    assert duplicates(across_groups=False).evaluate(context(posted(AD), history=history)) is None
    assert duplicates().evaluate(context(posted(AD), history=history)) is not None


@pytest.mark.parametrize("text", ["ok", "谢谢", "早上好", "+1", "好的好的好的", "Ｔｈａｎｋｓ!!"])
def test_short_texts_are_never_duplicates(text: str) -> None:
    history = copies(text, *range(1, 30))
    assert duplicates().evaluate(context(posted(text), history=history)) is None


def test_min_length_can_be_lowered() -> None:
    decision = duplicates(min_length=2).evaluate(context(posted("ok"), history=copies("ok", 2, 1)))
    assert decision is not None


def test_copies_outside_the_window_do_not_count() -> None:
    old = copies(AD, 61, 60.01)
    assert duplicates().evaluate(context(posted(AD), history=old)) is None
    at_edge = copies(AD, 60, 59)
    assert duplicates().evaluate(context(posted(AD), history=at_edge)) is not None


def test_late_and_repeated_entries_count_once_and_newer_ones_not_at_all() -> None:
    newer = [recent(T0 + timedelta(minutes=m), AD) for m in (1, 2)]
    one = copies(AD, 10)
    itself = recent(T0, AD, message_id="7")
    history = [*one, *one, itself, *newer]
    assert duplicates().evaluate(context(posted(AD, message_id="7"), history=history)) is None


def test_direct_messages_do_not_count_and_are_not_judged() -> None:
    history = copies(AD, 3, 2, 1, group=None)
    assert duplicates().evaluate(context(posted(AD), history=history)) is None
    assert duplicates().evaluate(context(posted(AD, group=None), history=copies(AD, 2, 1))) is None


def test_edits_are_not_new_copies() -> None:
    rule = duplicates()
    assert rule.event_types == {"message_posted"}
    assert rule.evaluate(context(edited(AD), history=copies(AD, 2, 1))) is None


def test_times_and_within_can_be_set() -> None:
    rule = duplicates(times=2, within="10m")
    assert rule.window == timedelta(minutes=10)
    decision = rule.evaluate(context(posted(AD), history=copies(AD, 9)))
    assert decision is not None
    assert decision.explanation == "posted the same text 2 times within 10m in 1 group"
    assert rule.evaluate(context(posted(AD), history=copies(AD, 11))) is None


@pytest.mark.parametrize(
    ("settings", "message_part"),
    [
        ({"times": 1}, "times must be a whole number >= 2"),
        ({"times": "3"}, "times must be a whole number >= 2"),
        ({"within": "soon"}, "within must be a positive number of seconds"),
        ({"across_groups": "yes"}, "across_groups must be true or false"),
        ({"min_length": -1}, "min_length must be a whole number >= 0"),
        ({"time": 3}, "unknown settings: time"),
    ],
)
def test_bad_settings_are_refused_with_the_key_named(
    settings: dict[str, Any], message_part: str
) -> None:
    with pytest.raises(ModelError, match="duplicates rule") as caught:
        duplicates(**settings)
    assert message_part in str(caught.value)


# --------------------------------------------------------------- properties

_TEXTS = st.one_of(
    st.text(min_size=10, max_size=40),
    st.sampled_from(
        [AD, "出售微信号，价格便宜，联系我", wide(AD), "Join our group for free gifts"]
    ),
)
_MINUTES = st.floats(min_value=-30, max_value=120, allow_nan=False)


@given(
    text=_TEXTS,
    others=st.lists(st.tuples(_TEXTS, _MINUTES), max_size=20),
    zone=st.sampled_from(ZONES),
)
def test_a_unique_text_is_never_a_duplicate(
    text: str, others: list[tuple[str, float]], zone: Any
) -> None:
    assume(all(normalize_text(other) != normalize_text(text) for other, _ in others))
    history = [
        recent(T0 - timedelta(minutes=m), other, message_id=f"r{i}")
        for i, (other, m) in enumerate(others)
    ]
    assert (
        duplicates().evaluate(context(posted(text, at=T0.astimezone(zone)), history=history))
        is None
    )


@given(text=st.text(max_size=12), times=st.integers(2, 30))
def test_a_short_text_is_never_a_duplicate(text: str, times: int) -> None:
    assume(len(normalize_text(text)) < 10)
    history = [recent(T0 - timedelta(seconds=i + 1), text) for i in range(times)]
    assert duplicates().evaluate(context(posted(text), history=history)) is None


@given(
    text=_TEXTS,
    ages=st.lists(st.floats(0, 60), max_size=6),
    times=st.integers(2, 6),
    groups=st.lists(st.sampled_from([MAIN, CHAT]), min_size=6, max_size=6),
)
def test_the_count_decides(text: str, ages: list[float], times: int, groups: list[str]) -> None:
    assume(len(normalize_text(text)) >= 10)
    history = [
        recent(T0 - timedelta(minutes=m), text, group=g, message_id=f"r{i}")
        for i, (m, g) in enumerate(zip(ages, groups, strict=False))
    ]
    decision = duplicates(times=times).evaluate(context(posted(text), history=history))
    if len(ages) + 1 < times:
        assert decision is None
    else:
        assert decision is not None and decision.strike
        assert f"posted the same text {len(ages) + 1} times" in decision.explanation


@given(
    text=_TEXTS,
    history=st.lists(st.tuples(_TEXTS, _MINUTES, st.sampled_from([MAIN, CHAT])), max_size=10),
    copies_of_text=st.lists(_MINUTES, max_size=5),
    seed=st.randoms(),
)
def test_evaluation_is_deterministic(
    text: str, history: list[tuple[str, float, str]], copies_of_text: list[float], seed: Any
) -> None:
    items = [
        recent(T0 - timedelta(minutes=m), t, group=g, message_id=f"r{i}")
        for i, (t, m, g) in enumerate([*history, *((text, m, MAIN) for m in copies_of_text)])
    ]
    first = duplicates().evaluate(context(posted(text), history=items))
    assert first == duplicates().evaluate(context(posted(text), history=list(items)))
    seed.shuffle(items)
    assert first == duplicates().evaluate(context(posted(text), history=items))
