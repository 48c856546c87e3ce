"""``communitykit simulate``: replay a recorded event log, deterministically.

The same engine, rules and campaigns as a live run; platforms are replaced by
the console adapter's capabilities (every action is allowed and recorded, none
is delivered), the store is in memory, and time is taken from the events: the
clock follows each event, and scheduled work (expiry, tier reviews, campaigns)
runs at the moments it falls due between them.

Writes ``actions.jsonl``, ``ledger.jsonl``, ``members.jsonl`` and
``summary.json`` into the output folder. The same input gives byte-identical
output.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from communitykit._clock import SimulatedClock
from communitykit._errors import CommunityKitError, FormatError
from communitykit._plugin_types import Adapter, PlatformSettings
from communitykit._segments import member_stage
from communitykit.app import CommunityApp
from communitykit.config import CommunityConfig
from communitykit.engine import unusable
from communitykit.model import (
    AuditKind,
    AuditRecord,
    EntryKind,
    Event,
    event_from_json,
)
from communitykit.plugins import Plugins, make_plugin_manager
from communitykit.store import MemoryStore

__all__ = [
    "RulesCheck",
    "SimulationResult",
    "check_rules",
    "read_events",
    "simulate",
    "verdict_line",
]


@attrs.frozen
class SimulationResult:
    out_dir: Path
    summary: dict[str, Any]


def read_events(path: Path) -> Iterator[tuple[int, Event | FormatError]]:
    """Each non-blank line's number and its event, or the error that made it unreadable."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise CommunityKitError(f"cannot read events from {path}: {exc.strerror}") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, FormatError(f"the line is not UTF-8 text (byte {exc.start + 1})")
                continue
            if not line.strip():
                continue
            try:
                yield number, event_from_json(line, line=number)
            except FormatError as error:
                yield number, error


def _console(plugins: Plugins) -> Adapter:
    types = plugins.adapter_types()
    if "console" not in types:
        raise CommunityKitError(
            "simulate needs the console adapter: pip install communitykit-console "
            "(in this repository: pip install -e adapters/console)"
        )
    return types["console"].factory(PlatformSettings(name="console"))


def simulate(
    config: CommunityConfig,
    events_path: Path,
    out_dir: Path,
    *,
    plugins: Plugins | None = None,
    progress: Callable[[int], None] | None = None,
) -> SimulationResult:
    """Replay ``events_path`` on ``config`` and write the results to ``out_dir``."""
    import asyncio

    return asyncio.run(
        _simulate(config, events_path, out_dir, plugins or make_plugin_manager(), progress)
    )


@attrs.frozen
class _Replay:
    app: CommunityApp
    now: datetime
    read: int
    recorded: int
    duplicates: int
    skipped: list[dict[str, Any]]


async def _replay(
    config: CommunityConfig,
    events_path: Path,
    plugins: Plugins,
    progress: Callable[[int], None] | None,
) -> _Replay:
    """Feed the log through a community on the console adapter and a store in memory,
    the clock following the events; the app is left open for the caller to read."""
    skipped: list[dict[str, Any]] = []
    platforms: set[str] = set(config.platforms) | {g.platform for g in config.community.groups}
    first_at: datetime | None = None
    for _number, item in read_events(events_path):
        if isinstance(item, FormatError) or unusable(item) is not None:
            continue
        platforms.add(item.platform)
        if first_at is None or item.at < first_at:
            first_at = item.at
    console = _console(plugins)
    clock = SimulatedClock(first_at or datetime.fromisoformat("2026-01-01T00:00:00+00:00"))
    store = MemoryStore()
    store.open()
    app = CommunityApp(
        config,
        plugins=plugins,
        store=store,
        clock=clock,
        adapters=dict.fromkeys(sorted(platforms), console),
    )
    app.open()
    engine = app.engine
    read = recorded = duplicates = 0
    for number, item in read_events(events_path):
        read += 1
        if isinstance(item, FormatError):
            skipped.append({"line": number, "reason": item.detail, "field": item.field})
            continue
        problem = unusable(item)
        if problem is not None:  # the engine would refuse it: the clock must not follow it
            skipped.append({"line": number, "reason": f"the event has {problem}"})
            continue
        if item.at > clock.now():  # an event from the past is processed at the clock's time
            await engine.advance_to(item.at, clock.set)
        result = await engine.process([item])
        recorded += result.recorded
        duplicates += result.duplicates
        if progress is not None:
            progress(1)
    await engine.advance_to(clock.now(), clock.set)
    return _Replay(app, clock.now(), read, recorded, duplicates, skipped)


async def _simulate(
    config: CommunityConfig,
    events_path: Path,
    out_dir: Path,
    plugins: Plugins,
    progress: Callable[[int], None] | None,
) -> SimulationResult:
    run = await _replay(config, events_path, plugins, progress)
    try:
        summary = _write_outputs(
            run.app, out_dir, run.read, run.recorded, run.duplicates, run.skipped, run.now
        )
    finally:
        run.app.close()
    return SimulationResult(out_dir=out_dir, summary=summary)


@attrs.frozen
class RulesCheck:
    """What ``communitykit rules check`` found: every verdict, in order, and the
    lines of the log that were skipped."""

    verdicts: tuple[AuditRecord, ...]
    skipped: tuple[dict[str, Any], ...]
    events: int

    def per_rule(self) -> dict[str, int]:
        counts = Counter(record.rule for record in self.verdicts)
        return dict(sorted(counts.items()))


