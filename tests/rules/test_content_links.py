"""The ``links`` rule type: links off the allowlist, invite links, new members."""

# Chinese chat text and its full-width letters and punctuation are what these tests are about.
# ruff: noqa: RUF001

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from communitykit._errors import ModelError
from communitykit.builtins.rules.content import LinksRule
from communitykit.model import Member, PlatformIdentity, normalize_text
from communitykit.testing import fresh_plugin_manager

from .content_helpers import (
    MEMBER,
    T0,
    ZONES,
    action_ids,
    assert_deleted_with_fallback,
    context,
    edited,
    message,
    posted,
)


def links(**settings: Any) -> LinksRule:
    return LinksRule.from_settings({"allow": ["example.com"], **settings})


def new_member(hours_before: float) -> Member:
    return Member(
        member_id="m2",
        identities=(PlatformIdentity("telegram", "43"),),
        joined_at=T0 - timedelta(hours=hours_before),
    )


# ----------------------------------------------------------- links found


@pytest.mark.parametrize(
    ("text", "domain"),
    [
        ("cheap followers at http://spam.biz today", "spam.biz"),
        ("HTTPS://SPAM.BIZ/OFFER", "spam.biz"),
        ("go to www.spam-shop.net now", "www.spam-shop.net"),
        ("bare spam.com/path?ref=1 works too", "spam.com"),
        ("short x.co", "x.co"),
        ("请访问spam.com领取红包", "spam.com"),
        ("谢谢http://spam.xyz/a谢谢", "spam.xyz"),
        ("全角链接ｓｐａｍ．ｃｏｍ／ｂｕｙ", "spam.com"),
        ("全角协议ｈｔｔｐｓ：／／ｓｐａｍ．ｎｅｔ", "spam.net"),
        ("句号伪装spam\u3002com", "spam.com"),
        ("mixed 中文 and English: visit Spam.Shop!", "spam.shop"),
        ("idn bücher.de", "bücher.de"),
        ("punycode xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("cyrillic пример.рф", "пример.рф"),
        ("chinese tld 优惠spam.中国", "spam.中国"),
        ("an address with a port http://10.0.0.1:8080/x", "10.0.0.1"),
        ("(see notexample.com)", "notexample.com"),
    ],
)
def test_a_link_off_the_allowlist_is_deleted_and_struck(text: str, domain: str) -> None:
    ctx = message(text)
    decision = links().evaluate(ctx)
    assert decision is not None
    assert decision.strike is True
    assert decision.source == "rule:links"
    assert_deleted_with_fallback(decision, ctx)
    assert decision.explanation == f"posted a link to {domain}, which is not on the allowlist"
    assert decision.actions[0].reason == decision.explanation


@pytest.mark.parametrize(
    "text",
    [
        "see example.com",
        "docs at https://docs.example.com/guide#intro",
        "HTTP://WWW.EXAMPLE.COM/PATH",
        "全角ｅｘａｍｐｌｅ．ｃｏｍ也可以",
        "两个链接example.com和api.example.com/v1",
        "deep.sub.example.com",
    ],
)
def test_allowlisted_domains_and_their_subdomains_pass(text: str) -> None:
    assert links().evaluate(message(text)) is None


@pytest.mark.parametrize(
    "text",
    [
        "pi is 3.14 and e is 2.718",
        "e.g. this, i.e. that",
        "open notes.txt and setup.py, then README.md",
        "upgrade to v1.2.3 or 10.0.0.1",
        "mail me at bob@spam.com",
        "done.it is, ok.so",
        "谢谢。好的。明天见",
        "价格是3.5元，好的",
        "hello world",
        "",
    ],
)
def test_text_that_only_looks_like_a_link_is_left_alone(text: str) -> None:
    assert links().evaluate(message(text)) is None


def test_several_domains_are_counted_in_the_explanation() -> None:
    decision = links().evaluate(message("a.com b.net example.com a.com/again"))
    assert decision is not None
    assert (
        decision.explanation
        == "posted a link to a.com (and 1 more), which are not on the allowlist"
    )


def test_an_idn_on_the_allowlist_matches_its_punycode_and_back() -> None:
    rule = LinksRule.from_settings({"allow": ["bücher.de", "xn--e1afmkfd.xn--p1ai"]})
    assert rule.evaluate(message("xn--bcher-kva.de/buch")) is None
    assert rule.evaluate(message("shop.bücher.de")) is None
    assert rule.evaluate(message("пример.рф")) is None


def test_an_allowlist_entry_adds_its_top_level_domain() -> None:
    # .lan is no common TLD, so it is no link by default ...
    assert links().evaluate(message("see intranet.lan")) is None
    # ... but an allowed domain teaches the rule its TLD
    rule = LinksRule.from_settings({"allow": ["corp.lan"]})
    assert rule.evaluate(message("see wiki.corp.lan")) is None
    decision = rule.evaluate(message("see other.lan"))
    assert decision is not None and "other.lan" in decision.explanation


def test_extra_tlds_make_more_links() -> None:
    rule = links(extra_tlds=["py"])
    decision = rule.evaluate(message("visit spam.py"))
    assert decision is not None and "spam.py" in decision.explanation


def test_an_edited_message_is_checked_too() -> None:
    rule = links()
    assert "message_edited" in rule.event_types and "message_posted" in rule.event_types
    ctx = context(edited("edited in a link: spam.com", message_id="99"))
    decision = rule.evaluate(ctx)
    assert decision is not None and decision.strike
    assert_deleted_with_fallback(decision, ctx)


def test_a_direct_message_is_left_alone() -> None:
    assert links().evaluate(context(posted("spam.com", group=None))) is None


def test_the_notice_can_be_set() -> None:
    rule = links(notice="请删除这条消息：本群不允许发链接。")
    decision = rule.evaluate(message("spam.com"))
    assert decision is not None
    [ask] = decision.fallbacks[decision.actions[0].action_id]
    assert ask.text == "请删除这条消息：本群不允许发链接。"  # type: ignore[attr-defined]


# --------------------------------------------------------------- invites


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("join t.me/joinchat/AbCdEf123", "Telegram"),
        ("加群 https://t.me/+AbCdEf123 速来", "Telegram"),
        ("加群ｔ．ｍｅ／＋ＡｂＣｄ１２３", "Telegram"),
        ("telegram.me/joinchat/xyz", "Telegram"),
        ("come to discord.gg/spamserver", "Discord"),
        ("https://discord.com/invite/abc", "Discord"),
        ("https://chat.whatsapp.com/JoinMeNow", "WhatsApp"),
        ("扫码进群 https://weixin.qq.com/g/AQYAAxyz", "WeChat"),
        ("u.wechat.com/EAbc123", "WeChat"),
        ("QQ群 https://qm.qq.com/cgi-bin/qm/qr?k=abc", "QQ"),
        ("line.me/R/ti/g/abcdef", "LINE"),
    ],
)
def test_invite_links_to_other_chats_are_struck_even_on_allowed_domains(
    text: str, kind: str
) -> None:
    rule = LinksRule.from_settings(
        {
            "allow": [
                "t.me",
                "telegram.me",
                "discord.gg",
                "discord.com",
                "whatsapp.com",
                "qq.com",
                "wechat.com",
                "line.me",
            ]
        }
    )
    ctx = message(text)
    decision = rule.evaluate(ctx)
    assert decision is not None and decision.strike
    assert decision.explanation.startswith(f"posted an invite link to another {kind} chat (")
    assert_deleted_with_fallback(decision, ctx)


