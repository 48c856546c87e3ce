"""The ``keywords`` rule type: blocked words, Chinese phrases and patterns."""

# Chinese chat text and its full-width letters and punctuation are what these tests are about.
# ruff: noqa: RUF001

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from communitykit._errors import ModelError
from communitykit.builtins.rules.content import KeywordsRule
from communitykit.model import DeleteMessage

from .content_helpers import (
    T0,
    ZONES,
    assert_deleted_with_fallback,
    context,
    edited,
    message,
    posted,
    wide,
)

BLOCK = ["spam", "ass", "加微信", "free money", r"re:v\s*x\s*\d+", "$$$"]


def keywords(**settings: Any) -> KeywordsRule:
    return KeywordsRule.from_settings({"block": BLOCK, **settings})


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("this is spam", "spam"),
        ("SPAM SPAM SPAM!", "spam"),
        ("full width ＳＰＡＭ here", "spam"),
        ("这是spam广告", "spam"),
        ("(spam)", "spam"),
        ("you ass.", "ass"),
        ("想要的加微信123", "加微信"),
        ("加微信，送红包", "加微信"),
        ("FREE   Money for all", "free money"),
        ("ｆｒｅｅ ｍｏｎｅｙ", "free money"),
        ("加VX 12345", r"re:v\s*x\s*\d+"),
        ("加ｖ ｘ８８８详谈", r"re:v\s*x\s*\d+"),
        ("win$$$now", "$$$"),
    ],
)
def test_a_blocked_word_is_deleted_and_struck(text: str, pattern: str) -> None:
    ctx = message(text)
    decision = keywords().evaluate(ctx)
    assert decision is not None
    assert decision.strike is True and decision.source == "rule:keywords"
    assert_deleted_with_fallback(decision, ctx)
    what = "pattern" if pattern.startswith("re:") else "word"
    assert decision.explanation == f'used the blocked {what} "{pattern}"'


@pytest.mark.parametrize(
    "text",
    [
        "a class of its own",
        "assessment passed, bypass the assembly",
        "spammer and antispam are other words",
        "微信好友",
        "加个微信",
        "freemoney is one word",
        "v x",
        "price $$ only",
        "",
    ],
)
def test_other_words_are_left_alone(text: str) -> None:
    assert keywords().evaluate(message(text)) is None


def test_the_explanation_quotes_the_pattern_not_the_message() -> None:
    decision = keywords().evaluate(message("a long message that says spam and much more besides"))
    assert decision is not None
    assert "much more besides" not in decision.explanation
    assert decision.explanation == 'used the blocked word "spam"'


def test_the_first_pattern_listed_wins() -> None:
    decision = keywords().evaluate(message("加微信 spam"))
    assert decision is not None and '"spam"' in decision.explanation


def test_strike_only_keeps_the_message() -> None:
    decision = keywords(action="strike").evaluate(message("spam"))
    assert decision is not None
    assert decision.strike and decision.actions == () and not decision.fallbacks


def test_delete_only_gives_no_strike() -> None:
    ctx = message("spam")
    decision = keywords(action="delete_only").evaluate(ctx)
    assert decision is not None and not decision.strike
    assert_deleted_with_fallback(decision, ctx)


def test_an_edited_message_is_checked_too() -> None:
    rule = keywords()
    assert rule.event_types == {"message_posted", "message_edited"}
    ctx = context(edited("now it says 加微信", message_id="12"))
    decision = rule.evaluate(ctx)
    assert decision is not None
    assert isinstance(decision.actions[0], DeleteMessage)
    assert decision.actions[0].message_id == "12"


def test_a_direct_message_is_left_alone() -> None:
    assert keywords().evaluate(context(posted("spam", group=None))) is None


def test_a_regex_sees_the_normalized_text() -> None:
    rule = KeywordsRule.from_settings({"block": [r"re:^buy now$"]})
    assert rule.evaluate(message("  ＢＵＹ   ＮＯＷ ")) is not None
    assert rule.evaluate(message("please do not buy now")) is None


@pytest.mark.parametrize(
    ("settings", "message_part"),
    [
        ({}, "block must list at least one"),
        ({"block": []}, "block must list at least one"),
        ({"block": 5}, "block must be a list of texts, got 5"),
        ({"block": ["ok", 3]}, "block must be a list of texts"),
        ({"block": ["re:(unclosed"]}, "'(unclosed' is not a valid pattern"),
        ({"block": ["re:"]}, "matches an empty text"),
        ({"block": ["re:a*"]}, "matches an empty text"),
        ({"block": ["   "]}, "block entries must not be empty"),
        ({"block": ["spam"], "action": "ban"}, "action must be one of delete, strike, delete_only"),
        ({"block": ["spam"], "blocks": ["x"]}, "unknown settings: blocks"),
        ({"block": ["spam"], "name": "Bad Name"}, "name must be"),
    ],
)
def test_bad_settings_are_refused_with_the_key_named(
    settings: dict[str, Any], message_part: str
) -> None:
    with pytest.raises(ModelError, match="keywords rule") as caught:
        KeywordsRule.from_settings(settings)
    assert message_part in str(caught.value)


# --------------------------------------------------------------- properties

_FILLER_WORDS = st.sampled_from(
    ["class", "assess", "passage", "hello", "谢谢", "微信好友", "spammer", "$", "v", "x", "ok"]
)
_FILLER = st.lists(_FILLER_WORDS, max_size=8)
_SEPARATORS = st.sampled_from([" ", ", ", "，", "。", "! ", "\n", "大家"])


@given(words=_FILLER, separator=_SEPARATORS)
def test_a_latin_word_inside_a_longer_word_never_matches(words: list[str], separator: str) -> None:
    assert keywords().evaluate(message(separator.join(words))) is None


@given(
    before=_FILLER,
    after=_FILLER,
    separator=_SEPARATORS,
    word=st.sampled_from(["spam", "ass", "加微信", "free money"]),
    shape=st.sampled_from([str, str.upper, str.title, wide]),
)
def test_a_blocked_word_matches_whatever_surrounds_it(
    before: list[str], after: list[str], separator: str, word: str, shape: Any
) -> None:
    text = separator.join([*before, shape(word), *after])
    decision = keywords().evaluate(message(text))
    assert decision is not None
    # the first listed pattern found is quoted: the filler holds none of them
    assert decision.explanation == f'used the blocked word "{word}"'


@given(text=st.text(max_size=40))
def test_full_width_text_is_judged_as_its_plain_form(text: str) -> None:
    plain = keywords().evaluate(message(text))
    full = keywords().evaluate(message(wide(text)))
    assert (plain is None) == (full is None)
    if plain is not None and full is not None:
        assert plain.explanation == full.explanation


@given(text=st.text(max_size=60), zone=st.sampled_from(ZONES))
def test_evaluation_is_deterministic(text: str, zone: Any) -> None:
    at = T0.astimezone(zone)
    assert keywords().evaluate(message(text, at=at)) == keywords().evaluate(message(text, at=at))
