"""communitykit-telegram: the Telegram platform for communitykit.

:class:`TelegramAdapter` talks to the Bot API directly through
:mod:`communitykit.http` (no Telegram SDK): updates by long polling or a
webhook become communitykit events, and actions become Bot API calls paced at
Telegram's limits. Installing the distribution registers the ``telegram``
platform through the ``communitykit`` entry-point group; a
``[platforms.telegram]`` table configures it (see ``docs/telegram.md``)::

    [platforms.telegram]
    token = "${TELEGRAM_TOKEN}"
    mode = "polling"
"""

from __future__ import annotations

from collections.abc import Iterable

from communitykit import AdapterType, hookimpl
from communitykit_telegram._adapter import (
    ACTIONS,
    DEFAULT_API_BASE,
    DEFAULT_RATE_MARGIN,
    Mode,
    TelegramAdapter,
    priority_of,
)
from communitykit_telegram._normalize import (
    DEFAULT_ALLOWED_UPDATES,
    PLATFORM,
    JoinsFrom,
    Normalized,
    Normalizer,
    SkippedUpdate,
    parse_command,
)
from communitykit_telegram._text import MAX_MESSAGE_LENGTH, Part, split_text, utf16_len
from communitykit_telegram._webhook import SECRET_HEADER, WebhookApp, WebhookServer

__all__ = [
    "ACTIONS",
    "DEFAULT_ALLOWED_UPDATES",
    "DEFAULT_API_BASE",
    "DEFAULT_RATE_MARGIN",
    "MAX_MESSAGE_LENGTH",
    "PLATFORM",
    "SECRET_HEADER",
    "JoinsFrom",
    "Mode",
    "Normalized",
    "Normalizer",
    "Part",
    "SkippedUpdate",
    "TelegramAdapter",
    "WebhookApp",
    "WebhookServer",
    "communitykit_adapter_types",
    "parse_command",
    "priority_of",
    "split_text",
    "utf16_len",
]


@hookimpl
def communitykit_adapter_types() -> Iterable[AdapterType]:
    """The Telegram platform, registered like any other."""
    return [
        AdapterType(
            name="telegram",
            factory=TelegramAdapter.from_settings,
            description=(
                "Telegram's Bot API: updates by long polling or webhook, every request "
                "paced at Telegram's rate limits."
            ),
        )
    ]