def test_a_tg_join_link_is_an_invite() -> None:
    decision = links().evaluate(message("tg://join?invite=AbC123"))
    assert decision is not None
    assert "Telegram" in decision.explanation


def test_a_public_channel_link_is_no_invite_but_still_a_link() -> None:
    assert LinksRule.from_settings({"allow": ["t.me"]}).evaluate(message("t.me/ourchannel")) is None
    decision = links().evaluate(message("t.me/ourchannel"))
    assert decision is not None
    assert decision.explanation == "posted a link to t.me, which is not on the allowlist"


def test_allow_invites_treats_invites_as_plain_links() -> None:
    rule = LinksRule.from_settings({"allow": ["t.me"], "allow_invites": True})
    assert rule.evaluate(message("t.me/+AbCd")) is None
    decision = LinksRule.from_settings({"allow_invites": True}).evaluate(message("t.me/+AbCd"))
    assert decision is not None and "not on the allowlist" in decision.explanation


def test_configured_invite_patterns_catch_more() -> None:
    rule = links(invite_patterns=[r"open\.kakao\.com/o/\w+", r"vx群[:：]?\d+"])
    decision = rule.evaluate(message("kakao: OPEN.KAKAO.COM/o/gAbc"))
    assert decision is not None
    assert decision.explanation == (
        "posted an invite link (open.kakao.com/o/gabc) matching the invite pattern "
        '"open\\.kakao\\.com/o/\\w+"'
    )
    decision = rule.evaluate(message("加入ｖｘ群：１２３４５"))
    assert decision is not None and "vx群" in decision.explanation


