"""The content rules' shortcuts never change a decision: the checks that pass
a message early (no dot, no blocked word's core, too few recent messages) only
pass messages the full checks would pass too."""

# Chinese chat text and its full-width letters and punctuation are what these tests are about.
# ruff: noqa: RUF001

from __future__ import annotations

import re
import string
import sys
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from communitykit.builtins.rules import _links
from communitykit.builtins.rules.content import (
    _ASCII_CASE_VARIANTS,
    DuplicatesRule,
    FloodRule,
    KeywordsRule,
    _within,
)
from communitykit.model import Recent, fingerprint, normalize_text

from .content_helpers import CHAT, MAIN, T0, context, posted

# letters that read alike only when case is ignored, dots of every width, and
# the pieces links and blocked words are made of
_PIECES = st.sampled_from(
    [
        *"aAsSiIkKvVxX.。｡．·/:@-_ 0123456789",
        "\u0131",  # dotless i
        "\u0130",  # I with a dot
        "\u017f",  # long s
        "\u212a",  # Kelvin sign
        "\u2024",  # one dot leader
        "\ufe52",  # small full stop
        "ß",
        "中",
        "文",
        "www.",
        "http://",
        "tg://join?invite=",
        ".com",
        ".中国",
        "spam",
        "SPAM",
        "ＳＰＡＭ",
        "ask",
        "kiss",
        "加微信",
        "加 微信",
        "代购",
        "vx",
        "v x 12345",
        "$$$",
    ]
)
_TEXTS = st.one_of(st.text(max_size=40), st.lists(_PIECES, max_size=12).map("".join))


@given(text=_TEXTS)
def test_prepare_turns_every_disguised_dot_into_a_dot(text: str) -> None:
    assert _links.prepare(text) == _links._DOT.sub(".", normalize_text(text))


@given(text=_TEXTS)
def test_a_prepared_text_without_a_dot_has_no_link(text: str) -> None:
    prepared = _links.prepare(text)
    if "." not in prepared:
        assert _links._URL.search(prepared) is None
        assert list(_links.find_links(prepared)) == []


def _every_link(text: str, extra_tlds: frozenset[str]) -> list[_links.Link]:
    """find_links without its shortcuts: every match of the link pattern, filtered."""
    tlds = _links.COMMON_TLDS | extra_tlds
    found = []
    for match in _links._URL.finditer(text):
        host = match.group("host")
        scheme = match.group("scheme") is not None
        tld = host.rsplit(".", 1)[1]
        if scheme or host.startswith("www.") or tld in tlds or tld.startswith("xn--"):
            path = (match.group("path") or "").rstrip(_links._TRAILING)
            found.append(_links.Link(host=host, path=path, scheme=scheme))
    return found


_LINKISH = st.sampled_from(
    [
        *"abcxyz0123456789.。｡．/:#?@-_ 中文",
        "com",
        ".com",
        ".co",
        ".comx",
        ".com-x",
        ".org/x",
        ".中国",
        ".中国人",
        ".xn--p1ai",
        ".рф",
        ".py",
        ".shop",
        ".example",
        "www.",
        "WWW.",
        "http://",
        "HTTPS://",
        "ftp://",
        "t.me/+",
        "3.14",
    ]
)


@given(
    text=st.one_of(st.text(max_size=40), st.lists(_LINKISH, max_size=14).map("".join)),
    extra=st.frozensets(st.sampled_from(["example", "com", "中文", "py", ""]), max_size=3),
    prepared=st.booleans(),
)
def test_find_links_finds_every_link_the_link_pattern_finds(
    text: str, extra: frozenset[str], prepared: bool
) -> None:
    if prepared:
        text = _links.prepare(text)
    assert list(_links.find_links(text, extra)) == _every_link(text, extra)
    assert list(_links.find_links(text, sorted(extra))) == _every_link(text, extra)


_BLOCK = st.lists(
    st.sampled_from(
        [
            "spam",
            "ass",
            "kiss",
            "ſpam",
            "\u0131nk",
            "加微信",
            "free money",
            "$$$",
            r"re:v\s*x\s*\d+",
            r"re:(?<![a-z])sp[a4]m",
            r"re:\bask\b",
            r"re:(a)\1",
            r"re:(?i)vx",
        ]
    ),
    min_size=1,
    max_size=5,
    unique=True,
)


