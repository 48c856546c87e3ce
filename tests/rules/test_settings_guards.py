"""Settings that would hurt a running community are refused when the rules load:
patterns that backtrack for ever, templates that format themselves into errors,
thresholds beyond what the engine remembers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from communitykit import ModelError, make_plugin_manager
from communitykit.builtins.rules._common import compile_pattern

TYPES = make_plugin_manager().rule_types()


@pytest.mark.parametrize(
    ("rule_type", "settings"),
    [
        ("keywords", {"block": [r"re:(\w+\s?)+$"]}),
        ("keywords", {"block": [r"re:(a|(b+))*c"]}),
        ("links", {"invite_patterns": [r"(x+)+y"]}),
        (
            "entry",
            {"questions": [{"question": "Why?", "accept": [r"re:(?=(a*)*)b"]}]},
        ),
    ],
)
def test_a_pattern_that_repeats_a_repetition_is_refused(
    rule_type: str, settings: dict[str, object]
) -> None:
    with pytest.raises(ModelError, match="repeats a group that itself repeats"):
        TYPES[rule_type].factory(settings)


@given(st.text(alphabet="abc.|?", min_size=1, max_size=12))
def test_a_pattern_without_repetition_is_never_refused(core: str) -> None:
    try:
        re.compile(core)
    except re.error:
        return
    compile_pattern(core, "k")  # no quantifier at all: nothing to refuse


@pytest.mark.parametrize(
    ("rule_type", "key", "template"),
    [
        ("entry", "decline_message", "{reason!r}"),
        ("entry", "decline_message", "{reason:>99999999}"),
        ("inactivity", "reminder", "{name:x}"),
    ],
)
def test_templates_take_plain_placeholders_only(rule_type: str, key: str, template: str) -> None:
    settings: dict[str, object] = {key: template}
    if rule_type == "entry":
        settings["questions"] = [{"question": "Why?"}]
    with pytest.raises(ModelError, match="plain placeholders"):
        TYPES[rule_type].factory(settings)


@pytest.mark.parametrize(
    ("rule_type", "settings"),
    [("flood", {"messages": 100}), ("duplicates", {"times": 65})],
)
def test_thresholds_beyond_the_remembered_messages_are_refused(
    rule_type: str, settings: dict[str, object]
) -> None:
    with pytest.raises(ModelError, match="<= "):
        TYPES[rule_type].factory(settings)
