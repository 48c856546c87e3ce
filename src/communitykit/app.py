"""The Python API an application uses: one running community.

:class:`CommunityApp` wires a configuration, a store, the plugins, the adapters,
the engine and the dispatcher together::

    app = CommunityApp.from_file("community.toml")
    async with app:                 # opens the store, starts adapters and dispatcher
        await app.feed(events)      # or let the adapters deliver them
        print(app.balance("telegram:42"))

Everything the CLI does goes through this class.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from communitykit._broadcast import (
    BroadcastError,
    BroadcastPlan,
    BroadcastReport,
    broadcast_id_for,
    plan_broadcast,
    report_broadcast,
)
from communitykit._clock import Clock, SystemClock
from communitykit._errors import CommunityKitError, ModelError
from communitykit._plugin_types import Adapter, Campaign, PlatformSettings, Rule
from communitykit._segments import AutoTags, SegmentBook, UnknownSegment, export_csv
from communitykit.config import CommunityConfig, ConfigError, load_config
from communitykit.engine import Dispatcher, Engine, ProcessResult
from communitykit.model import (
    AuditRecord,
    Capabilities,
    Entry,
    Event,
    IdentityLink,
    Member,
    MemberState,
    PlatformIdentity,
    Role,
    RuleScope,
)
from communitykit.plugins import Plugins, make_plugin_manager
from communitykit.store import Batch, Store, open_store

if TYPE_CHECKING:
    from communitykit.analytics import Report

__all__ = ["CommunityApp"]

#: The store meta key of the running community's heartbeat, and how often it beats.
RUNNER_META = "runner"
HEARTBEAT_SECONDS = 5.0
#: the longest a running community goes without looking for due scheduled work
SCHEDULE_SECONDS = 60.0

log = structlog.get_logger("communitykit.app")


class CommunityApp:
    """One community, running. See the module documentation."""

    def __init__(
        self,
        config: CommunityConfig,
        *,
        plugins: Plugins | None = None,
        store: Store | None = None,
        clock: Clock | None = None,
        adapters: Mapping[str, Adapter] | None = None,
        rules: Sequence[Rule] = (),
        campaigns: Sequence[Campaign] = (),
    ) -> None:
        self.config = config
        self.plugins = plugins if plugins is not None else make_plugin_manager()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._store = store
        self._given_adapters = dict(adapters or {})
        self._extra_rules = list(rules)
        self._extra_campaigns = list(campaigns)
        self.adapters: dict[str, Adapter] = {}
        self._engine: Engine | None = None
        self._segments: SegmentBook | None = None
        self._dispatcher: Dispatcher | None = None
        self._stop = asyncio.Event()
        self._dispatch_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._schedule_task: asyncio.Task[None] | None = None
        self._running = False

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> CommunityApp:
        """Build the community a ``community.toml`` describes (raises ConfigError)."""
        return cls(load_config(path), **kwargs)

    def __repr__(self) -> str:
        state = "running" if self._running else ("open" if self._engine else "closed")
        return f"<CommunityApp {self.config.community.name!r} {state}>"

    # ----------------------------------------------------------------- plugins

    def register_plugin(self, plugin: object, name: str | None = None) -> str:
        """Register a plugin object at run time (before :meth:`open`)."""
        if self._engine is not None:
            raise CommunityKitError("register plugins before the community is opened")
        return self.plugins.register(plugin, name=name)

    # ---------------------------------------------------------------- lifecycle

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise CommunityKitError("the community is not open: call open() or use 'async with'")
        return self._engine

    @property
    def dispatcher(self) -> Dispatcher:
        if self._dispatcher is None:
            raise CommunityKitError("the community is not open: call open() or use 'async with'")
        return self._dispatcher

    @property
    def store(self) -> Store:
        return self.engine.store

    def open(self, *, with_adapters: bool = True) -> None:
        """Open the store, build adapters, rules and campaigns, and load the state.

        Adapters are built but not started (``start`` does that), so the engine
        knows what each platform can do and queues actions for later delivery.
        ``with_adapters=False`` is for offline work (listing members, awarding
        points by hand): a platform whose adapter is not installed is left out with
        a warning instead of being an error.
        """
        if self._engine is not None:
            return
        config = self.config
        adapters = self._build_adapters(strict=with_adapters)
        rules, scopes = self._build_rules()
        campaigns = self._build_campaigns()
        segments = SegmentBook(config, self.plugins.segment_types())
        auto_tags = None
        if config.auto_tags:
            auto_tags = AutoTags(segments, config.auto_tags, config.community.tz)
            campaigns.append(auto_tags)
        if self._store is not None:
            store = self._store
            store.open()  # idempotent; a store closed by close() opens again
        else:
            store = open_store(config.store_url)
        points = config.points
        capabilities: dict[str, Capabilities] = {
            name: adapter.capabilities for name, adapter in adapters.items()
        }
        engine = Engine(
            community=config.community,
            store=store,
            plugins=self.plugins,
            ladder=config.ladder,
            rules=rules,
            campaigns=campaigns,
            capabilities=capabilities,
            clock=self.clock,
            scopes=scopes,
            lifecycle=config.lifecycle,
            daily_caps={
                "message": points.message_daily_cap,
                "reaction_received": points.reaction_daily_cap,
            },
            expire_after=(
                None
                if points.expire_after_days is None
                else timedelta(days=points.expire_after_days)
            ),
        )
        engine.segment_members = lambda name, at: segments.members(engine, name, at)
        engine.load()
        if auto_tags is not None:
            auto_tags.engine = engine
        for adapter in adapters.values():
            adapter.host = self
        dispatcher = Dispatcher(
            store=store,
            adapters=adapters,
            plugins=self.plugins,
            clock=self.clock,
            fallback=engine.fall_back,
            delivered=engine.action_delivered,
        )
        engine.on_commit = dispatcher.wake
        self.adapters = adapters
        self._engine = engine
        self._segments = segments
        self._dispatcher = dispatcher

    async def start(self) -> None:
        """Open, start the dispatcher, then the adapters (events flow from here on)."""
        self.open()
        if self._running:
            return
        self._stop.clear()
        self._dispatch_task = asyncio.create_task(self.dispatcher.run(self._stop))
        started: list[Adapter] = []
        try:
            for adapter in self.adapters.values():
                await adapter.start(self.feed)
                started.append(adapter)
        except BaseException:
            for adapter in started:
                await adapter.stop()
            await self._stop_dispatcher()
            raise
        self._running = True
        self._heartbeat_task = asyncio.create_task(self._heartbeat())
        self._schedule_task = asyncio.create_task(self._schedule())
        log.info("community.started", community=self.config.community.name)

    async def stop(self, *, drain_timeout: float = 10.0) -> None:
        """Stop taking events, deliver what is due (up to ``drain_timeout`` s), close.

        Adapters stop receiving first, then the outbox drains through them, then
        they close.
        """
        if self._engine is None:
            return
        for adapter in self.adapters.values():
            try:
                await adapter.stop()
            except Exception as exc:  # stopping must go on
                log.warning("adapter.stop_failed", platform=adapter.platform, error=repr(exc))
        if self._running:
            try:
                await asyncio.wait_for(self.dispatcher.drain(), timeout=drain_timeout)
            except TimeoutError:
                log.warning("community.drain_timeout", seconds=drain_timeout)
        await self.dispatcher.aclose()  # what the drain did not finish stays in the outbox
        await self._stop_dispatcher()
        for adapter in self.adapters.values():
            try:
                await adapter.close()
            except Exception as exc:  # closing must go on
                log.warning("adapter.close_failed", platform=adapter.platform, error=repr(exc))
        self._running = False
        self.close()

    def close(self) -> None:
        """Close the store (the community can be opened again)."""
        if self._engine is not None:
            self._engine.store.close()
        self._engine = None
        self._dispatcher = None

    async def _heartbeat(self) -> None:
        """Tell other processes on the same store that this one delivers the outbox."""
        while not self._stop.is_set():
            beat = {"pid": os.getpid(), "host": socket.gethostname(), "at": time.time()}
            try:
                self.store.commit(Batch(meta={RUNNER_META: json.dumps(beat)}))
            except CommunityKitError as exc:  # the next beat tries again
                log.warning("community.heartbeat_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=HEARTBEAT_SECONDS)

    async def _schedule(self) -> None:
        """Run scheduled work (expiry, tier reviews, campaigns, scheduled rules) when
        it falls due, looking again at least every ``SCHEDULE_SECONDS``."""
        engine = self.engine
        while not self._stop.is_set():
            wait = SCHEDULE_SECONDS
            try:
                if await engine.run_due() == 0:
                    due = engine.next_due()
                    if due is not None:
                        ahead = (due - self.clock.now()).total_seconds()
                        wait = min(SCHEDULE_SECONDS, max(ahead, 0.05))
                else:
                    wait = 0.01  # more may be due already
            except CommunityKitError as exc:  # the store failed: try again later
                log.error("community.schedule_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=wait)

    def running_elsewhere(self) -> dict[str, Any] | None:
        """Another process running this community on the same store, if one is.

        A running community (``start``) writes a heartbeat to the store every
        few seconds; this returns its ``pid``, ``host`` and last beat when the
        beat is recent and is not this process's.
        """
        text = self.store.get_meta(RUNNER_META)
        if not text:
            return None
        beat: dict[str, Any] = json.loads(text)
        here = beat.get("host") == socket.gethostname()
        pid = beat.get("pid")
        if here and (pid == os.getpid() or not _alive(pid)):  # this process, or one gone
            return None
        fresh = time.time() - float(beat.get("at", 0)) < 3 * HEARTBEAT_SECONDS
        return beat if fresh else None

    async def _stop_dispatcher(self) -> None:
        self._stop.set()
        if self._schedule_task is not None:
            await self._schedule_task
            self._schedule_task = None
        if self._heartbeat_task is not None:
            await self._heartbeat_task
            self._heartbeat_task = None
            with contextlib.suppress(CommunityKitError):  # the beat stops with the process
                self.store.commit(Batch(meta={RUNNER_META: ""}))
        if self._dispatch_task is not None:
            await self._dispatch_task
            self._dispatch_task = None

    async def __aenter__(self) -> CommunityApp:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------- events

    async def feed(self, events: Sequence[Event]) -> ProcessResult:
        """Hand events to the engine; returns once they are recorded and applied."""
        self.open()
        return await self.engine.process(events)

    async def run_due(self) -> int:
        """Run scheduled work that is due now (expiry, tier reviews, campaigns)."""
        return await self.engine.run_due()

    async def deliver(self) -> int:
        """Deliver every outbox action due now; returns how many were attempted."""
        return await self.dispatcher.drain()

    async def broadcast(
        self,
        text: str,
        *,
        segment: str = "all",
        platform: str | None = None,
        broadcast_id: str | None = None,
    ) -> tuple[BroadcastPlan, int]:
        """Queue a direct message to every reachable member of ``segment``.

        Returns the plan and how many of its messages were newly queued: running
        the same broadcast again (same id; by default the id derives from the
        segment, platform and text) queues only what is missing, and never sends
        twice to one member. :meth:`deliver` (or a running community) sends them.
        """
        engine = self.engine
        broadcast_id = broadcast_id or broadcast_id_for(segment, text, platform)
        try:
            chosen = self.segment(segment)
        except UnknownSegment as exc:
            raise BroadcastError(str(exc)) from None
        members = [engine.graph.get(member_id) for member_id in sorted(chosen)]
        plan = plan_broadcast(
            broadcast_id=broadcast_id,
            text=text,
            members=members,
            capabilities=engine.capabilities,
            platform=platform,
        )
        queued = await engine.queue_actions(plan.actions)
        log.info(
            "broadcast.queued",
            broadcast_id=broadcast_id,
            segment=segment,
            members=plan.members,
            messages=len(plan.actions),
            queued=queued,
        )
        return plan, queued

    async def group_moved(self, platform: str, old_id: str, new_id: str) -> None:
        """A group got a new platform id: see :class:`~communitykit.AdapterHost`."""
        await self.engine.move_group(platform, old_id, new_id)

    def broadcast_report(self, broadcast_id: str) -> BroadcastReport:
        """Where broadcast ``broadcast_id`` stands: delivered, unreachable, failed, pending."""
        return report_broadcast(broadcast_id, self.store.outbox())

    # ------------------------------------------------------------------ segments

    @property
    def segment_book(self) -> SegmentBook:
        """Every segment the community knows: built-in and configured."""
        if self._segments is None:
            raise CommunityKitError("the community is not open: call open() or use 'async with'")
        return self._segments

    def segment(self, name: str, *, at: datetime | None = None) -> frozenset[str]:
        """The ids of the members in segment ``name`` at ``at`` (default: now).

        ``name`` is a segment name or an expression of names (``"active and
        tier:gold"``); raises :class:`UnknownSegment` for one that names none.
        """
        moment = at if at is not None else self.clock.now()
        return self.segment_book.members(self.engine, name, moment)

    def segments(self, *, at: datetime | None = None) -> dict[str, frozenset[str]]:
        """Every named segment's members at ``at`` (default: now)."""
        moment = at if at is not None else self.clock.now()
        return self.segment_book.all_members(self.engine, moment)

    def export_segment(self, name: str, *, at: datetime | None = None) -> str:
        """Segment ``name`` as CSV: member, display_name, platforms, tier, stage,
        balance, tags (cells that would start a spreadsheet formula get a ``'``)."""
        moment = at if at is not None else self.clock.now()
        chosen = self.segment(name, at=moment)
        return export_csv(self.engine, chosen, moment, self.config.lifecycle)

    # ------------------------------------------------------------------ queries

    def member(self, platform: str, user_id: str) -> Member | None:
        """The member a platform user is, if known."""
        return self.engine.member(PlatformIdentity(platform, user_id))

    def get_member(self, member_id: str) -> Member:
        return self.engine.graph.get(member_id)

    def members(self) -> list[Member]:
        return sorted(self.engine.graph, key=lambda m: m.member_id)

    def state(self, member_id: str) -> MemberState:
        self.engine.graph.get(member_id)
        return self.engine.states[member_id]

    def links(self, member_id: str) -> list[IdentityLink]:
        """How each of the member's identities came to be theirs, oldest first."""
        member = self.engine.graph.get(member_id)
        mine = set(member.identities)
        return [link for link in self.store.load_links() if link.identity in mine]

    def balance(self, member_id: str) -> int:
        """The member's spendable points (raises UnknownMember for an unknown id)."""
        self.engine.graph.get(member_id)
        return self.engine.balance(member_id)

    def tier(self, member_id: str) -> str:
        """The member's tier (raises UnknownMember for an unknown id)."""
        self.engine.graph.get(member_id)
        return self.engine.tier(member_id)

    def history(self, member_id: str) -> list[Entry]:
        self.engine.graph.get(member_id)
        return self.engine.ledger.entries(member_id)

    async def award(
        self, member_id: str, points: int, *, reason: str, key: str, multiply: bool = False
    ) -> Entry | None:
        """Award points by hand (an operator's decision), with the ledger's usual rules."""
        return await self.engine.award_points(
            member_id, points, reason=reason, key=key, multiply=multiply
        )

    async def spend(
        self, member_id: str, points: int, *, reason: str, key: str
    ) -> tuple[Entry, ...]:
        """Debit points (a reward shop); raises :class:`InsufficientPoints`."""
        return await self.engine.spend_points(member_id, points, reason=reason, key=key)

    # ----------------------------------------------------------------- building

    # --------------------------------------------------------------- moderation

    def warnings(self, member_id: str) -> int:
        """How many warnings of the member are active now."""
        return self.engine.warnings(member_id)

    async def pardon(self, member_id: str, *, by: str = "operator", note: str = "") -> int:
        """Clear the member's active warnings (written to the audit trail); returns
        how many were active."""
        return await self.engine.pardon(member_id, by=by, note=note)

    def audit(self, *, member_id: str | None = None, rule: str | None = None) -> list[AuditRecord]:
        """The audit trail, oldest first: every verdict that led to an action, every
        fallback taken and every pardon (of one member and/or one rule if given)."""
        return list(self.store.audit_trail(member_id=member_id, rule=rule))

    def campaign_report(self, days: int = 30) -> dict[str, dict[str, Any]]:
        """Each configured campaign's numbers over the last ``days`` community days.

        A campaign with a ``numbers(states, days)`` method reports its own numbers
        (check-in rate per day, streaks, referrals, completion, returns); every
        campaign reports how many members it remembers something about.
        """
        engine = self.engine
        today = self.clock.now().astimezone(engine.community.tz).date()
        run = [today - timedelta(days=n) for n in reversed(range(days))]
        found: dict[str, dict[str, Any]] = {}
        for campaign in engine.campaigns:
            states = engine.moderation.states.get(campaign.name, {})
            numbers: dict[str, Any] = {"members remembered": len(states)}
            own = getattr(campaign, "numbers", None)
            if callable(own):
                numbers.update(own(list(states.items()), run))
            found[campaign.name] = numbers
        return found

    def report(
        self,
        start: date | None = None,
        end: date | None = None,
        *,
        group: str | None = None,
        platform: str | None = None,
        metrics: Sequence[str] | None = None,
    ) -> Report:
        """Every metric for ``start .. end`` (community days, inclusive; by default
        the last 30 days up to today), optionally for one group key or platform.

        See :func:`communitykit.analytics.build_report`.
        """
        from communitykit.analytics import build_report

        engine = self.engine
        today = self.clock.now().astimezone(engine.community.tz).date()
        end = today if end is None else end
        start = end - timedelta(days=29) if start is None else start
        return build_report(
            self, start, end, group=group, platform=platform, metrics=metrics, now=self.clock.now()
        )

    async def set_role(self, member_id: str, role: Role | str) -> Member:
        """Make a member an ``owner``, ``admin``, ``kol`` or plain ``member``."""
        try:
            chosen = Role(role)
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise ModelError(f"unknown role {role!r} (known: {known})") from None
        return await self.engine.set_role(member_id, chosen)

    async def tag(self, member_id: str, *tags: str) -> Member:
        """Give a member tags (rules may exempt a tag; segments select by tag)."""
        return await self.engine.retag(member_id, add=frozenset(tags))

    async def untag(self, member_id: str, *tags: str) -> Member:
        """Take tags from a member."""
        return await self.engine.retag(member_id, remove=frozenset(tags))

    async def register_invite(self, platform: str, invite: str, member_id: str) -> None:
        """Record that an invite link or code belongs to a member."""
        await self.engine.register_invite(platform, invite, member_id)

    def _build_adapters(self, *, strict: bool = True) -> dict[str, Adapter]:
        adapters = dict(self._given_adapters)
        wanted: dict[str, PlatformSettings] = dict(self.config.platforms)
        for group in self.config.community.groups:
            if group.platform == "console" and "console" not in wanted:
                wanted["console"] = PlatformSettings(name="console")
        missing = [name for name in wanted if name not in adapters]
        if not missing:
            return adapters
        types = self.plugins.adapter_types()
        for name in missing:
            adapter_type = types.get(name)
            if adapter_type is None and not strict:
                log.warning("adapter.not_installed", platform=name)
                continue
            if adapter_type is None:
                known = ", ".join(sorted(types)) or "none installed"
                raise ConfigError(
                    self._config_path(),
                    f"platforms.{name}",
                    detail=f"no adapter for platform {name!r} is installed "
                    f"(installed: {known}); install communitykit-{name}",
                )
            try:
                adapters[name] = adapter_type.factory(wanted[name])
            except ConfigError:
                raise
            except CommunityKitError as exc:  # its options: say in which file
                raise ConfigError(
                    self._config_path(), f"platforms.{name}", detail=str(exc)
                ) from None
        return adapters

    def _build_rules(self) -> tuple[list[Rule], dict[str, RuleScope]]:
        """The rules (points rules first, then the configured ones in file order,
        then those given in code) and the scope of each configured one."""
        types = self.plugins.rule_types()
        points = self.config.points
        rules: list[Rule] = []
        scopes: dict[str, RuleScope] = {}
        for type_name, amount in (
            ("points.message", points.message),
            ("points.reaction", points.reaction_received),
        ):
            if amount and type_name in types:
                rules.append(types[type_name].factory({"points": amount}))
        named: dict[str, str] = {}
        for entry in self.config.rules:
            if not entry.enabled:
                continue
            rule_type = types.get(entry.type)
            defaults = rule_type.scope_defaults if rule_type is not None else {}
            try:
                scope, settings = RuleScope.split({**defaults, **entry.settings})
            except CommunityKitError as exc:
                raise ConfigError(self._config_path(), entry.key, detail=str(exc)) from None
            rule = self._build(types, entry.type, settings, entry.key, "rule")
            if rule.name in named:
                raise ConfigError(
                    self._config_path(),
                    f"{entry.key}.name",
                    detail=f"two rules are named {rule.name!r} ({named[rule.name]} and "
                    f"{entry.key}); give one a different name",
                )
            named[rule.name] = entry.key
            scopes[rule.name] = scope
            rules.append(rule)
        for rule in self._extra_rules:  # owners and admins are exempt from these too
            scopes.setdefault(rule.name, RuleScope())
            rules.append(rule)
        return rules, scopes

    def _build_campaigns(self) -> list[Campaign]:
        types = self.plugins.campaign_types()
        campaigns: list[Campaign] = []
        for entry in self.config.campaigns:
            if entry.enabled:
                settings = dict(entry.settings)
                campaign_type = types.get(entry.type)
                if campaign_type is not None and campaign_type.takes_timezone:
                    settings.setdefault("timezone", self.config.community.timezone)
                campaigns.append(self._build(types, entry.type, settings, entry.key, "campaign"))
        campaigns.extend(self._extra_campaigns)
        return campaigns

    def _build(
        self,
        types: Mapping[str, Any],
        type_name: str,
        settings: Mapping[str, Any],
        key: str,
        kind: str,
    ) -> Any:
        plugin_type = types.get(type_name)
        if plugin_type is None:
            known = ", ".join(sorted(types)) or "none"
            raise ConfigError(
                self._config_path(),
                f"{key}.type",
                detail=f"unknown {kind} type {type_name!r} (known: {known})",
            )
        try:
            return plugin_type.factory(settings)
        except (CommunityKitError, ValueError, TypeError, KeyError) as exc:
            raise ConfigError(self._config_path(), key, detail=str(exc)) from None

    def _config_path(self) -> str:
        return str(self.config.path) if self.config.path is not None else "community.toml"


def _alive(pid: object) -> bool:
    """Whether a process ``pid`` runs on this host (True when that cannot be told)."""
    if type(pid) is not int or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process: it exists
        return True
    return True
