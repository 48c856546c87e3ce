"""``communitykit demo``: a whole community, simulated, on one machine.

A crowd of simulated members lives for some days in a console group: they join
(some through each other's invite links), post, reply, react, check in, fall
silent, come back, leave. The engine runs the real rules, the ledger and the
tier ladder of an embedded configuration, writing to a SQLite file; the
dispatcher delivers the actions through the console adapter; a few members
spend points in a reward shop. Deterministic for a given seed.
"""

from __future__ import annotations

import importlib
import random
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs

from communitykit._clock import SimulatedClock
from communitykit._errors import CommunityKitError, InsufficientPoints
from communitykit._plugin_types import PlatformSettings
from communitykit._segments import member_stage
from communitykit.app import CommunityApp
from communitykit.config import parse_config
from communitykit.model import EntryKind
from communitykit.plugins import Plugins, make_plugin_manager

__all__ = ["DEMO_CONFIG", "DemoResult", "run_demo"]

DEMO_CONFIG = """\
[community]
name = "Demo community"
purpose = "A simulated community for trying communitykit"
timezone = "Asia/Shanghai"
store = "sqlite:///demo.db"

[[groups]]
key = "main"
platform = "console"
id = "main"
title = "Demo group"

[points]
message = 2
message_daily_cap = 20
reaction_received = 1
reaction_daily_cap = 10
expire_after_days = 21

[tiers]
window_days = 30
grace_days = 7

[[tiers.ladder]]
name = "newcomer"
threshold = 0

[[tiers.ladder]]
name = "regular"
threshold = 60
multiplier = "1.1"
titles = { console = "Regular" }

[[tiers.ladder]]
name = "core"
threshold = 200
multiplier = "1.25"
min_tenure_days = 7
titles = { console = "Core" }

[[tiers.ladder]]
name = "star"
threshold = 450
multiplier = "1.5"
min_tenure_days = 14
titles = { console = "Star" }

[[rules]]
type = "links"
allow = ["python.org", "github.com"]

[[rules]]
type = "flood"

[[rules]]
type = "duplicates"

[[rules]]
type = "entry"
questions = [
  { question = "How did you find us?" },
  { question = "What do you hope to get from the group?", accept = [
      "practice partners", "motivation", "to learn from others", "re:routine",
  ] },
]

[[rules]]
type = "inactivity"
remind_after = "10d"
remove_after = "20d"

[[rules]]
type = "warning_ladder"
steps = ["warn", "mute:1h", "mute:1d", "kick"]
decay = "14d"

[[campaigns]]
type = "welcome"
rules = "Be kind, stay on topic, no ads."
introduce = "Tell us who you are and what you hope to practise!"

[[campaigns]]
type = "checkin"
reward = 3
milestones = { 7 = 15, 14 = 40 }
"""

START = datetime(2026, 3, 1, 0, 0, tzinfo=timezone(timedelta(hours=8)))
SHOP_PRICE = 50


@attrs.frozen
class DemoResult:
    members: int
    days: int
    events: int
    store_path: Path
    tiers: dict[str, int]
    stages: dict[str, int]
    points: dict[str, int]
    actions: dict[str, dict[str, int]]  # type -> status -> count
    top: list[tuple[str, str, int, str]]  # member id, display name, balance, tier
    moderation: dict[str, dict[str, int]] = attrs.Factory(dict)  # rule -> audit kind -> count
    checkins: dict[str, int] = attrs.Factory(dict)  # members, check-ins, longest streak
    report_path: Path | None = None  # the HTML report, next to the database


def run_demo(
    *,
    members: int = 500,
    days: int = 30,
    seed: int = 7,
    folder: Path,
    plugins: Plugins | None = None,
    on_day: Callable[[int], None] | None = None,
) -> DemoResult:
    """Run the demo in ``folder`` (its SQLite file goes there) and return what happened."""
    import asyncio

    if members < 1 or days < 1:
        raise CommunityKitError("the demo needs at least 1 member and 1 day")
    _check_folder(Path(folder))
    return asyncio.run(_run(members, days, seed, folder, plugins or make_plugin_manager(), on_day))


