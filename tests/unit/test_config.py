"""community.toml: loading, defaults, interpolation, and a clear error for every bad input."""

from __future__ import annotations

import io
import json
import logging
import math
import pickle
import traceback
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from communitykit import CommunityKitError, PlatformSettings, Secret
from communitykit.config import (
    CommunityConfig,
    ConfigError,
    PluginConfig,
    PointsConfig,
    default_config,
    load_config,
    parse_config,
)

FULL = """\
[community]
name = "Python Beijing"
purpose = "Python developers in Beijing"
timezone = "Asia/Shanghai"
store = "sqlite:///data/community.db"

[[groups]]
key = "main"
platform = "console"
id = "main"
title = "Main group"
size_cap = 200
overflow_order = 1

[[groups]]
key = "tg-1"
platform = "telegram"
id = "-1001234"

[platforms.telegram]
token = "${TELEGRAM_TOKEN}"
api_base = "https://api.telegram.org"
poll_timeout = 30
webhook_secret = "hook-secret-value"
allowed_updates = ["message", "chat_member"]

[platforms.console]

[points]
message = 2
message_daily_cap = 30
reaction_received = 3
reaction_daily_cap = 5
expire_after_days = 365

[tiers]
window_days = 90
grace_days = 14

[[tiers.ladder]]
name = "newcomer"
threshold = 0

[[tiers.ladder]]
name = "regular"
threshold = 100
multiplier = "1.2"
min_tenure_days = 7
min_checkins = 3
requires_paid = false
titles = { telegram = "Regular" }

[[tiers.ladder]]
name = "core"
threshold = 500
multiplier = 1.5
requires_paid = true

[[rules]]
type = "links"
groups = ["main"]
allow = ["python.org"]

[[rules]]
type = "flood"
enabled = false
max_messages = 5

[[campaigns]]
type = "checkin"
reward = 5
schedule = { at = "08:00", days = ["mon", "wed"] }
"""

TOKEN = "123456:AAE-very-secret-token"
ENV = {"TELEGRAM_TOKEN": TOKEN}


def minimal(extra: str = "", name: str = "Python Beijing") -> str:
    """A valid file with ``extra`` first (so bare keys in it stay top-level)."""
    return f'{extra}[community]\nname = "{name}"\nstore = "memory://"\n'


def error_of(text: str, environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, environ=environ or {})
    return info.value


# --------------------------------------------------------------------------- a valid file


def test_full_example_parses_field_by_field(tmp_path: Path) -> None:
    config = parse_config(FULL, base_dir=tmp_path, environ=ENV)
    assert config.path is None

    community = config.community
    assert community.name == "Python Beijing"
    assert community.purpose == "Python developers in Beijing"
    assert community.timezone == "Asia/Shanghai"
    main, tg = community.groups
    assert (main.key, main.platform, main.group_id, main.title) == (
        "main",
        "console",
        "main",
        "Main group",
    )
    assert (main.size_cap, main.overflow_order) == (200, 1)
    assert (tg.key, tg.platform, tg.group_id, tg.title) == ("tg-1", "telegram", "-1001234", "")
    assert (tg.size_cap, tg.overflow_order) == (None, 0)
    assert community.group("telegram", "-1001234") == tg

    assert config.store_url == "sqlite:///" + (tmp_path / "data" / "community.db").as_posix()

    assert set(config.platforms) == {"telegram", "console"}
    telegram = config.platforms["telegram"]
    assert isinstance(telegram, PlatformSettings)
    assert telegram.name == "telegram"
    assert telegram.token == Secret(TOKEN)
    assert telegram.token is not None
    assert telegram.token.reveal() == TOKEN
    assert telegram.api_base == "https://api.telegram.org"
    assert telegram.options["poll_timeout"] == 30
    assert telegram.options["webhook_secret"] == Secret("hook-secret-value")
    assert telegram.options["allowed_updates"] == ("message", "chat_member")
    assert set(telegram.options) == {"poll_timeout", "webhook_secret", "allowed_updates"}
    console = config.platforms["console"]
    assert (console.token, console.api_base, dict(console.options)) == (None, None, {})

    assert config.points == PointsConfig(
        message=2,
        message_daily_cap=30,
        reaction_received=3,
        reaction_daily_cap=5,
        expire_after_days=365,
    )

    ladder = config.ladder
    assert ladder.window == timedelta(days=90)
    assert ladder.grace == timedelta(days=14)
    assert [tier.name for tier in ladder.tiers] == ["newcomer", "regular", "core"]
    newcomer, regular, core = ladder.tiers
    assert (newcomer.threshold, newcomer.multiplier) == (0, Decimal(1))
    assert regular.threshold == 100
    assert regular.multiplier == Decimal("1.2")
    assert (regular.min_tenure_days, regular.min_checkins, regular.requires_paid) == (7, 3, False)
    assert regular.title_on("telegram") == "Regular"
    assert core.multiplier == Decimal("1.5")
    assert core.requires_paid is True

    links, flood = config.rules
    assert links == PluginConfig(
        type="links",
        settings={"groups": ("main",), "allow": ("python.org",)},
        key="rules[0]",
        enabled=True,
    )
    assert (flood.type, flood.key, flood.enabled) == ("flood", "rules[1]", False)
    assert dict(flood.settings) == {"max_messages": 5}
    assert config.enabled_rules == (links,)

    (checkin,) = config.campaigns
    assert (checkin.type, checkin.key, checkin.enabled) == ("checkin", "campaigns[0]", True)
    assert checkin.settings["reward"] == 5
    assert checkin.settings["schedule"] == {"at": "08:00", "days": ("mon", "wed")}
    assert config.enabled_campaigns == (checkin,)


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    file = tmp_path / "community.toml"
    file.write_text(FULL, encoding="utf-8")
    config = load_config(file, environ=ENV)
    assert config.path == file
    assert config == attrs.evolve(parse_config(FULL, base_dir=tmp_path, environ=ENV), path=file)


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    file = tmp_path / "community.toml"
    file.write_bytes(b"\xef\xbb\xbf" + minimal().encode())
    assert load_config(file).community.name == "Python Beijing"


