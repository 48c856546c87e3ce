"""Campaign types for a community's rituals: ``welcome`` and ``schedule``.

See ``docs/campaigns-rituals.md``.
"""

from __future__ import annotations

from collections.abc import Iterable

from communitykit._plugin_types import CampaignType
from communitykit.builtins.campaigns._cron import CronSchedule
from communitykit.builtins.campaigns._schedule import ScheduleCampaign
from communitykit.builtins.campaigns._welcome import WelcomeCampaign, parse_birthday
from communitykit.hookspecs import hookimpl

__all__ = [
    "CronSchedule",
    "ScheduleCampaign",
    "WelcomeCampaign",
    "communitykit_campaign_types",
    "parse_birthday",
]


@hookimpl
def communitykit_campaign_types() -> Iterable[CampaignType]:
    return [
        CampaignType(
            name="welcome",
            factory=WelcomeCampaign.from_settings,
            description="welcome newcomers in one message; birthdays and membership milestones",
            takes_timezone=True,
        ),
        CampaignType(
            name="schedule",
            factory=ScheduleCampaign.from_settings,
            description="send content to groups or a segment at cron moments (a daily SOP)",
            takes_timezone=True,
        ),
    ]