def _check_folder(folder: Path) -> None:
    """Refuse a folder the demo cannot use: it must be new, or a folder without an
    earlier demo's database (whose members and ledger the run would add to)."""
    if folder.exists() and not folder.is_dir():
        raise CommunityKitError(f"{folder} is not a folder: give a new or empty one")
    if (folder / "demo.db").exists():
        raise CommunityKitError(
            f"{folder} already holds a demo (demo.db): give a new or empty folder, "
            "so the run starts from nothing"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommunityKitError(
            f"cannot create the folder {folder}: {exc.strerror or exc}"
        ) from None


async def _run(
    members: int,
    days: int,
    seed: int,
    folder: Path,
    plugins: Plugins,
    on_day: Callable[[int], None] | None,
) -> DemoResult:
    config = parse_config(DEMO_CONFIG, path=str(folder / "community.toml"), base_dir=folder)
    types = plugins.adapter_types()
    if "console" not in types:
        raise CommunityKitError(
            "the demo runs on the console adapter: pip install communitykit-console "
            "(in this repository: pip install -e adapters/console)"
        )
    console = importlib.import_module("communitykit_console")
    adapter: Any = types["console"].factory(
        PlatformSettings(name="console", options={"groups": ["main"]})
    )
    clock = SimulatedClock(START)
    app = CommunityApp(config, plugins=plugins, clock=clock, adapters={"console": adapter})
    app.open()
    await adapter.start(app.feed)
    platform = adapter.platform_state
    platform.clock = clock.now  # the simulated platform lives in simulated time
    crowd = console.Crowd(platform, members=members, seed=seed, groups=("main",))
    shop = random.Random(seed * 7919 + 1)
    events = 0
    try:
        for day in range(days):
            day_start = START + timedelta(days=day)
            await app.engine.advance_to(day_start, clock.set)
            async with platform.batch():
                before = app.store.count_events()
                await crowd.run_day(day_start, clock.set)
            events += app.store.count_events() - before
            await _reward_shop(app, shop, day)
            await app.deliver()
            if on_day is not None:
                on_day(day + 1)
        end = START + timedelta(days=days)
        await app.engine.advance_to(end, clock.set)
        await app.deliver()
        result = _result(app, members, days, events, folder / "demo.db", end)
        first = START.astimezone(app.engine.community.tz).date()
        report = _write_report(app, first, first + timedelta(days=days - 1), folder)
        return attrs.evolve(result, report_path=report)
    finally:
        await adapter.stop()
        app.close()


def _write_report(app: CommunityApp, first: date, last: date, folder: Path) -> Path | None:
    """Write the report of the simulated days as ``report.html`` in ``folder``.

    None when this installation has no metrics to build a report from.
    """
    build = getattr(importlib.import_module("communitykit.analytics"), "build_report", None)
    if build is None:
        return None
    from communitykit.analytics._html import render

    path = folder / "report.html"
    path.write_text(render(build(app, first, last)), encoding="utf-8")
    return path


async def _reward_shop(app: CommunityApp, rng: random.Random, day: int) -> None:
    """Some members with enough points buy something."""
    engine = app.engine
    for member in sorted(engine.graph, key=lambda m: m.member_id):
        if engine.ledger.balance(member.member_id) >= SHOP_PRICE + 30 and rng.random() < 0.08:
            try:
                await app.spend(
                    member.member_id,
                    SHOP_PRICE,
                    reason="reward shop",
                    key=f"shop:{member.member_id}:{day}",
                )
            except InsufficientPoints:  # pragma: no cover - checked above
                continue


def _result(
    app: CommunityApp, members: int, days: int, events: int, store_path: Path, now: datetime
) -> DemoResult:
    engine = app.engine
    tiers: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    settings = engine.lifecycle
    for member in engine.graph:
        tiers[engine.tier(member.member_id)] += 1
        stages[member_stage(engine, member.member_id, now, settings)] += 1
    points: Counter[str] = Counter()
    for entry in engine.ledger:
        if entry.kind is EntryKind.CREDIT:
            points["issued"] += entry.points
            points["held back by daily caps"] += entry.amount - entry.points
        elif entry.kind is EntryKind.DEBIT:
            points["spent"] -= entry.points
        elif entry.kind is EntryKind.EXPIRY:
            points["expired"] -= entry.points
    actions: dict[str, dict[str, int]] = {}
    for item in app.store.outbox():
        by_status = actions.setdefault(item.action.TYPE, {})
        by_status[item.status.value] = by_status.get(item.status.value, 0) + 1
    ranking = sorted(engine.graph, key=lambda m: (-engine.ledger.balance(m.member_id), m.member_id))
    top = [
        (m.member_id, m.display_name, engine.ledger.balance(m.member_id), engine.tier(m.member_id))
        for m in ranking[:5]
    ]
    moderation: dict[str, dict[str, int]] = {}
    for record in app.audit():
        kinds = moderation.setdefault(record.rule, {})
        kinds[record.kind.value] = kinds.get(record.kind.value, 0) + 1
    from communitykit.builtins.campaigns.checkin import checkin_numbers

    checkins: dict[str, int] = {}
    states = engine.moderation.states.get("checkin")
    if states:
        start = START.astimezone(engine.community.tz).date()
        run = [start + timedelta(days=n) for n in range(days)]
        numbers = checkin_numbers(states.items(), run)
        streaks = {int(k): v for k, v in numbers["streaks"].items() if v}
        checkins = {
            "members who checked in": numbers["members"],
            "check-ins": sum(numbers["checked_in"].values()),
            "longest running streak (days)": max(streaks, default=0),
        }
    stage_names = ["new", "active", "recalled", "silent", "churned", "left"]
    return DemoResult(
        members=members,
        days=days,
        events=events,
        store_path=store_path,
        tiers={t.name: tiers.get(t.name, 0) for t in engine.ladder.tiers},
        stages={s: stages.get(s, 0) for s in stage_names if stages.get(s, 0) or s != "left"},
        points={
            k: points.get(k, 0) for k in ("issued", "spent", "expired", "held back by daily caps")
        },
        actions=dict(sorted(actions.items())),
        top=top,
        moderation=dict(sorted(moderation.items())),
        checkins=checkins,
    )