def test_settings_are_read_only() -> None:
    config = parse_config(FULL, environ=ENV)
    settings = config.rules[0].settings
    with pytest.raises(TypeError):
        settings["allow"] = ("evil.example",)  # type: ignore[index]
    schedule = config.campaigns[0].settings["schedule"]
    with pytest.raises(TypeError):
        schedule["at"] = "09:00"
    with pytest.raises(TypeError):
        config.platforms["x"] = PlatformSettings(name="x")  # type: ignore[index]


# --------------------------------------------------------------------------- defaults


def test_defaults_when_tables_are_absent() -> None:
    config = parse_config('[community]\nname = "Tiny"\n', base_dir=Path("/srv/tiny"))
    assert config.community.name == "Tiny"
    assert config.community.purpose == ""
    assert config.community.timezone == "UTC"
    assert config.community.groups == ()
    assert dict(config.platforms) == {}
    assert config.points == PointsConfig(
        message=1,
        message_daily_cap=20,
        reaction_received=1,
        reaction_daily_cap=10,
        expire_after_days=None,
    )
    assert [(tier.name, tier.threshold) for tier in config.ladder.tiers] == [("member", 0)]
    assert config.ladder.window is None
    assert config.ladder.grace == timedelta(days=30)
    assert (config.rules, config.campaigns) == ((), ())


def test_empty_tables_give_the_defaults() -> None:
    text = minimal("[points]\n[tiers]\n[platforms]\n")
    assert parse_config(text) == parse_config(minimal())


def test_window_and_grace_apply_to_the_default_ladder() -> None:
    config = parse_config(minimal("[tiers]\nwindow_days = 30\ngrace_days = 0\n"))
    assert [tier.name for tier in config.ladder.tiers] == ["member"]
    assert (config.ladder.window, config.ladder.grace) == (timedelta(days=30), timedelta(0))


def test_default_config_is_a_file_with_only_a_name() -> None:
    assert default_config() == parse_config('[community]\nname = "demo"\nstore = "memory://"\n')
    config = default_config("Python Beijing", store_url="sqlite:////tmp/pb.db")
    assert config.community.name == "Python Beijing"
    assert config.store_url == "sqlite:////tmp/pb.db"
    assert config.path is None


def test_default_config_rejects_a_bad_store() -> None:
    with pytest.raises(ConfigError, match=r"community\.store: expected a store URL"):
        default_config(store_url="community.db")


# --------------------------------------------------------------------------- the store


def test_relative_sqlite_path_is_next_to_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc" / "pybj"
    folder.mkdir(parents=True)
    (folder / "community.toml").write_text(
        '[community]\nname = "x"\nstore = "sqlite:///data/../pybj.db"\n', encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)  # the working directory does not matter
    config = load_config("etc/pybj/community.toml")
    assert config.store_url == "sqlite:///" + (folder / "pybj.db").as_posix()
    assert config.path == folder / "community.toml"
    assert config.path.is_absolute()


def test_default_store_is_a_sqlite_file_named_after_the_config(tmp_path: Path) -> None:
    file = tmp_path / "python-beijing.toml"
    file.write_text('[community]\nname = "x"\n', encoding="utf-8")
    assert load_config(file).store_url == "sqlite:///" + (tmp_path / "python-beijing.db").as_posix()


def test_parse_config_takes_the_default_store_from_base_dir(tmp_path: Path) -> None:
    config = parse_config('[community]\nname = "x"\n', base_dir=tmp_path)
    assert config.store_url == "sqlite:///" + (tmp_path / "community.db").as_posix()


def test_parse_config_without_base_dir_uses_the_folder_of_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = parse_config('[community]\nname = "x"\n', path="conf/site.toml")
    assert config.store_url == "sqlite:///" + (tmp_path / "conf" / "site.db").as_posix()


