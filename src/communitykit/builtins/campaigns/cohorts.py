"""Campaign types for cohorts: ``training_camp`` (训练营) and ``recall``.

See ``docs/campaigns-cohorts.md``.
"""

from __future__ import annotations

from collections.abc import Iterable

from communitykit._plugin_types import CampaignType
from communitykit.builtins.campaigns._camp import CampDay, TrainingCampCampaign, camp_numbers
from communitykit.builtins.campaigns._recall import RecallCampaign, recall_numbers
from communitykit.hookspecs import hookimpl

__all__ = [
    "CampDay",
    "RecallCampaign",
    "TrainingCampCampaign",
    "camp_numbers",
    "communitykit_campaign_types",
    "recall_numbers",
]


@hookimpl
def communitykit_campaign_types() -> Iterable[CampaignType]:
    return [
        CampaignType(
            name="training_camp",
            factory=TrainingCampCampaign.from_settings,
            description="a cohort training camp (训练营): daily lessons, tasks, homework, stars",
            takes_timezone=True,
        ),
        CampaignType(
            name="recall",
            factory=RecallCampaign.from_settings,
            description="recall silent members by direct message, a few times, with opt-out",
            takes_timezone=True,
        ),
    ]
