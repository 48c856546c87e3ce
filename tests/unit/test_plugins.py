from __future__ import annotations

import inspect
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from communitykit import (
    AdapterType,
    CommunityKitError,
    PluginConflict,
    PluginError,
    RuleType,
    hookimpl,
    hookspecs,
    make_plugin_manager,
)
from communitykit import plugins as plugins_module
from communitykit.testing import HookRecorder, fresh_plugin_manager, registered

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(
    name
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("communitykit_")
)
NOTIFICATION_HOOKS = [h for h in HOOKS if not h.endswith("_types")]


def test_every_hook_has_a_section_in_the_hook_reference() -> None:
    text = (ROOT / "docs" / "hooks.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^### `(communitykit_\w+)`", text, re.M))
    assert len(HOOKS) >= 11
    missing = [h for h in HOOKS if h not in documented]
    assert not missing, f"hooks without a section in docs/hooks.md: {missing}"
    assert not documented - set(HOOKS), "docs/hooks.md documents hooks that do not exist"


def test_every_hook_is_prefixed_typed_and_documented() -> None:
    for name in HOOKS:
        fn = getattr(hookspecs, name)
        assert fn.__doc__ and len(fn.__doc__.split()) > 8, name
        assert "return" in inspect.signature(fn).__str__() or fn.__annotations__.get("return")


def test_hook_recorder_records_every_notification_hook() -> None:
    recorder_hooks = {n for n in dir(HookRecorder) if n.startswith("communitykit_")}
    assert recorder_hooks == set(NOTIFICATION_HOOKS)


def test_builtin_rules_come_through_the_entry_point_group() -> None:
    plugins = make_plugin_manager(environ={})
    info = {p.name: p for p in plugins.info()}
    assert info["builtin_points"].distribution == "communitykit"
    assert {"points.message", "points.reaction"} <= set(plugins.rule_types())


def test_environment_variable_blocks_named_plugins() -> None:
    plugins = make_plugin_manager(environ={"COMMUNITYKIT_DISABLE_PLUGINS": "builtin_points, x"})
    assert "builtin_points" not in {p.name for p in plugins.info()}
    assert "points.message" not in plugins.rule_types()


def test_misspelled_hook_is_refused_with_plugin_and_hook_named() -> None:
    class Typo:
        @hookimpl
        def communitykit_points_awardd(self, member_id: str) -> None: ...

    plugins = fresh_plugin_manager()
    with pytest.raises(PluginError, match=r"'typo'.*communitykit_points_awardd.*misspelling"):
        plugins.register(Typo(), name="typo")
    assert plugins.info() == []


def test_hook_with_unknown_argument_is_refused() -> None:
    class Wrong:
        @hookimpl
        def communitykit_points_awarded(self, member_id: str, colour: str) -> None: ...

    with pytest.raises(PluginError, match=r"(?s)'wrong'.*colour.*can not be found in the hookspec"):
        fresh_plugin_manager().register(Wrong(), name="wrong")


def _rules(*names: str) -> object:
    class Provider:
        @hookimpl
        def communitykit_rule_types(self) -> list[RuleType]:
            return [RuleType(name=n, factory=lambda settings: None) for n in names]  # type: ignore[arg-type,return-value]

    return Provider()


def test_conflicting_plugins_are_reported_with_both_named() -> None:
    plugins = fresh_plugin_manager()
    plugins.register(_rules("links"), name="first", distribution="ck-first", version="1.0")
    plugins.register(
        _rules("links", "flood"), name="second", distribution="ck-second", version="2.1"
    )
    with pytest.raises(PluginConflict) as error:
        plugins.rule_types()
    message = str(error.value)
    assert "Conflicting plugins found for rule type 'links'" in message
    assert "ck-first 1.0" in message and "ck-second 2.1" in message


def test_plugin_types_validate_their_fields() -> None:
    with pytest.raises(CommunityKitError, match="must be lowercase"):
        AdapterType(name="Telegram!", factory=lambda s: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(CommunityKitError, match="callable"):
        RuleType(name="links", factory="not a function")  # type: ignore[arg-type]


def test_registration_hook_returning_the_wrong_type_is_a_plugin_error() -> None:
    class Bad:
        @hookimpl
        def communitykit_adapter_types(self) -> list[str]:
            return ["telegram"]

    plugins = fresh_plugin_manager()
    plugins.register(Bad(), name="bad")
    with pytest.raises(PluginError, match=r"'bad' returned 'telegram'.*expected AdapterType"):
        plugins.adapter_types()


def test_registered_lasts_for_the_block() -> None:
    plugins = fresh_plugin_manager()
    with registered(plugins, _rules("x"), name="temp"):
        assert "x" in plugins.rule_types()
    assert "x" not in plugins.rule_types()


def test_broken_entry_point_is_skipped_with_its_distribution_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dist = SimpleNamespace(name="ck-broken", version="0.3", metadata={"Name": "ck-broken"})

    class FakeEntryPoint:
        def __init__(self, name: str, load: Any) -> None:
            self.name = name
            self.dist = dist
            self._load = load

        def load(self) -> Any:
            return self._load()

    def boom() -> Any:
        raise ImportError("No module named 'ck_broken'")

    def no_rules() -> list[RuleType]:
        return []

    good = SimpleNamespace(communitykit_rule_types=hookimpl(no_rules))
    eps = [FakeEntryPoint("broken", boom), FakeEntryPoint("good", lambda: good)]
    monkeypatch.setattr(plugins_module, "entry_points", lambda group: eps)
    with capture_logs() as logs:
        plugins = make_plugin_manager(environ={})
    (failure,) = plugins.failures
    assert (failure.name, failure.distribution, failure.version) == ("broken", "ck-broken", "0.3")
    assert "No module named 'ck_broken'" in failure.error
    assert [p.name for p in plugins.info()] == ["good"]
    assert any(
        log["event"] == "plugin.load_failed" and log["distribution"] == "ck-broken" for log in logs
    )


def test_async_notification_hooks_are_awaited_in_order_and_failures_isolated() -> None:
    seen: list[str] = []

    class Slow:
        @hookimpl
        async def communitykit_member_left(self, member: object) -> None:
            await anyio.sleep(0.01)
            seen.append("slow")

    class Broken:
        @hookimpl
        def communitykit_member_left(self, member: object) -> None:
            raise RuntimeError("plugin bug")

    class Quick:
        @hookimpl
        def communitykit_member_left(self, member: object, event: object) -> None:
            seen.append(f"quick:{member}:{event}")

    plugins = fresh_plugin_manager()
    plugins.register(Quick(), name="quick")
    plugins.register(Broken(), name="broken")
    plugins.register(Slow(), name="slow")

    async def run() -> None:
        await plugins.notify("communitykit_member_left", member="m1", event="e1")

    with capture_logs() as logs:
        anyio.run(run)
    # last registered first; the async one finished before the next started
    assert seen == ["slow", "quick:m1:e1"]
    (failure,) = [log for log in logs if log["event"] == "plugin.hook_failed"]
    assert failure["plugin"] == "broken" and "plugin bug" in failure["error"]