@pytest.mark.parametrize(
    "url",
    [
        "memory://",
        "sqlite:////var/lib/community.db",
        "sqlite://",
        "sqlite:///:memory:",
        "postgresql://bot@db.internal:5432/community",
        "postgresql+psycopg://bot@db/community",
    ],
)
def test_store_urls_kept_as_they_are(url: str, tmp_path: Path) -> None:
    config = parse_config(f'[community]\nname = "x"\nstore = "{url}"\n', base_dir=tmp_path)
    assert config.store_url == url


def test_relative_sqlite_path_keeps_its_query(tmp_path: Path) -> None:
    config = parse_config(
        '[community]\nname = "x"\nstore = "sqlite:///c.db?timeout=5"\n', base_dir=tmp_path
    )
    assert config.store_url == "sqlite:///" + (tmp_path / "c.db").as_posix() + "?timeout=5"


def test_a_store_password_is_not_in_the_repr() -> None:
    config = parse_config(
        '[community]\nname = "x"\nstore = "postgresql://bot:pa55word@db/community"\n'
    )
    assert config.store_url == "postgresql://bot:pa55word@db/community"
    assert "pa55word" not in repr(config)
    assert "postgresql://bot:***@db/community" in repr(config)


# --------------------------------------------------------------------------- interpolation


def name_with(template: str, environ: dict[str, str]) -> str:
    return parse_config(minimal(name=template), environ=environ).community.name


def test_env_variable_is_substituted() -> None:
    assert name_with("${CITY} Python", {"CITY": "Beijing"}) == "Beijing Python"
    assert name_with("${A}${B}", {"A": "x", "B": "y"}) == "xy"


def test_env_default_applies_when_unset_or_empty() -> None:
    assert name_with("${CITY:-Shanghai}", {}) == "Shanghai"
    assert name_with("${CITY:-Shanghai}", {"CITY": ""}) == "Shanghai"
    assert name_with("${CITY:-Shanghai}", {"CITY": "Beijing"}) == "Beijing"
    assert name_with("x${CITY:-}", {}) == "x"


def test_missing_env_variable_names_the_key_and_the_variable() -> None:
    text = minimal('[platforms.telegram]\ntoken = "${TELEGRAM_TOKEN}"\n')
    err = error_of(text)
    assert str(err) == (
        "community.toml: platforms.telegram.token: environment variable TELEGRAM_TOKEN is not set"
    )
    assert err.key == "platforms.telegram.token"


def test_double_dollar_escapes_a_placeholder() -> None:
    assert name_with("cost $${PRICE}", {"PRICE": "9"}) == "cost ${PRICE}"
    assert name_with("$5 and $HOME", {"HOME": "/root"}) == "$5 and $HOME"


def test_env_values_are_not_expanded_again() -> None:
    assert name_with("${A}", {"A": "${B}", "B": "no"}) == "${B}"


def test_interpolation_reaches_arrays_and_inline_tables() -> None:
    text = minimal(
        '[[tiers.ladder]]\nname = "m"\nthreshold = 0\ntitles = { telegram = "${T}" }\n'
        '[[rules]]\ntype = "links"\nallow = ["${DOMAIN}", "python.org"]\n'
    )
    config = parse_config(text, environ={"T": "Member", "DOMAIN": "pybj.org"})
    assert config.ladder.tiers[0].title_on("telegram") == "Member"
    assert config.rules[0].settings["allow"] == ("pybj.org", "python.org")


def test_interpolated_text_is_still_a_string() -> None:
    err = error_of(minimal('[points]\nmessage = "${POINTS}"\n'), {"POINTS": "3"})
    assert str(err) == (
        'community.toml: points.message: expected a whole number from 0 to 1000000000000, found "3"'
    )


@pytest.mark.parametrize(
    ("template", "found"),
    [
        ("${}", '"${}"'),
        ("${1ABC}", '"${1ABC}"'),
        ("${A-b}", '"${A-b}"'),
        ("${A:-${B}}", '"${A:-${B}"'),
        ("abc ${UNCLOSED", 'a "${" without a closing "}"'),
    ],
)
def test_bad_placeholders(template: str, found: str) -> None:
    err = error_of(minimal(name=template))
    assert err.key == "community.name"
    assert err.found == found
    assert str(err).startswith('community.toml: community.name: expected "${NAME}" or ')


def test_load_config_reads_os_environ_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "community.toml"
    file.write_text('[community]\nname = "${CK_TEST_NAME}"\n', encoding="utf-8")
    monkeypatch.setenv("CK_TEST_NAME", "From env")
    assert load_config(file).community.name == "From env"
    monkeypatch.delenv("CK_TEST_NAME")
    with pytest.raises(ConfigError, match="environment variable CK_TEST_NAME is not set"):
        load_config(file)


# --------------------------------------------------------------------------- bad input

LADDER_AB = '[[tiers.ladder]]\nname = "a"\nthreshold = 0\n[[tiers.ladder]]\nname = "b"\n'
GROUP = '[[groups]]\nkey = "main"\nplatform = "telegram"\nid = "-100"\n'