@given(block=_BLOCK, text=_TEXTS)
def test_the_keyword_screen_finds_something_wherever_a_block_entry_matches(
    block: list[str], text: str
) -> None:
    rule = KeywordsRule.from_settings({"block": block})
    normalized = normalize_text(text)
    matched = any(compiled.search(normalized) for _entry, compiled in rule.block)
    if rule.screen is not None and matched:
        assert rule.screen.search(normalized) is not None
    unscreened = KeywordsRule(block=rule.block)
    assert rule.evaluate(context(posted(text))) == unscreened.evaluate(context(posted(text)))


def test_the_case_variants_of_ascii_letters_are_all_listed() -> None:
    every = "".join(map(chr, range(sys.maxunicode + 1)))
    for letter in string.ascii_lowercase:
        for variant in re.findall(letter, every, re.IGNORECASE):
            assert variant == letter or _ASCII_CASE_VARIANTS.fullmatch(variant), variant


def test_plain_words_are_looked_for_as_they_are_outside_case_variants() -> None:
    rule = KeywordsRule.from_settings({"block": ["spam", "加微信", "$$$", r"re:v\s*x"]})
    assert rule.plain is not None
    words, others = rule.plain
    assert words == ("spam", "加微信", "$$$") and others is not None
    assert KeywordsRule.from_settings({"block": ["spam"]}).plain == (("spam",), None)
    assert KeywordsRule.from_settings({"block": ["caf\u00e9"]}).plain is None
    assert KeywordsRule.from_settings({"block": ["\u0131nk"]}).plain is None
    assert KeywordsRule.from_settings({"block": ["spam", r"re:(a)\1"]}).plain is None
    for text in ["ſpam", "\u0131nk", "SPAM"]:
        decision = KeywordsRule.from_settings({"block": ["spam", "ink"]}).evaluate(
            context(posted(text))
        )
        assert decision is not None


def test_entries_with_groups_or_global_flags_are_not_screened() -> None:
    assert KeywordsRule.from_settings({"block": ["spam", r"re:\bask\b"]}).screen is not None
    assert KeywordsRule.from_settings({"block": ["spam", r"re:(a)\1"]}).screen is None
    assert KeywordsRule.from_settings({"block": ["spam", r"re:(?i)vx"]}).screen is None


_RECENT = st.builds(
    Recent,
    at=st.integers(-30, 30).map(lambda s: T0 + timedelta(seconds=s)),
    platform=st.sampled_from(["telegram", "wechat"]),
    group=st.sampled_from([MAIN, CHAT, None]),
    message_id=st.sampled_from(["1", "2", "3", "7"]),
    fingerprint=st.sampled_from([fingerprint("hello there everyone"), fingerprint("other")]),
)


@given(
    history=st.lists(_RECENT, max_size=12),
    messages=st.integers(1, 6),
    seconds=st.integers(1, 20),
    per_group=st.booleans(),
)
def test_flood_acts_exactly_when_the_window_holds_more_than_the_limit(
    history: list[Recent], messages: int, seconds: int, per_group: bool
) -> None:
    rule = FloodRule.from_settings(
        {"messages": messages, "seconds": seconds, "per_group": per_group}
    )
    event = posted("hello there everyone")
    here = (event.platform, event.group)
    earlier = [
        item
        for item in _within(history, T0, rule.window, same=here if per_group else None)
        if (item.platform, item.group, item.message_id) != (*here, event.message_id)
    ]
    decision = rule.evaluate(context(event, history=history))
    assert (decision is not None) == (len(earlier) + 1 > messages)


@given(
    history=st.lists(_RECENT, max_size=12),
    times=st.integers(2, 5),
    within=st.integers(1, 40),
    across_groups=st.booleans(),
    text=st.sampled_from(["hello there everyone", "other", "hi"]),
)
def test_duplicates_act_exactly_when_the_window_holds_enough_copies(
    history: list[Recent], times: int, within: int, across_groups: bool, text: str
) -> None:
    rule = DuplicatesRule.from_settings(
        {"times": times, "within": within, "across_groups": across_groups}
    )
    event = posted(text)
    here = (event.platform, event.group)
    copies = [
        item
        for item in _within(history, T0, rule.within, same=None if across_groups else here)
        if item.fingerprint == fingerprint(text)
        and (item.platform, item.group, item.message_id) != (*here, event.message_id)
    ]
    decision = rule.evaluate(context(event, history=history))
    long_enough = len(normalize_text(text)) >= rule.min_length
    assert (decision is not None) == (long_enough and len(copies) + 1 >= times)
