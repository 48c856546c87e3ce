"""The plugin manager: finds plugins, validates them, and calls their hooks.

:func:`make_plugin_manager` builds a fresh :class:`Plugins` (there is no global
one, and nothing happens at import time). It loads every plugin of the
``communitykit`` entry-point group — the built-in rules, campaigns and adapters
come the same way as third-party ones — except those named in the environment
variable ``COMMUNITYKIT_DISABLE_PLUGINS`` (comma-separated plugin or
distribution names).

A plugin that fails to load, implements a hook that does not exist (a
misspelling), or implements one with the wrong arguments is logged
(``plugin.load_failed``), listed in :attr:`Plugins.failures` with its
distribution named, and skipped: the others still load. Registering a broken
plugin at run time with :meth:`Plugins.register` raises :class:`PluginError`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, TypeVar

import attrs
import pluggy
import structlog

from communitykit import hookspecs
from communitykit._errors import CommunityKitError
from communitykit._plugin_types import (
    AdapterType,
    CampaignType,
    MetricType,
    RuleType,
    SegmentType,
)

__all__ = [
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "PluginConflict",
    "PluginError",
    "PluginFailure",
    "PluginInfo",
    "Plugins",
    "make_plugin_manager",
]

ENTRY_POINT_GROUP = "communitykit"
DISABLE_ENV = "COMMUNITYKIT_DISABLE_PLUGINS"

log = structlog.get_logger("communitykit.plugins")

T = TypeVar("T", AdapterType, RuleType, CampaignType, MetricType, SegmentType)


class PluginError(CommunityKitError):
    """A plugin is broken: it does not load, or its hooks are wrong."""


class PluginConflict(PluginError):
    """Two plugins offer the same name for an adapter, rule, campaign or metric type."""


@attrs.frozen
class PluginInfo:
    """One registered plugin, as ``communitykit plugins list`` shows it."""

    name: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]


@attrs.frozen
class PluginFailure:
    """A plugin that was skipped, and why."""

    name: str
    distribution: str | None
    version: str | None
    error: str


def _dist_of(ep: EntryPoint) -> tuple[str | None, str | None]:
    dist = ep.dist
    if dist is None:
        return None, None
    return dist.metadata["Name"] or dist.name, dist.version


def _describe(name: str, dist: str | None, version: str | None) -> str:
    if dist is None:
        return f"plugin {name!r}"
    return f"plugin {name!r} from {dist} {version}"


class Plugins:
    """A typed facade over a pluggy manager holding communitykit's hooks."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.manager = manager
        self.failures: list[PluginFailure] = []
        self._dists: dict[str, tuple[str | None, str | None]] = {}

    # ------------------------------------------------------------ registration

    def register(
        self,
        plugin: object,
        name: str | None = None,
        *,
        distribution: str | None = None,
        version: str | None = None,
    ) -> str:
        """Register ``plugin`` (a module or an object with hook functions).

        Raises :class:`PluginError` naming the plugin and the hook when a hook is
        unknown or has arguments its specification does not offer.
        """
        label = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        try:
            registered = self.manager.register(plugin, name=name)
        except ValueError as exc:  # pluggy: already registered / name taken / blocked
            raise PluginError(f"cannot register plugin {label!r}: {exc}") from None
        except pluggy.PluginValidationError as exc:
            raise PluginError(
                f"{_describe(label, distribution, version)} is invalid: {exc}"
            ) from None
        if registered is None:  # blocked
            raise PluginError(f"plugin {label!r} is blocked")
        self._dists[registered] = (distribution, version)
        unknown = self._unknown_hooks(plugin)
        if unknown:
            self.manager.unregister(plugin)
            self._dists.pop(registered, None)
            known = ", ".join(
                sorted(n for n in dir(self.manager.hook) if n.startswith("communitykit_"))
            )
            raise PluginError(
                f"{_describe(registered, distribution, version)} implements "
                f"{', '.join(unknown)}, which is not a communitykit hook (a misspelling?). "
                f"The hooks are: {known}"
            )
        return registered

    def unregister(self, name: str) -> None:
        plugin = self.manager.get_plugin(name)
        if plugin is not None:
            self.manager.unregister(plugin)
        self._dists.pop(name, None)

    def _unknown_hooks(self, plugin: object) -> list[str]:
        callers = self.manager.get_hookcallers(plugin) or []
        return sorted(
            caller.name
            for caller in callers
            if not caller.has_spec()
            and any(
                not impl.optionalhook for impl in caller.get_hookimpls() if impl.plugin is plugin
            )
        )

    def load_entry_points(self, blocked: Iterable[str] = ()) -> None:
        """Load every plugin of the entry-point group, skipping blocked and broken ones."""
        blocked_names = {b.strip() for b in blocked if b.strip()}
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist, version = _dist_of(ep)
            if ep.name in blocked_names or (dist is not None and dist in blocked_names):
                self.manager.set_blocked(ep.name)
                log.info("plugin.blocked", plugin=ep.name, distribution=dist)
                continue
            if self.manager.has_plugin(ep.name) or self.manager.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
                self.register(plugin, name=ep.name, distribution=dist, version=version)
            except Exception as exc:  # a broken plugin must not stop the others
                error = f"{type(exc).__name__}: {exc}"
                self.failures.append(PluginFailure(ep.name, dist, version, error))
                log.warning("plugin.load_failed", plugin=ep.name, distribution=dist, error=error)

    # ------------------------------------------------------------------ listing

    def info(self) -> list[PluginInfo]:
        """Every registered plugin with its distribution, version and hooks."""
        found = []
        for name, plugin in sorted(self.manager.list_name_plugin(), key=lambda p: p[0]):
            if plugin is None:
                continue
            dist, version = self._dists.get(name, (None, None))
            hooks = tuple(sorted(c.name for c in self.manager.get_hookcallers(plugin) or []))
            found.append(PluginInfo(name, dist, version, hooks))
        return found

    # ------------------------------------------------------------- plugin types

    def adapter_types(self) -> dict[str, AdapterType]:
        return self._collect("communitykit_adapter_types", AdapterType, "adapter")

    def rule_types(self) -> dict[str, RuleType]:
        return self._collect("communitykit_rule_types", RuleType, "rule")

    def campaign_types(self) -> dict[str, CampaignType]:
        return self._collect("communitykit_campaign_types", CampaignType, "campaign")

    def metric_types(self) -> dict[str, MetricType]:
        return self._collect("communitykit_metric_types", MetricType, "metric")

    def segment_types(self) -> dict[str, SegmentType]:
        return self._collect("communitykit_segment_types", SegmentType, "segment")

    def _collect(self, hook_name: str, kind: type[T], label: str) -> dict[str, T]:
        caller = getattr(self.manager.hook, hook_name)
        found: dict[str, T] = {}
        owners: dict[str, str] = {}
        for impl in reversed(caller.get_hookimpls()):
            try:
                answer = impl.function()
            except Exception as exc:
                self._hook_failed(impl.plugin_name, hook_name, exc)
                continue
            for item in answer or ():
                if not isinstance(item, kind):
                    raise PluginError(
                        f"{self._who(impl.plugin_name)} returned {item!r} from {hook_name}; "
                        f"expected {kind.__name__} values"
                    )
                if item.name in found:
                    raise PluginConflict(
                        f"Conflicting plugins found for {label} type {item.name!r}, "
                        f"provided by: {self._who(owners[item.name])} and "
                        f"{self._who(impl.plugin_name)}. Uninstall one, or block it with "
                        f"{DISABLE_ENV}."
                    )
                found[item.name] = item
                owners[item.name] = impl.plugin_name
        return found

    def provider_of(self, hook_name: str, type_name: str) -> str | None:
        """Which plugin offers ``type_name`` through registration hook ``hook_name``."""
        caller = getattr(self.manager.hook, hook_name)
        for impl in caller.get_hookimpls():
            try:
                answer = impl.function()
            except Exception:
                continue
            if any(getattr(item, "name", None) == type_name for item in answer or ()):
                return self._who(impl.plugin_name)
        return None

    def _who(self, plugin_name: str) -> str:
        dist, version = self._dists.get(plugin_name, (None, None))
        return _describe(plugin_name, dist, version)

    # ------------------------------------------------------------ notifications

    async def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call a notification hook on every plugin, awaiting async ones in order.

        A plugin that raises is logged and skipped; the others still run.
        """
        caller = getattr(self.manager.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                continue
            try:
                result = impl.function(*[kwargs[arg] for arg in impl.argnames])
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                self._hook_failed(impl.plugin_name, hook_name, exc)

    def has_listeners(self, hook_name: str) -> bool:
        return bool(getattr(self.manager.hook, hook_name).get_hookimpls())

    def _hook_failed(self, plugin_name: str, hook_name: str, exc: BaseException) -> None:
        dist, _ = self._dists.get(plugin_name, (None, None))
        log.warning(
            "plugin.hook_failed",
            plugin=plugin_name,
            distribution=dist,
            hook=hook_name,
            error=f"{type(exc).__name__}: {exc}",
        )


def _blocked_from_env(environ: Mapping[str, str]) -> list[str]:
    return [name.strip() for name in environ.get(DISABLE_ENV, "").split(",") if name.strip()]


def make_plugin_manager(
    *,
    load_entry_points: bool = True,
    blocked: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Plugins:
    """Build a fresh plugin manager with communitykit's hooks.

    ``load_entry_points=False`` gives an empty manager (tests register what they
    need). ``blocked`` adds to the names in ``COMMUNITYKIT_DISABLE_PLUGINS``.
    """
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    plugins = Plugins(manager)
    names = [*_blocked_from_env(os.environ if environ is None else environ), *blocked]
    for name in names:
        manager.set_blocked(name)
    if load_entry_points:
        plugins.load_entry_points(names)
    manager.check_pending()
    return plugins