BAD: list[tuple[str, str, str]] = [
    # wrong types: no coercion, booleans are not numbers
    (
        LADDER_AB + 'threshold = "ten"\n',
        "tiers.ladder[1].threshold",
        'expected a whole number >= 0, found "ten"',
    ),
    (
        "[points]\nmessage = true\n",
        "points.message",
        "expected a whole number from 0 to 1000000000000, found true",
    ),
    (
        "[points]\nmessage = 1.5\n",
        "points.message",
        "expected a whole number from 0 to 1000000000000, found 1.5",
    ),
    (
        "[points]\nmessage = -1\n",
        "points.message",
        "expected a whole number from 0 to 1000000000000, found -1",
    ),
    (
        "[points]\nexpire_after_days = 0\n",
        "points.expire_after_days",
        "expected a whole number from 1 to 36500, found 0",
    ),
    (
        "[tiers]\nwindow_days = 99999999999\n",
        "tiers.window_days",
        "expected a whole number from 1 to 36500, found 99999999999",
    ),
    ("points = 3\n", "points", "expected a table, found 3"),
    ("[[points]]\nmessage = 1\n", "points", "expected a table, found an array of 1 item"),
    (
        "[groups]\nkey = 1\n",
        "groups",
        "expected an array of tables ([[groups]]), found a table",
    ),
    ("rules = [1]\n", "rules[0]", "expected a table ([[rules]]), found 1"),
    (
        GROUP.replace('"-100"', "-100"),
        "groups[0].id",
        'expected a string (write ids in quotes: id = "-100"), found -100',
    ),
    (GROUP + "size_cap = 0\n", "groups[0].size_cap", "expected a whole number >= 1, found 0"),
    (GROUP + "title = 5\n", "groups[0].title", "expected a string, found 5"),
    (
        GROUP + 'overflow_order = "1"\n',
        "groups[0].overflow_order",
        'expected a whole number, found "1"',
    ),
    (
        LADDER_AB + 'threshold = 10\nmultiplier = "lots"\n',
        "tiers.ladder[1].multiplier",
        'expected a decimal number from 0 to 1000, such as 1.5 or "1.2", found "lots"',
    ),
    (
        LADDER_AB + "threshold = 10\nmultiplier = -1\n",
        "tiers.ladder[1].multiplier",
        'expected a decimal number from 0 to 1000, such as 1.5 or "1.2", found -1',
    ),
    (
        LADDER_AB + "threshold = 10\nmultiplier = true\n",
        "tiers.ladder[1].multiplier",
        'expected a decimal number from 0 to 1000, such as 1.5 or "1.2", found true',
    ),
    (
        LADDER_AB + "threshold = 10\nrequires_paid = 1\n",
        "tiers.ladder[1].requires_paid",
        "expected true or false, found 1",
    ),
    (
        LADDER_AB + "threshold = 10\ntitles = { telegram = 1 }\n",
        "tiers.ladder[1].titles.telegram",
        "expected a title (a string), found 1",
    ),
    (
        '[[rules]]\ntype = "links"\nenabled = "no"\n',
        "rules[0].enabled",
        'expected true or false, found "no"',
    ),
    # unknown keys, with a suggestion when one is close
    ("[points]\nmesage = 2\n", "points.mesage", 'unknown key; did you mean "message"?'),
    ("[tiers]\ngrace = 2\n", "tiers.grace", 'unknown key; did you mean "grace_days"?'),
    (GROUP + 'tittle = "x"\n', "groups[0].tittle", 'unknown key; did you mean "title"?'),
    (
        LADDER_AB + "threshold = 10\nmultiplyer = 2\n",
        "tiers.ladder[1].multiplyer",
        'unknown key; did you mean "multiplier"?',
    ),
    (
        "[points]\nbananas = 2\n",
        "points.bananas",
        "unknown key; expected one of message, message_daily_cap, reaction_received, "
        "reaction_daily_cap, expire_after_days",
    ),
    ("[campaign]\ntype = 'x'\n", "campaign", 'unknown table; did you mean "campaigns"?'),
    (
        "colour = 'red'\n",
        "colour",
        "unknown key; expected one of community, groups, platforms, "
        "points, tiers, rules, campaigns, lifecycle, segments, auto_tags",
    ),
    # domain rules
    (
        GROUP + '[[groups]]\nkey = "main"\nplatform = "discord"\nid = "7"\n',
        "groups[1].key",
        'the key "main" is already used by groups[0]',
    ),
    (
        GROUP + '[[groups]]\nkey = "second"\nplatform = "telegram"\nid = "-100"\n',
        "groups[1].id",
        'telegram id "-100" is already used by groups[0]',
    ),
    (
        LADDER_AB + "threshold = 0\n",
        "tiers.ladder[1].threshold",
        'expected a threshold above 0 (the threshold of "a", the tier below), found 0',
    ),
    (
        LADDER_AB + 'threshold = 50\n[[tiers.ladder]]\nname = "c"\nthreshold = 20\n',
        "tiers.ladder[2].threshold",
        'expected a threshold above 50 (the threshold of "b", the tier below), found 20',
    ),
    (
        '[[tiers.ladder]]\nname = "a"\nthreshold = 5\n',
        "tiers.ladder[0].threshold",
        "expected 0 (the lowest tier admits everyone, so every member has a tier), found 5",
    ),
    (
        '[[tiers.ladder]]\nname = "a"\nthreshold = 0\nrequires_paid = true\n',
        "tiers.ladder[0].requires_paid",
        "expected false (the lowest tier admits everyone, so every member has a tier), found true",
    ),
    (
        LADDER_AB.replace('"b"', '"a"') + "threshold = 5\n",
        "tiers.ladder[1].name",
        'the name "a" is already used by tiers.ladder[0]',
    ),
    ("[tiers]\nladder = []\n", "tiers.ladder", "expected at least one tier, found an empty array"),
    (
        "[[tiers.ladder]]\nthreshold = 0\n",
        "tiers.ladder[0].name",
        "missing; expected a non-empty string",
    ),
    (
        LADDER_AB,
        "tiers.ladder[1].threshold",
        "missing; expected a whole number >= 0",
    ),
    # rules and campaigns
    (
        "[[rules]]\ngroups = []\n",
        "rules[0].type",
        'missing; expected the rule type (a lowercase name of letters, digits, ".", "_" or "-" '
        "starting with a letter)",
    ),
    (
        "[[campaigns]]\ntype = 3\n",
        "campaigns[0].type",
        'expected the campaign type (a lowercase name of letters, digits, ".", "_" or "-" '
        "starting with a letter), found 3",
    ),
    (
        GROUP + '[[rules]]\ntype = "links"\ngroups = ["mian"]\n',
        "rules[0].groups[0]",
        'unknown group "mian"; did you mean "main"?',
    ),
    (
        '[[rules]]\ntype = "links"\ngroups = ["main"]\n',
        "rules[0].groups[0]",
        'unknown group "main"; no [[groups]] are configured',
    ),
    (
        '[[rules]]\ntype = "links"\ngroups = "main"\n',
        "rules[0].groups",
        'expected an array of group keys, found "main"',
    ),
    # a campaign's settings naming groups: the message names the campaign
    (
        GROUP + '[[campaigns]]\ntype = "checkin"\ngroups = ["mian"]\n',
        "campaigns[0].groups[0]",
        'unknown group "mian" in campaign "checkin" (type checkin); did you mean "main"?',
    ),
    (
        GROUP + '[[campaigns]]\ntype = "welcome"\n[[campaigns]]\ntype = "giveaway"\n'
        'name = "spring"\ngroup = "side"\n',
        "campaigns[1].group",
        'unknown group "side" in campaign "spring" (type giveaway); the groups are "main"',
    ),
    (
        GROUP + '[[campaigns]]\ntype = "red_packet"\nschedule_group = "mains"\n',
        "campaigns[0].schedule_group",
        'unknown group "mains" in campaign "red_packet" (type red_packet); did you mean "main"?',
    ),
    (
        '[[campaigns]]\ntype = "training_camp"\nname = "camp"\noperator_group = "ops"\n',
        "campaigns[0].operator_group",
        'unknown group "ops" in campaign "camp" (type training_camp); no [[groups]] are configured',
    ),
    (
        GROUP + '[[campaigns]]\ntype = "x.report"\nreport_groups = ["main", "side"]\n',
        "campaigns[0].report_groups[1]",
        'unknown group "side" in campaign "x.report" (type x.report); the groups are "main"',
    ),
    # platforms
    ('[platforms]\ntelegram = "x"\n', "platforms.telegram", 'expected a table, found "x"'),
    (
        '[platforms."Tele Gram"]\n',
        'platforms."Tele Gram"',
        'expected a platform name (a lowercase name of letters, digits, ".", "_" or "-" '
        'starting with a letter), found "Tele Gram"',
    ),
    (
        '[platforms.telegram]\napi_base = "api.telegram.org"\n',
        "platforms.telegram.api_base",
        'expected an http:// or https:// URL such as "https://api.telegram.org", '
        'found "api.telegram.org"',
    ),
    (
        "[points]\nreaction_received = 1000000000001\n",
        "points.reaction_received",
        "expected a whole number from 0 to 1000000000000, found 1000000000001",
    ),
    # the store
    (
        "[community]\nstore = 'community.db'\n",
        "community.store",
        'expected a store URL such as "sqlite:///community.db", "postgresql://host/db" or '
        '"memory://", found "community.db"',
    ),
    (
        "[community]\nstore = 'mysql://bob:s3cret@db/community'\n",
        "community.store",
        'expected a store URL such as "sqlite:///community.db", "postgresql://host/db" or '
        '"memory://", found "mysql://bob:***@db/community"',
    ),
    (
        "[community]\nstore = 'sqlite://community.db'\n",
        "community.store",
        'expected a SQLite URL with three slashes, such as "sqlite:///community.db", '
        'found "sqlite://community.db"',
    ),
    # the community
    (
        "[community]\ntimezone = 'Mars/Olympus_Mons'\n",
        "community.timezone",
        'expected an IANA time zone name such as "Asia/Shanghai" or "UTC", '
        'found "Mars/Olympus_Mons"',
    ),
    (
        "[community]\ntimezone = '../../etc/passwd'\n",
        "community.timezone",
        'expected an IANA time zone name such as "Asia/Shanghai" or "UTC", '
        'found "../../etc/passwd"',
    ),
    ("[community]\nnmae = 'x'\n", "community.nmae", 'unknown key; did you mean "name"?'),
    ("[community]\nname = '  '\n", "community.name", 'expected a non-empty string, found "  "'),
]


