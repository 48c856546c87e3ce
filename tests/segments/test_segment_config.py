"""``[lifecycle]``, ``[segments]`` and ``[[auto_tags]]`` in community.toml."""

from __future__ import annotations

import pytest

from communitykit import CommunityConfig, ConfigError, LifecycleSettings, parse_config

HEAD = """
[community]
name = "c"
store = "memory://"

[[tiers.ladder]]
name = "base"
threshold = 0

[[tiers.ladder]]
name = "gold"
threshold = 100

[[groups]]
key = "main"
platform = "console"
id = "g1"
"""


def load(text: str) -> CommunityConfig:
    return parse_config(HEAD + text)


def test_segments_lifecycle_and_auto_tags_are_read() -> None:
    config = load(
        """
[lifecycle]
new_days = 3
recalled_days = 10

[segments.engaged_gold]
where = "tier:gold and (active or contributors) and not tag:staff"

[segments.photographers]
type = "posted"
messages = 10
media = "photo"
period = "month"

[[auto_tags]]
tag = "photographer"
segment = "photographers"
remove = true
"""
    )
    assert config.lifecycle == LifecycleSettings(new_days=3, recalled_days=10)
    assert str(config.segments["engaged_gold"].where).startswith("tier:gold")
    assert config.segments["photographers"].type == "posted"
    assert dict(config.segments["photographers"].settings) == {
        "messages": 10,
        "media": "photo",
        "period": "month",
    }
    (auto,) = config.auto_tags
    assert (auto.tag, auto.segment, auto.remove) == ("photographer", "photographers", True)


def test_a_file_without_them_has_the_defaults() -> None:
    config = load("")
    assert config.lifecycle == LifecycleSettings()
    assert dict(config.segments) == {}
    assert config.auto_tags == ()


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ('[segments.x]\nwhere = "activ"', "segments.x.where", "did you mean 'active'"),
        ('[segments.x]\nwhere = "active and"', "segments.x.where", "ends where a segment name"),
        ('[segments.x]\nwhere = "(active"', "segments.x.where", "expected ')'"),
        ('[segments.x]\nwhere = "active & new"', "segments.x.where", "unexpected '&'"),
        ('[segments.x]\nwhere = "tier:platinum"', "segments.x.where", "unknown tier"),
        ('[segments.x]\nwhere = "group:side"', "segments.x.where", "unknown group"),
        ('[segments.x]\nwhere = "y"\n[segments.y]\nwhere = "x"', "segments.x.where", "loop"),
        ("[segments.x]\nwhere = 3", "segments.x.where", "expected a non-empty string"),
        ("[segments.x]\n", "segments.x", "either where"),
        ('[segments.active]\nwhere = "new"', "segments.active", "built-in"),
        ('[segments.and]\nwhere = "new"', "segments.and", "word of segment expressions"),
        ('[segments.x]\ntype = "posted"\nmedia = "gif"', "segments.x", "media"),
        ('[segments.x]\ntype = "posted"\nperiod = "fortnight"', "segments.x", "period"),
        ('[segments.x]\ntype = "posted"\nmessages = 0', "segments.x", "messages"),
        ('[segments.x]\ntype = "posted"\ncolour = 1', "segments.x", "colour"),
        (
            '[segments.x]\ntype = "contributors"\ndays = 10000000',
            "segments.x",
            "days: expected a whole number from 1 to 99999",
        ),
        ('[segments.x]\ntype = "posted"\nmessages = 1e3', "segments.x", "messages"),
        ("[lifecycle]\nactive_days = 50\nchurned_days = 40", "lifecycle", "active_days"),
        ("[lifecycle]\nrecalled = 3", "lifecycle.recalled", "did you mean"),
        ('[[auto_tags]]\ntag = "x"\nsegment = "nope"', "auto_tags[0].segment", "unknown segment"),
        ('[[auto_tags]]\ntag = "x"', "auto_tags[0]", "either segment"),
        ('[[auto_tags]]\ntag = "x"\nwhere = "not not"', "auto_tags[0].where", "ends where"),
    ],
)
def test_bad_definitions_are_one_clear_error_naming_the_key(
    text: str, key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(text)
    assert caught.value.key == key
    assert words in str(caught.value)
    assert str(caught.value).startswith("community.toml: ")
    assert "\n" not in str(caught.value)


def test_contributors_may_be_tuned_under_its_own_name() -> None:
    config = load('[segments.contributors]\ntype = "contributors"\nresponses = 5\ndays = 7')
    assert dict(config.segments["contributors"].settings) == {"responses": 5, "days": 7}


def _chain(depth: int) -> str:
    links = "".join(f'[segments.s{i}]\nwhere = "s{i + 1}"\n' for i in range(depth))
    return f'[community]\nname = "x"\n{links}[segments.s{depth}]\nwhere = "active"\n'


def test_a_chain_of_segments_deeper_than_the_limit_is_refused_at_load() -> None:
    from communitykit.config import MAX_SEGMENT_DEPTH

    parse_config(_chain(MAX_SEGMENT_DEPTH - 1))  # as deep as allowed
    with pytest.raises(ConfigError) as caught:
        parse_config(_chain(500))  # deep enough to overflow the stack when built
    assert caught.value.key == "segments.s0.where"
    assert f"more than {MAX_SEGMENT_DEPTH} deep" in str(caught.value)
