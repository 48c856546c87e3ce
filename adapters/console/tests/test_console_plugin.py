"""The console platform is a plugin: found through its entry point, built from settings."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import communitykit_console
import pytest
from communitykit_console import ConsoleAdapter

from communitykit import AdapterType, CommunityKitError, PlatformSettings, make_plugin_manager


def test_the_entry_point_resolves_and_offers_the_console_adapter() -> None:
    found = [ep for ep in entry_points(group="communitykit") if ep.name == "console"]
    assert len(found) == 1
    assert found[0].dist is not None
    assert found[0].dist.name == "communitykit-console"
    plugin = found[0].load()
    assert plugin is communitykit_console
    [adapter_type] = plugin.communitykit_adapter_types()
    assert isinstance(adapter_type, AdapterType)
    assert adapter_type.name == "console"
    assert adapter_type.description
    adapter = adapter_type.factory(PlatformSettings(name="console"))
    assert isinstance(adapter, ConsoleAdapter)


def test_the_plugin_manager_finds_the_console_adapter() -> None:
    plugins = make_plugin_manager(environ={})
    assert "console" in plugins.adapter_types()
    assert not [f for f in plugins.failures if f.name == "console"]
    assert plugins.adapter_types()["console"].factory == ConsoleAdapter.from_settings


def test_from_settings_reads_the_options() -> None:
    adapter = ConsoleAdapter.from_settings(
        PlatformSettings(name="console", options={"groups": ["main", "side"], "quiet": False})
    )
    state = adapter.platform_state
    assert sorted(state.groups) == ["main", "side"]
    assert state.quiet is False
    assert adapter.journal is None
    titled = ConsoleAdapter.from_settings(
        PlatformSettings(name="console", options={"groups": {"main": "Main group"}})
    )
    assert titled.platform_state.groups["main"].title == "Main group"
    assert ConsoleAdapter.from_settings(PlatformSettings(name="console")).platform_state.quiet


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"jornal": "x.jsonl"}, "unknown option.*'jornal'"),
        ({"quiet": "yes"}, "'quiet' must be true or false"),
        ({"groups": "main"}, "'groups' must be a list"),
        ({"groups": ["main", "main"]}, "names a group twice"),
        ({"groups": [""]}, "'groups' must be a list"),
        ({"journal": 3}, "'journal' must be a file path"),
    ],
)
def test_bad_options_are_clear_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(CommunityKitError, match=message):
        ConsoleAdapter.from_settings(PlatformSettings(name="console", options=options))


def test_an_existing_platform_can_be_given() -> None:
    platform = communitykit_console.ConsolePlatform(groups=["main"])
    assert ConsoleAdapter(platform=platform).platform_state is platform


def test_the_readme_example_runs() -> None:
    readme = Path(__file__).resolve().parents[1] / "README.md"
    text = readme.read_text(encoding="utf-8")
    examples = re.findall(r"```python\n(.*?)```", text, re.S)
    assert examples
    for code in examples:
        exec(compile(code, str(readme), "exec"), {"__name__": "readme_example"})