@pytest.mark.parametrize(("extra", "key", "detail"), BAD, ids=[key for _, key, _ in BAD])
def test_bad_input_names_the_key_and_what_was_expected(extra: str, key: str, detail: str) -> None:
    if extra.startswith("[community]"):
        text = (
            extra if "name =" in extra else extra.replace("[community]", '[community]\nname = "x"')
        )
    else:
        text = minimal(extra)
    err = error_of(text)
    assert isinstance(err, CommunityKitError)
    assert err.path == "community.toml"
    assert err.key == key
    assert err.detail == detail
    assert str(err) == f"community.toml: {key}: {detail}"
    assert "\n" not in str(err)


def test_wrong_type_error_has_expected_and_found() -> None:
    err = error_of(minimal(LADDER_AB + 'threshold = "ten"\n'))
    assert err.expected == "a whole number >= 0"
    assert err.found == '"ten"'
    assert err.line is None


def test_unknown_key_error_lists_the_keys() -> None:
    err = error_of(minimal("[points]\nmesage = 2\n"))
    assert err.found == '"mesage"'
    assert err.expected is not None
    assert err.expected.startswith("one of message, ")


def test_missing_community_table() -> None:
    err = error_of("[points]\nmessage = 1\n")
    assert (
        str(err) == 'community.toml: community: missing; add a [community] table with name = "..."'
    )
    assert err.key == "community"