def check_rules(
    config: CommunityConfig,
    events_path: Path,
    *,
    plugins: Plugins | None = None,
    progress: Callable[[int], None] | None = None,
) -> RulesCheck:
    """Evaluate the configured rules on an event log without touching any platform:
    the same engine as a live run, on the console adapter and a store in memory."""
    import asyncio

    async def go() -> RulesCheck:
        run = await _replay(config, events_path, plugins or make_plugin_manager(), progress)
        try:
            verdicts = tuple(r for r in run.app.audit() if r.kind is AuditKind.VERDICT)
        finally:
            run.app.close()
        return RulesCheck(verdicts=verdicts, skipped=tuple(run.skipped), events=run.recorded)

    return asyncio.run(go())


def verdict_line(record: AuditRecord) -> str:
    """One verdict as the JSON line ``rules check`` prints."""
    platform, _, event_id = (record.event or "").partition(":")
    data = {
        "event_id": event_id or None,
        "platform": platform or None,
        "rule": record.rule,
        "member": record.member_id,
        "at": record.at.isoformat(),
        "actions": [action.to_dict() for action in record.actions],
        "explanation": record.explanation,
    }
    return json.dumps(data, ensure_ascii=False)


def _dumps(data: object) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=False)


def _write_outputs(
    app: CommunityApp,
    out_dir: Path,
    read: int,
    recorded: int,
    duplicates: int,
    skipped: list[dict[str, Any]],
    now: datetime,
) -> dict[str, Any]:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommunityKitError(f"cannot create output folder {out_dir}: {exc.strerror}") from None
    engine = app.engine
    actions_by_type: Counter[str] = Counter()
    with (out_dir / "actions.jsonl").open("w", encoding="utf-8") as out:
        for item in engine.store.outbox():
            actions_by_type[item.action.TYPE] += 1
            out.write(item.action.to_json() + "\n")
    points: Counter[str] = Counter()
    with (out_dir / "ledger.jsonl").open("w", encoding="utf-8") as out:
        for entry in engine.ledger:
            out.write(_dumps(entry.to_dict()) + "\n")
            if entry.kind is EntryKind.CREDIT:
                points["issued"] += entry.points
                if entry.refers_to is not None:  # a pending credit confirmed
                    points["pending"] -= entry.amount
            elif entry.kind is EntryKind.DEBIT:
                points["spent"] -= entry.points
            elif entry.kind is EntryKind.EXPIRY:
                points["expired"] -= entry.points
            elif entry.kind is EntryKind.REVERSAL:
                points["reversed"] -= entry.points
            elif entry.kind is EntryKind.PENDING:
                points["pending"] += entry.amount  # still waiting: until confirmed or cancelled
            elif entry.kind is EntryKind.CANCELLATION:
                points["pending"] -= entry.amount
    from communitykit.builtins.campaigns.checkin import CheckinCampaign, effective_streak

    checkins = [c for c in engine.campaigns if isinstance(c, CheckinCampaign)]
    today = now.astimezone(engine.community.tz).date()

    def streak(member_id: str) -> int:
        return max(
            (
                effective_streak(engine.moderation.state(c.name, member_id), today, c.grace_days)
                for c in checkins
            ),
            default=0,
        )

    tiers: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    settings = app.config.lifecycle
    window = engine.ladder.window
    in_segments: dict[str, list[str]] = {}
    segment_sizes: dict[str, int] = {}
    for name, chosen in app.segments(at=now).items():
        segment_sizes[name] = len(chosen)
        for member_id in chosen:
            in_segments.setdefault(member_id, []).append(name)
    with (out_dir / "members.jsonl").open("w", encoding="utf-8") as out:
        for member in sorted(engine.graph, key=lambda m: m.member_id):
            tier = engine.tier(member.member_id)
            stage = member_stage(engine, member.member_id, now, settings)
            tiers[tier] += 1
            stages[stage.value] += 1
            row = {
                "member": member.member_id,
                "identities": [str(i) for i in member.identities],
                "tier": tier,
                "balance": engine.ledger.balance(member.member_id),
                "qualifying_points": engine.ledger.qualifying_points(
                    member.member_id, now=now, window=window
                ),
                "stage": stage.value,
                "segments": sorted(in_segments.get(member.member_id, ())),
                "warnings": len(engine.moderation.warnings(member.member_id, now)),
                "streak": streak(member.member_id),
            }
            out.write(_dumps(row) + "\n")
    summary: dict[str, Any] = {
        "events": {
            "read": read,
            "recorded": recorded,
            "duplicates": duplicates,
            "skipped": len(skipped),
        },
        "skipped": skipped,
        "actions_by_type": dict(sorted(actions_by_type.items())),
        "points": {
            key: points[key] for key in ("issued", "spent", "expired", "reversed", "pending")
        },
        "members_by_tier": {t.name: tiers.get(t.name, 0) for t in engine.ladder.tiers},
        "members_by_stage": dict(sorted(stages.items())),
        "members_by_segment": segment_sizes,
        "members": sum(tiers.values()),
        "campaigns": {},
    }
    if engine.campaigns and read:
        # every campaign's numbers over the days the log covers
        first = min((e.at for e in engine.store.iter_events()), default=now)
        start = first.astimezone(engine.community.tz).date()
        days = [start + timedelta(days=n) for n in range((today - start).days + 1)]
        for campaign in engine.campaigns:
            states = list(engine.moderation.states.get(campaign.name, {}).items())
            numbers: dict[str, Any] = {"members remembered": len(states)}
            own = getattr(campaign, "numbers", None)
            if callable(own):
                numbers.update(own(states, days))
            summary["campaigns"][campaign.name] = numbers
    (out_dir / "summary.json").write_text(
        json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return summary
