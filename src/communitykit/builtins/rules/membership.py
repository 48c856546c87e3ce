"""Built-in membership rule types: ``entry``, ``captcha``, ``inactivity`` and
``size_cap`` (who gets in, who proves they are human, who is swept out after a
long silence, and where newcomers go when a group is full).

Each is a pure rule (see ``docs/rules-membership.md``); this module registers them.
"""

from __future__ import annotations

from collections.abc import Iterable

from communitykit._plugin_types import RuleType
from communitykit.builtins.rules._captcha import CaptchaRule, captcha_code
from communitykit.builtins.rules._entry import EntryRule
from communitykit.builtins.rules._sizecap import SizeCapRule
from communitykit.builtins.rules._sweep import InactivityRule
from communitykit.hookspecs import hookimpl

__all__ = [
    "CaptchaRule",
    "EntryRule",
    "InactivityRule",
    "SizeCapRule",
    "captcha_code",
    "communitykit_rule_types",
]


@hookimpl
def communitykit_rule_types() -> Iterable[RuleType]:
    return [
        RuleType(
            name="entry",
            factory=EntryRule.from_settings,
            description="approve or decline join requests by questionnaire, payment or invite",
        ),
        RuleType(
            name="captcha",
            factory=CaptchaRule.from_settings,
            description="newcomers answer a /verify code before a deadline or are removed",
        ),
        RuleType(
            name="inactivity",
            factory=InactivityRule.from_settings,
            description="a daily sweep that reminds, then removes, long-silent members",
            scope_defaults={"exempt_paid": True},
        ),
        RuleType(
            name="size_cap",
            factory=SizeCapRule.from_settings,
            description="a full group declines or removes newcomers and points them to the next",
        ),
    ]