def test_missing_community_name() -> None:
    err = error_of("[community]\npurpose = 'x'\n")
    assert str(err) == "community.toml: community.name: missing; expected a non-empty string"
    assert (err.expected, err.found) == ("a non-empty string", "nothing")


def test_toml_syntax_error_shows_line_and_column() -> None:
    err = error_of('[community]\nname = "x"\nstore = memory://\n', {})
    assert str(err) == "community.toml: TOML syntax error: Invalid value (at line 3, column 9)"
    assert (err.key, err.line) == (None, 3)


def test_toml_duplicate_key_is_a_syntax_error() -> None:
    err = error_of('[community]\nname = "x"\nname = "y"\n')
    assert str(err).startswith("community.toml: TOML syntax error: Cannot overwrite a value")


def test_errors_show_the_path_as_given() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("[points]\n", path="conf/pybj.toml")
    assert str(info.value).startswith("conf/pybj.toml: community: missing")


def test_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config("conf/community.toml")
    assert str(info.value) == "conf/community.toml: file not found"
    assert (info.value.path, info.value.key) == ("conf/community.toml", None)
    assert info.value.__suppress_context__


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file: it is a directory"):
        load_config(tmp_path)


def test_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    file = tmp_path / "community.toml"
    file.write_bytes(b'[community]\nname = "\xff"\n')
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert str(info.value) == f"{file}: the file is not UTF-8 text (byte 0xff at offset 20)"


def test_deep_nesting_is_a_config_error() -> None:
    err = error_of(minimal("x = " + "[" * 5000 + "]" * 5000 + "\n"))
    assert "nests arrays or tables too deeply" in str(err)


def test_a_huge_integer_is_a_config_error() -> None:
    err = error_of(minimal("[points]\nmessage = " + "9" * 5000 + "\n"))
    assert str(err) == "community.toml: cannot read the TOML: a whole number has too many digits"


def test_long_values_are_shortened_in_messages() -> None:
    err = error_of(minimal("[points]\nmessage = '" + "x" * 500 + "'\n"))
    assert len(str(err)) < 200
    assert err.found is not None
    assert err.found.endswith('..." (500 characters)')


def test_control_characters_are_escaped_in_messages() -> None:
    err = error_of(minimal('[points]\nmessage = "a\\nb\\u0007"\n'))
    assert err.found == '"a\\nb\\u0007"'


def test_config_error_pickles() -> None:
    err = error_of(minimal("[points]\nmesage = 2\n"))
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.path, copy.key, copy.expected, copy.found, str(copy)) == (
        err.path,
        err.key,
        err.expected,
        err.found,
        str(err),
    )


# --------------------------------------------------------------------------- secrets


def test_no_token_in_repr_or_str() -> None:
    config = parse_config(FULL, environ=ENV)
    for shown in (repr(config), str(config), repr(config.platforms), f"{config}"):
        assert TOKEN not in shown
        assert "hook-secret-value" not in shown
    assert "Secret('***')" in repr(config)