# ----------------------------------------------------------- new members


@pytest.mark.parametrize("zone", ZONES)
def test_a_new_member_may_post_no_link_at_all(zone: Any) -> None:
    ctx = context(
        posted("our docs: example.com/start", at=T0.astimezone(zone)), member=new_member(3)
    )
    decision = links().evaluate(ctx)
    assert decision is not None and decision.strike
    assert decision.explanation == (
        "posted a link to example.com as a new member (joined 3 hours before; links need "
        "24 hours of membership)"
    )
    assert_deleted_with_fallback(decision, ctx)


@pytest.mark.parametrize("zone", ZONES)
def test_a_member_of_a_day_may_post_allowed_links(zone: Any) -> None:
    ctx = context(posted("example.com", at=T0.astimezone(zone)), member=new_member(24))
    assert links().evaluate(ctx) is None


def test_a_new_member_without_links_is_left_alone() -> None:
    assert links().evaluate(context(posted("大家好，我是新来的"), member=new_member(0.1))) is None


def test_an_unknown_join_time_is_not_new() -> None:
    member = Member(member_id="m3", identities=(PlatformIdentity("telegram", "44"),))
    assert links().evaluate(context(posted("example.com"), member=member)) is None


def test_new_member_hours_zero_disables_the_check() -> None:
    ctx = context(posted("example.com"), member=new_member(0.5))
    assert links(new_member_hours=0).evaluate(ctx) is None
    assert links(new_member_hours=1).evaluate(ctx) is not None


# --------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("settings", "message_part"),
    [
        ({"alow": ["example.com"]}, "unknown settings: alow"),
        ({"allow": 3}, "allow must be a list of texts, got 3"),
        ({"allow": ["https://example.com/"]}, "domain names like 'example.com'"),
        ({"allow": ["localhost"]}, "domain names like 'example.com', got 'localhost'"),
        ({"allow_invites": "no"}, "allow_invites must be true or false"),
        ({"new_member_hours": "24"}, "new_member_hours must be a whole number >= 0"),
        ({"new_member_hours": -1}, "new_member_hours must be a whole number >= 0"),
        ({"invite_patterns": ["(unclosed"]}, "'(unclosed' is not a valid pattern"),
        ({"notice": 5}, "notice must be a text"),
    ],
)
def test_bad_settings_are_refused_with_the_key_named(
    settings: dict[str, Any], message_part: str
) -> None:
    with pytest.raises(ModelError, match="links rule") as caught:
        LinksRule.from_settings(settings)
    assert message_part in str(caught.value)


