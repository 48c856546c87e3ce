"""The telegram platform is a plugin: found through its entry point, built from settings."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import communitykit_telegram
import pytest
from communitykit_telegram import (
    ACTIONS,
    DEFAULT_ALLOWED_UPDATES,
    DEFAULT_RATE_MARGIN,
    TelegramAdapter,
)

from communitykit import (
    ACTION_TYPES,
    AdapterType,
    CommunityKitError,
    PlatformSettings,
    Secret,
    make_plugin_manager,
    parse_config,
)
from communitykit.http import TELEGRAM

TOKEN = "123456:TEST-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"


def test_the_entry_point_resolves_and_offers_the_telegram_adapter() -> None:
    found = [ep for ep in entry_points(group="communitykit") if ep.name == "telegram"]
    assert len(found) == 1
    assert found[0].dist is not None
    assert found[0].dist.name == "communitykit-telegram"
    plugin = found[0].load()
    assert plugin is communitykit_telegram
    [adapter_type] = plugin.communitykit_adapter_types()
    assert isinstance(adapter_type, AdapterType)
    assert adapter_type.name == "telegram"
    assert adapter_type.description
    adapter = adapter_type.factory(PlatformSettings(name="telegram", token=Secret(TOKEN)))
    assert isinstance(adapter, TelegramAdapter)


def test_the_plugin_manager_finds_the_telegram_adapter() -> None:
    plugins = make_plugin_manager(environ={})
    assert "telegram" in plugins.adapter_types()
    assert not [f for f in plugins.failures if f.name == "telegram"]
    assert plugins.adapter_types()["telegram"].factory == TelegramAdapter.from_settings


def test_capabilities_are_honest() -> None:
    capabilities = TelegramAdapter.capabilities
    assert capabilities.actions == ACTIONS == frozenset(ACTION_TYPES)
    assert capabilities.direct_messages is True
    assert capabilities.max_message_length == 4096


def test_from_a_community_toml() -> None:
    config = parse_config(
        """
        [community]
        name = "tg"
        timezone = "UTC"

        [platforms.telegram]
        token = "${TELEGRAM_TOKEN}"
        api_base = "http://127.0.0.1:8081"
        mode = "webhook"
        webhook_secret = "${TELEGRAM_WEBHOOK_SECRET}"
        webhook_url = "https://bot.example.org/telegram"
        webhook_listen = "0.0.0.0:8443"
        poll_timeout = 50
        allowed_updates = ["message", "chat_member"]
        paid_broadcast = true
        bot_username = "my_community_bot"
        joins_from = "service_messages"
        max_retries = 5
        request_timeout = 20
        rate_margin = 0.1
        """,
        environ={"TELEGRAM_TOKEN": TOKEN, "TELEGRAM_WEBHOOK_SECRET": "abc_DEF-123"},
    )
    adapter = TelegramAdapter.from_settings(config.platforms["telegram"])
    assert adapter.api_base == "http://127.0.0.1:8081"
    assert adapter.mode == "webhook"
    assert adapter.webhook_url == "https://bot.example.org/telegram"
    assert adapter.webhook_listen == ("0.0.0.0", 8443)
    assert adapter.poll_timeout == 50
    assert adapter.allowed_updates == ("message", "chat_member")
    assert adapter.paid_broadcast is True
    assert adapter.normalizer.bot_username == "my_community_bot"
    assert adapter.normalizer.joins_from == "service_messages"
    assert adapter.bot_id == "123456"
    assert adapter.limits.margin == 0.1
    assert "TEST-" not in repr(adapter)


def test_defaults() -> None:
    adapter = TelegramAdapter.from_settings(PlatformSettings(name="telegram", token=Secret(TOKEN)))
    assert adapter.api_base == "https://api.telegram.org"
    assert adapter.mode == "polling"
    assert adapter.allowed_updates == DEFAULT_ALLOWED_UPDATES
    assert adapter.paid_broadcast is False
    assert adapter.webhook_listen == ("127.0.0.1", 8443)
    assert adapter.limits.margin == DEFAULT_RATE_MARGIN
    for scope in ("bot", "paid", "chat", "group"):  # Telegram's own numbers
        assert adapter.limits.rate(scope) == TELEGRAM.rate(scope)
    assert adapter.limits.targets == TELEGRAM.targets
    assert adapter.limits.rate("poll") is None  # the long poll: unpaced, paused by a 429


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mdoe": "polling"}, "unknown option.*'mdoe'"),
        ({"mode": "push"}, '\'mode\' must be "polling" or "webhook"'),
        ({"mode": "webhook"}, "needs a webhook_secret"),
        ({"poll_timeout": -1}, "'poll_timeout' must be whole seconds"),
        ({"poll_timeout": 2.5}, "'poll_timeout' must be whole seconds"),
        ({"request_timeout": 0}, "'request_timeout' must be a number of seconds > 0"),
        ({"max_retries": True}, "'max_retries' must be a whole number"),
        ({"allowed_updates": "message"}, "'allowed_updates' must be a list"),
        ({"allowed_updates": ["message", 3]}, "'allowed_updates' must be a list"),
        ({"paid_broadcast": "yes"}, "'paid_broadcast' must be true or false"),
        ({"webhook_url": "bot.example.org"}, "'webhook_url' must be an https:// URL"),
        ({"webhook_listen": "8443"}, "webhook_listen: expected HOST:PORT"),
        ({"bot_username": "a b"}, "'bot_username' must be a Telegram username"),
        ({"joins_from": "vibes"}, "joins_from is 'chat_member' or 'service_messages'"),
        ({"rate_margin": 0.5}, "'rate_margin' must be a fraction in \\[0, 0.5\\)"),
    ],
)
def test_bad_options_are_clear_errors(options: dict[str, object], message: str) -> None:
    settings = PlatformSettings(name="telegram", token=Secret(TOKEN), options=options)
    with pytest.raises(CommunityKitError, match=message):
        TelegramAdapter.from_settings(settings)


def test_a_token_is_required_and_must_look_like_one() -> None:
    with pytest.raises(CommunityKitError, match="needs the bot's token"):
        TelegramAdapter.from_settings(PlatformSettings(name="telegram"))
    with pytest.raises(CommunityKitError, match="looks like '<bot id>:<secret>'") as bad:
        TelegramAdapter("not-a-token-at-all")
    assert "not-a-token" not in str(bad.value)


def test_the_readme_example_runs() -> None:
    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text(encoding="utf-8")
    examples = re.findall(r"```python\n(.*?)```", text, re.S)
    assert examples
    for code in examples:
        exec(compile(code, str(readme), "exec"), {"__name__": "readme_example"})