@pytest.mark.parametrize(
    "name",
    [
        "webhook_secret",
        "bot_token",
        "admin_password",
        "api_key",
        "encodingAESKey",
        "apikey",
        "secret_path",
        "client-secret",
        "ACCESS_TOKENS",
    ],
)
def test_secret_named_options_are_secrets(name: str) -> None:
    config = parse_config(minimal(f'[platforms.wecom]\n"{name}" = "s3cr3t"\n'))
    value = config.platforms["wecom"].options[name]
    assert value == Secret("s3cr3t")
    assert "s3cr3t" not in repr(config)


@pytest.mark.parametrize(
    "name", ["key", "keywords", "token_url", "tokenizer", "monitor", "max_tokens_per_day"]
)
def test_other_options_are_plain(name: str) -> None:
    config = parse_config(minimal(f'[platforms.wecom]\n"{name}" = "plain"\n'))
    assert config.platforms["wecom"].options[name] == "plain"


def test_secrets_inside_tables_arrays_and_rules() -> None:
    text = minimal(
        '[platforms.wecom]\ncallback = { aes_key = "k1", url = "https://x" }\n'
        'tokens = ["t1", "t2"]\n'
        '[[rules]]\ntype = "ai-moderation"\napi_key = "k2"\nkeywords = ["spam"]\n'
    )
    config = parse_config(text)
    options = config.platforms["wecom"].options
    assert options["callback"]["aes_key"] == Secret("k1")
    assert options["callback"]["url"] == "https://x"
    assert options["tokens"] == (Secret("t1"), Secret("t2"))
    rule = config.rules[0]
    assert rule.settings["api_key"] == Secret("k2")
    assert rule.settings["keywords"] == ("spam",)
    for value in ("k1", "t1", "t2", "k2"):
        assert f"'{value}'" not in repr(config)


BAD_TOKEN = "123456:AAE secret"  # a space: not a valid token


def bad_token_error() -> ConfigError:
    text = minimal('[platforms.telegram]\ntoken = "${TELEGRAM_TOKEN}"\n')
    return error_of(text, {"TELEGRAM_TOKEN": BAD_TOKEN})


def test_a_bad_token_is_described_not_shown() -> None:
    err = bad_token_error()
    assert str(err) == (
        "community.toml: platforms.telegram.token: expected a token: a non-empty string "
        "without spaces or line breaks, found a string of 17 characters"
    )
    assert err.found == "a string of 17 characters"


def test_a_bad_token_never_reaches_a_traceback_or_a_log(caplog: pytest.LogCaptureFixture) -> None:
    err = bad_token_error()
    rendered = "".join(traceback.format_exception(err))
    assert BAD_TOKEN not in rendered
    assert "AAE" not in rendered

    with caplog.at_level(logging.DEBUG):
        logging.getLogger("communitykit.test").exception("config failed", exc_info=err)
    assert "config failed" in caplog.text
    assert "AAE" not in caplog.text

    out = io.StringIO()
    log = structlog.wrap_logger(
        structlog.PrintLogger(out),
        processors=[structlog.processors.format_exc_info, structlog.processors.KeyValueRenderer()],
    )
    log.error("config failed", error=str(err), exc_info=err)
    assert "platforms.telegram.token" in out.getvalue()
    assert "AAE" not in out.getvalue()


def test_a_token_of_the_wrong_type_is_not_shown() -> None:
    err = error_of(minimal("[platforms.telegram]\ntoken = 123456789\n"))
    assert err.found == "a number"
    assert "123456789" not in str(err)


def test_a_bad_placeholder_in_a_secret_is_not_shown() -> None:
    err = error_of(minimal('[platforms.telegram]\ntoken = "abc${!x}"\n'))
    assert err.found == "an invalid placeholder"
    assert "abc" not in str(err)


# --------------------------------------------------------------------------- any input

KEYS = [
    "community", "groups", "platforms", "points", "tiers", "rules", "campaigns", "name",
    "purpose", "timezone", "store", "key", "platform", "id", "title", "size_cap",
    "overflow_order", "telegram", "console", "token", "api_base", "message",
    "message_daily_cap", "reaction_received", "reaction_daily_cap", "expire_after_days",
    "window_days", "grace_days", "ladder", "threshold", "multiplier", "min_tenure_days",
    "min_checkins", "requires_paid", "titles", "type", "enabled", "webhook_secret", "api_key",
]  # fmt: skip
SAMPLE_STRINGS = [
    "", "main", "links", "UTC", "Asia/Shanghai", "Mars/Base", "memory://", "memory://x",
    "sqlite:///c.db", "sqlite://c.db", "sqlite:///:memory:", "postgresql://u:p@h/db", "1.2",
    "-1", "nan", "1e999999", "${SET}", "${UNSET}", "${UNSET:-d}", "$${", "${", "${}",
    "https://api.example", "a b",
]  # fmt: skip

text_chars = st.characters(exclude_categories=["Cs"])
keys = st.sampled_from(KEYS) | st.text(text_chars, max_size=8)
strings = st.sampled_from(SAMPLE_STRINGS) | st.text(text_chars, max_size=20)
leaves = (
    st.booleans()
    | st.integers(-3, 300)
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | strings
    | st.datetimes(timezones=st.none() | st.just(UTC))
    | st.dates()
    | st.times()
)
values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=20,
)
tables = st.dictionaries(keys, values, max_size=6)