def test_the_defaults() -> None:
    rule = LinksRule.from_settings({})
    assert (rule.name, rule.allow, rule.allow_invites, rule.new_member_hours) == (
        "links",
        (),
        False,
        24,
    )
    named = LinksRule.from_settings({"name": "ads", "exempt_tiers": ["gold"]})
    decision = named.evaluate(message("spam.com"))
    assert decision is not None and decision.source == "rule:ads"


def test_the_four_types_come_through_the_entry_point() -> None:
    types = fresh_plugin_manager(entry_points=True).rule_types()
    assert {"links", "keywords", "flood", "duplicates"} <= set(types)
    rule = types["links"].factory({"allow": ["example.com"]})
    assert rule.evaluate(message("spam.com")) is not None


# --------------------------------------------------------------- properties

_WORDS = st.sampled_from(
    ["hello", "大家好", "谢谢", "ok", "价格3.5元", "e.g.", "v1.2", "，", "。", "!", "ＡＢＣ", "1.5"]
)
_FILLER = st.lists(_WORDS, max_size=6).map(" ".join)
_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_SCHEMES = st.sampled_from(["", "http://", "https://", "HTTPS://", "ｈｔｔｐ：／／"])
_PATHS = st.sampled_from(["", "/", "/path", "/a/b?c=d#e", "／ｆｕｌｌ"])


@st.composite
def allowed_links(draw: st.DrawFn) -> str:
    subdomains = draw(st.lists(_LABEL, max_size=3))
    host = ".".join([*subdomains, draw(st.sampled_from(["example.com", "shop.中国", "bücher.de"]))])
    if draw(st.booleans()):
        host = host.upper()
    return draw(_SCHEMES) + host + draw(_PATHS)


@given(before=_FILLER, link=allowed_links(), after=_FILLER, hours=st.integers(24, 10_000))
def test_allowlisted_links_never_act(before: str, link: str, after: str, hours: int) -> None:
    rule = LinksRule.from_settings({"allow": ["example.com", "shop.中国", "bücher.de"]})
    ctx = context(posted(f"{before} {link} {after}"), member=new_member(hours))
    assert rule.evaluate(ctx) is None
    # the link is found: without the allowlist the same message is an offence
    assert LinksRule.from_settings({}).evaluate(ctx) is not None


@given(text=st.text(max_size=80))
def test_text_without_a_dot_or_scheme_is_never_a_link(text: str) -> None:
    normalized = normalize_text(text)
    if any(c in normalized for c in ".\u3002") or "://" in normalized:
        return
    assert links().evaluate(message(text)) is None


_ANY_TEXT = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda a, link, b: f"{a}{link}{b}",
        _FILLER,
        st.sampled_from(
            ["spam.com", "t.me/+x", "ｓｐａｍ．ｎｅｔ", "example.com/x", "discord.gg/a", "3.14"]
        ),
        _FILLER,
    ),
)


@given(text=_ANY_TEXT, hours=st.floats(0, 100), zone=st.sampled_from(ZONES))
def test_evaluation_is_deterministic(text: str, hours: float, zone: Any) -> None:
    rule = links()
    first = rule.evaluate(context(posted(text, at=T0.astimezone(zone)), member=new_member(hours)))
    again = links().evaluate(
        context(posted(text, at=T0.astimezone(zone)), member=new_member(hours))
    )
    assert first == again
    if first is not None:
        assert first.strike and len(set(action_ids(first))) == 2


@given(text=_ANY_TEXT)
def test_an_offence_always_names_a_domain_or_an_invite(text: str) -> None:
    decision = links().evaluate(message(text))
    if decision is not None:
        assert decision.explanation.startswith(("posted a link to ", "posted an invite link"))
        assert not decision.explanation.startswith("posted a link to example.com")
        assert all(action.reason == decision.explanation for action in decision.actions)


def test_the_member_helper_is_an_old_member() -> None:
    assert MEMBER.joined_at is not None and T0 - MEMBER.joined_at >= timedelta(days=1)
