"""Reading a campaign's settings: the rules' reader, with messages that say "campaign"."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import tzinfo
from typing import Any

from communitykit._errors import ModelError
from communitykit.builtins.rules._common import Settings
from communitykit.builtins.rules._entry import template as _rule_template
from communitykit.model._time import resolve_timezone

__all__ = ["CampaignSettings"]


class CampaignSettings(Settings):
    """:class:`Settings` for a campaign type (messages name the campaign type)."""

    def __init__(self, settings: Mapping[str, Any], campaign_type: str) -> None:
        super().__init__(settings, campaign_type)
        self.campaign_type = campaign_type

    def fail(self, key: str, expected: str, value: object) -> ModelError:
        return ModelError(f"{self.campaign_type} campaign: {key} must be {expected}, got {value!r}")

    def _fail(self, key: str, expected: str, value: object) -> ModelError:
        return self.fail(key, expected, value)

    def done(self) -> None:
        try:
            super().done()
        except ModelError as exc:
            raise self._relabel(exc) from None

    def _relabel(self, exc: ModelError) -> ModelError:
        text = str(exc)
        prefix = f"{self.campaign_type} rule: "
        if text.startswith(prefix):
            text = f"{self.campaign_type} campaign: " + text[len(prefix) :]
        return ModelError(text)

    def template(self, key: str, default: str, fields: Sequence[str]) -> str:
        """A message template whose ``{placeholders}`` are all in ``fields``."""
        try:
            return _rule_template(self, self.campaign_type, key, default, fields)
        except ModelError as exc:
            raise self._relabel(exc) from None

    def timezone(self) -> tuple[str, tzinfo]:
        """The ``timezone`` setting (an IANA name, default ``"UTC"``)."""
        name = self.text("timezone", "UTC")
        try:
            return name, resolve_timezone(name)
        except ModelError:
            raise self.fail("timezone", "an IANA time zone like 'Asia/Shanghai'", name) from None

    def group_keys(self) -> tuple[str, ...]:
        """The ``groups`` setting: configured group keys (empty: every group)."""
        return self.texts("groups")