def table_of(required: dict[str, Any], optional: dict[str, Any]) -> Any:
    """Tables that mostly look right (known keys, plausible values) and sometimes do not."""
    plausible = st.fixed_dictionaries(
        {k: st.one_of(v, v, v, values) for k, v in required.items()},
        optional={k: st.one_of(v, v, v, values) for k, v in optional.items()},
    )
    with_extra = st.builds(lambda table, extra: {**extra, **table}, plausible, tables)
    return st.one_of(plausible, plausible, plausible, with_extra, values)


def arrays_of(table: Any) -> Any:
    return st.lists(table, max_size=3) | values


small = st.integers(-1, 400)
group_keys = st.sampled_from(["main", "g2", "Main"])
group_tables = table_of(
    {
        "key": group_keys,
        "platform": st.sampled_from(["telegram", "console", "Bad Name"]),
        "id": st.sampled_from(["1", "2", ""]),
    },
    {"title": strings, "size_cap": small, "overflow_order": small},
)
tier_tables = table_of(
    {"name": st.sampled_from(["newcomer", "regular", "core"]), "threshold": small},
    {
        "multiplier": st.sampled_from(["1.2", "x", "-1", "1e9"]) | st.floats(-1, 2000),
        "min_tenure_days": small,
        "min_checkins": small,
        "requires_paid": st.booleans(),
        "titles": st.dictionaries(keys, strings, max_size=2),
    },
)
plugin_tables = table_of(
    {"type": st.sampled_from(["links", "flood", "Bad Type"])},
    {
        "enabled": st.booleans(),
        "groups": st.lists(group_keys, max_size=3),
        "api_key": strings,
        "keywords": st.lists(strings, max_size=3),
    },
)
platform_tables = table_of(
    {},
    {
        "token": st.sampled_from(["123:abc", "", "a b", "${SET}", "${UNSET}"]),
        "api_base": st.sampled_from(["https://api.example", "ftp://x", "x"]),
        "webhook_secret": strings,
        "poll_timeout": small,
    },
)
community_tables = table_of(
    {"name": st.sampled_from(["Python Beijing", "", "${SET}"])},
    {
        "timezone": st.sampled_from(["UTC", "Asia/Shanghai", "Mars/Base", ""]),
        "store": st.sampled_from(SAMPLE_STRINGS),
        "purpose": strings,
    },
)
sections = st.fixed_dictionaries(
    {"community": community_tables},
    optional={
        "groups": arrays_of(group_tables),
        "platforms": st.dictionaries(
            st.sampled_from(["telegram", "console", "Bad Name"]) | keys, platform_tables, max_size=3
        )
        | values,
        "points": table_of({}, dict.fromkeys(PointsConfig.__annotations__, small)),
        "tiers": table_of(
            {},
            {"ladder": arrays_of(tier_tables), "window_days": small, "grace_days": small},
        ),
        "rules": arrays_of(plugin_tables),
        "campaigns": arrays_of(plugin_tables),
    },
)


def combine(known: dict[str, Any], other: dict[str, Any], valid_community: bool) -> dict[str, Any]:
    document = {**other, **known}
    if valid_community:
        document["community"] = {"name": "Python Beijing", "store": "memory://"}
    return document


no_extra: Any = st.just({})
documents = st.builds(combine, sections, no_extra | no_extra | no_extra | tables, st.booleans())


def toml_value(value: Any) -> str:
    """A tiny TOML writer: every value inline, every key quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_value(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return str(value.isoformat())  # date, time, datetime


def toml_document(document: dict[str, Any]) -> str:
    return "".join(f"{toml_value(key)} = {toml_value(value)}\n" for key, value in document.items())


def check_outcome(text: str) -> None:
    try:
        config = parse_config(text, environ={"SET": "value"}, base_dir=Path("/srv/community"))
    except ConfigError as err:
        message = str(err)
        assert message.startswith("community.toml: ")
        assert "\n" not in message
        message.encode("utf-8")  # printable as it is
    else:
        assert isinstance(config, CommunityConfig)


@given(documents)
def test_any_toml_document_gives_config_or_config_error(document: dict[str, Any]) -> None:
    check_outcome(toml_document(document))


@given(st.text(text_chars, max_size=200))
def test_any_text_gives_config_or_config_error(text: str) -> None:
    check_outcome(text)


def test_the_toml_writer_round_trips() -> None:
    import tomllib

    document = {"community": {"name": 'a "b"\n\x7f', "x": [1, 2.5, True, {"k": "v"}]}}
    assert tomllib.loads(toml_document(document)) == document


def test_parse_config_takes_its_folder_as_text_or_path(tmp_path: Path) -> None:
    text = '[community]\nname = "x"\nstore = "sqlite:///data/c.db"\n'
    as_text = parse_config(text, base_dir=str(tmp_path))
    as_path = parse_config(text, base_dir=tmp_path)
    assert (
        as_text.store_url == as_path.store_url == f"sqlite:///{(tmp_path / 'data/c.db').as_posix()}"
    )
