"""The ``communitykit`` command: a thin layer over the public Python API.

Every error communitykit raises on purpose becomes one line on stderr and exit
status 1; bad command-line usage is exit status 2. No traceback for bad input.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import logging
import signal
import sys
import tempfile
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import structlog
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from communitykit._errors import CommunityKitError
from communitykit._version import __version__

__all__ = ["main"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class UsageError(CommunityKitError):
    """The command line asks for something that cannot be done."""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


# ----------------------------------------------------------------------- demo


def _cmd_demo(args: argparse.Namespace) -> int:
    from communitykit._demo import run_demo

    folder = (
        Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="communitykit-demo-"))
    )
    with _progress() as progress:
        task = progress.add_task("simulating days", total=args.days)
        result = run_demo(
            members=args.members,
            days=args.days,
            seed=args.seed,
            folder=folder,
            on_day=lambda day: progress.update(task, completed=day),
        )
    out.print(
        f"Simulated [bold]{result.members}[/] members over [bold]{result.days}[/] days: "
        f"{result.events:,} events (seed {args.seed})."
    )
    tiers = Table(title="Members by tier", show_edge=False)
    tiers.add_column("tier")
    tiers.add_column("members", justify="right")
    for tier, count in result.tiers.items():
        tiers.add_row(tier, str(count))
    stages = Table(title="Members by lifecycle stage", show_edge=False)
    stages.add_column("stage")
    stages.add_column("members", justify="right")
    for stage, count in result.stages.items():
        stages.add_row(stage, str(count))
    points = Table(title="Points", show_edge=False)
    points.add_column("")
    points.add_column("points", justify="right")
    for label, amount in result.points.items():
        points.add_row(label, f"{amount:,}")
    actions = Table(title="Actions", show_edge=False)
    actions.add_column("type")
    actions.add_column("delivered", justify="right")
    actions.add_column("failed", justify="right")
    actions.add_column("pending", justify="right")
    for kind, statuses in result.actions.items():
        actions.add_row(
            kind,
            str(statuses.get("delivered", 0)),
            str(statuses.get("failed", 0)),
            str(statuses.get("pending", 0)),
        )
    moderation = Table(title="Rules (the audit trail)", show_edge=False)
    moderation.add_column("rule")
    for column in ("verdicts", "fallbacks taken"):
        moderation.add_column(column, justify="right")
    for rule, kinds in result.moderation.items():
        moderation.add_row(rule, str(kinds.get("verdict", 0)), str(kinds.get("fallback", 0)))
    checkins = Table(title="Check-ins (the checkin campaign)", show_edge=False)
    checkins.add_column("")
    checkins.add_column("", justify="right")
    for label, value in result.checkins.items():
        checkins.add_row(label, f"{value:,}")
    top = Table(title="Top members", show_edge=False)
    top.add_column("member")
    top.add_column("name")
    top.add_column("balance", justify="right")
    top.add_column("tier")
    for member_id, name, balance, tier in result.top:
        top.add_row(member_id, name, str(balance), tier)
    for table in (tiers, stages, points, actions, moderation, checkins, top):
        out.print()
        out.print(table)
    out.print()
    out.print(f"The community's data is in {result.store_path}")
    if result.report_path is not None:
        out.print(f"Its report (open it in a browser): {result.report_path}")
    return 0


# ------------------------------------------------------------------- simulate


def _event_log(path: str) -> tuple[Path, int]:
    """An event log the command reads, and how many lines it has (for the progress bar)."""
    events = Path(path)
    if events.is_dir():
        raise UsageError(f"{events}: a folder, not an event log file")
    if not events.is_file():
        raise UsageError(f"{events}: no such file")
    with events.open("rb") as handle:
        return events, sum(1 for line in handle if line.strip())


def _report_skipped(events: Path, skipped: Sequence[dict[str, Any]]) -> None:
    for line in skipped:
        field = f" (field {line['field']})" if line.get("field") else ""
        err.print(f"{events}:{line['line']}: skipped{field}: {line['reason']}", markup=False)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from communitykit._simulate import simulate
    from communitykit.config import load_config

    config = load_config(args.config)
    events, total = _event_log(args.events)
    with _progress() as progress:
        task = progress.add_task("replaying events", total=total)
        result = simulate(
            config, events, Path(args.out), progress=lambda n: progress.advance(task, n)
        )
    summary = result.summary
    _report_skipped(events, summary["skipped"])
    counts = summary["events"]
    out.print(
        f"Replayed {counts['recorded']:,} events ({counts['duplicates']:,} duplicates, "
        f"{counts['skipped']:,} skipped) into {result.out_dir}: actions.jsonl, ledger.jsonl, "
        "members.jsonl, summary.json"
    )
    return 0


# ------------------------------------------------------------------------ run


def _cmd_run(args: argparse.Namespace) -> int:
    from communitykit.app import CommunityApp

    app = CommunityApp.from_file(args.config)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await app.start()
        platforms = ", ".join(sorted(app.adapters)) or "no platform"
        out.print(f"{app.config.community.name}: running on {platforms} (Ctrl-C to stop)")
        try:
            await stop.wait()
        finally:
            err.print("stopping: no new events; delivering what is due ...")
            await app.stop()
        out.print("stopped cleanly")

    asyncio.run(serve())
    return 0


# -------------------------------------------------------------------- members


def _open(config_path: str) -> Any:
    from communitykit.app import CommunityApp

    app = CommunityApp.from_file(config_path)
    app.open(with_adapters=False)
    return app


def _open_to_change(config_path: str) -> Any:
    """Open the community to change it from here: refused while another process
    runs it (that process keeps its own copy and would write over the change)."""
    app = _open(config_path)
    running = app.running_elsewhere()
    if running is not None:
        app.close()
        raise UsageError(
            f"the community is running (pid {running.get('pid')} on {running.get('host')}): "
            "stop it first, or make the change through its Python API"
        )
    return app


def _find_member(app: Any, text: str) -> Any:
    from communitykit.model import PlatformIdentity

    if text in app.engine.graph:
        return app.get_member(text)
    if ":" in text:
        member = app.engine.member(PlatformIdentity.parse(text))
        if member is not None:
            return member
    raise UsageError(
        f"no member {text!r}: give a member id or platform:user_id (see 'members list')"
    )


def _parse_import(path: Path, tz: tzinfo = UTC) -> tuple[list[Any], list[str]]:
    """The members of an import file, and what is wrong with it (line by line).

    A ``joined_at`` that is a plain date is midnight of that day in ``tz`` (the
    community's time zone).
    """
    try:
        return _read_import(path, tz)
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path}: not UTF-8 text (byte {exc.start + 1}): save the file as CSV UTF-8"
        ) from None


def _read_import(path: Path, tz: tzinfo) -> tuple[list[Any], list[str]]:
    from communitykit.config import _NAME as NAME
    from communitykit.config import _NAME_RULE as NAME_RULE
    from communitykit.model import Member, PlatformIdentity

    members: list[Any] = []
    problems: list[str] = []
    expected = ["platform", "user_id", "display_name", "joined_at", "tags"]
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    seen: dict[str, int] = {}
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise UsageError(f"{path}: the file is empty; expected the header {','.join(expected)}")
        if [h.strip() for h in header] != expected:
            raise UsageError(
                f"{path}:1: expected the header {','.join(expected)}, found {','.join(header)}"
            )
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(expected):
                problems.append(
                    f"{path}:{line}: expected {len(expected)} columns, found {len(row)}"
                )
                continue
            platform, user_id, name, joined, tags = (cell.strip() for cell in row)
            if not platform or not user_id:
                problems.append(f"{path}:{line}: platform and user_id are required")
                continue
            if not NAME.fullmatch(platform):  # the config's rule for platform names
                problems.append(f"{path}:{line}: platform must be {NAME_RULE}, found {platform!r}")
                continue
            joined_at = None
            if joined:
                try:
                    joined_at = datetime.fromisoformat(joined)
                except ValueError:
                    problems.append(
                        f"{path}:{line}: joined_at must be an ISO date or time, found {joined!r}"
                    )
                    continue
                if joined_at.tzinfo is None:
                    if len(joined) == 10:  # a plain date: midnight in the community
                        joined_at = joined_at.replace(tzinfo=tz)
                    else:
                        problems.append(
                            f"{path}:{line}: joined_at needs a UTC offset, found {joined!r}"
                        )
                        continue
            if joined_at is not None and joined_at > datetime.now(UTC) + timedelta(days=1):
                problems.append(f"{path}:{line}: joined_at is in the future, found {joined!r}")
                continue
            identity = PlatformIdentity(platform, user_id)
            key = str(identity)
            if key in seen:
                problems.append(f"{path}:{line}: {key} is already on line {seen[key]}")
                continue
            seen[key] = line
            members.append(
                Member(
                    member_id=key,
                    identities=(identity,),
                    display_name=name,
                    joined_at=joined_at,
                    tags=frozenset(t.strip() for t in tags.split(";") if t.strip()),
                )
            )
    return members, problems


def _cmd_members_import(args: argparse.Namespace) -> int:
    from communitykit.config import load_config
    from communitykit.model import LinkMethod, LinkProvenance

    path = Path(args.file)
    members, problems = _parse_import(path, load_config(args.config).community.tz)
    if problems:
        for problem in problems:
            err.print(problem, markup=False)
        err.print(f"nothing imported: fix the {len(problems)} problem(s) above and run again")
        return 1
    app = _open_to_change(args.config)
    try:
        provenance = LinkProvenance(
            method=LinkMethod.IMPORT, at=app.clock.now(), note=f"import of {path.name}"
        )
        added, known = asyncio.run(app.engine.import_members(members, provenance))
    finally:
        app.close()
    out.print(f"imported {added} member(s); {known} already known (unchanged)")
    return 0


def _cmd_members_list(args: argparse.Namespace) -> int:
    app = _open(args.config)
    try:
        names = [tier.name for tier in app.config.ladder.tiers]
        if args.tier and args.tier not in names:
            raise UsageError(f"no tier {args.tier!r}: the tiers are {', '.join(names)}")
        table = Table(show_edge=False)
        for column in ("member", "name", "tier", "balance", "status", "tags"):
            table.add_column(column, justify="right" if column == "balance" else "left")
        shown = 0
        for member in app.members():
            tier = app.tier(member.member_id)
            if args.tier and tier != args.tier:
                continue
            table.add_row(
                member.member_id,
                member.display_name,
                tier,
                str(app.balance(member.member_id)),
                member.status.value,
                ", ".join(sorted(member.tags)),
            )
            shown += 1
            if args.limit and shown >= args.limit:
                break
        out.print(table)
        out.print(f"{shown} member(s)")
    finally:
        app.close()
    return 0


def _cmd_members_show(args: argparse.Namespace) -> int:
    app = _open(args.config)
    try:
        member = _find_member(app, args.member)
        state = app.state(member.member_id)
        now = app.clock.now()
        qualifying = app.engine.ledger.qualifying_points(
            member.member_id, now=now, window=app.config.ladder.window
        )
        out.print(f"[bold]{member.member_id}[/] {member.display_name}")
        rows = [
            ("status", member.status.value),
            ("role", member.role.value),
            ("joined", member.joined_at.isoformat() if member.joined_at else "unknown"),
            ("tier", f"{state.tier} (since {state.tier_since.date().isoformat()})"),
            ("balance", str(app.balance(member.member_id))),
            ("qualifying points", str(qualifying)),
            ("pending points", str(app.engine.ledger.pending_points(member.member_id))),
            ("messages", str(state.messages)),
            ("last active", state.last_active_at.isoformat() if state.last_active_at else "never"),
            ("tags", ", ".join(sorted(member.tags)) or "-"),
            ("paid until", member.paid_until.isoformat() if member.paid_until else "-"),
        ]
        for label, value in rows:
            out.print(f"  {label:<18} {value}", markup=False)
        out.print("  identities:")
        history = app.links(member.member_id)
        for identity in member.identities:
            links = [link for link in history if link.identity == identity]
            how = links[-1].provenance.method.value if links else "unknown"
            out.print(f"    {identity}  ({how})", markup=False)
    finally:
        app.close()
    return 0


# --------------------------------------------------------------------- points


def _cmd_points_award(args: argparse.Namespace) -> int:
    if args.key is not None and not args.key.strip():
        raise UsageError("--key must not be empty: leave it out for a new key of its own")
    app = _open_to_change(args.config)
    try:
        member = _find_member(app, args.member)
        key = args.key if args.key is not None else f"manual:{uuid.uuid4()}"
        used = app.engine.ledger.has_key(key)
        entry = asyncio.run(app.award(member.member_id, args.points, reason=args.reason, key=key))
        if used:
            done = (
                "nothing" if entry is None else f"entry {entry.entry_id}, {entry.points} point(s)"
            )
            out.print(
                f"nothing new awarded: the key {key!r} was used before ({done}); "
                f"balance {app.balance(member.member_id)}",
                markup=False,
            )
        elif entry is None:
            out.print(f"nothing awarded: the daily cap for {args.reason!r} is reached")
        else:
            out.print(
                f"awarded {entry.points} point(s) to {member.member_id} "
                f"(entry {entry.entry_id}, key {entry.idempotency_key}); "
                f"balance {app.balance(member.member_id)}"
            )
    finally:
        app.close()
    return 0


def _cmd_points_history(args: argparse.Namespace) -> int:
    app = _open(args.config)
    try:
        member = _find_member(app, args.member)
        table = Table(show_edge=False)
        for column in ("entry", "at", "kind", "points", "reason", "key"):
            table.add_column(column, justify="right" if column == "points" else "left")
        entries = app.history(member.member_id)
        for entry in entries[-args.limit :] if args.limit else entries:
            table.add_row(
                entry.entry_id,
                entry.at.isoformat(timespec="seconds"),
                entry.kind.value,
                f"{entry.points:+d}" if entry.points else f"({entry.amount})",
                entry.reason,
                entry.idempotency_key,
            )
        out.print(table)
        waiting = app.engine.ledger.pending_points(member.member_id)
        shown = f"; {waiting} pending" if waiting else ""
        out.print(f"balance {app.balance(member.member_id)}{shown}")
    finally:
        app.close()
    return 0


def _cmd_members_role(args: argparse.Namespace) -> int:
    app = _open_to_change(args.config)
    try:
        member = _find_member(app, args.member)
        updated = asyncio.run(app.set_role(member.member_id, args.role))
        out.print(f"{updated.member_id} is now {updated.role.value}", markup=False)
    finally:
        app.close()
    return 0


def _cmd_members_tag(args: argparse.Namespace) -> int:
    app = _open_to_change(args.config)
    try:
        member = _find_member(app, args.member)
        if args.remove:
            updated = asyncio.run(app.untag(member.member_id, *args.tags))
        else:
            updated = asyncio.run(app.tag(member.member_id, *args.tags))
        shown = ", ".join(sorted(updated.tags)) or "none"
        out.print(f"{updated.member_id} tags: {shown}", markup=False)
    finally:
        app.close()
    return 0


# ---------------------------------------------------------------------- rules


def _cmd_rules_check(args: argparse.Namespace) -> int:
    from communitykit._simulate import check_rules, verdict_line
    from communitykit.config import load_config

    config = load_config(args.config)
    events, total = _event_log(args.events)
    with _progress() as progress:
        task = progress.add_task("checking rules", total=total)
        result = check_rules(config, events, progress=lambda n: progress.advance(task, n))
    _report_skipped(events, result.skipped)
    for record in result.verdicts:
        out.print(verdict_line(record), markup=False, highlight=False)
    table = Table(title="verdicts per rule", show_edge=False)
    table.add_column("rule")
    table.add_column("verdicts", justify="right")
    counts = result.per_rule()
    for rule, count in counts.items():
        table.add_row(rule, f"{count:,}")
    table.add_row("[bold]total[/]", f"[bold]{sum(counts.values()):,}[/]")
    err.print(table)
    err.print(f"{result.events:,} events evaluated; no platform was touched")
    return 0


def _cmd_rules_pardon(args: argparse.Namespace) -> int:
    app = _open_to_change(args.config)
    try:
        member = _find_member(app, args.member)
        cleared = asyncio.run(app.pardon(member.member_id, by=args.by, note=args.note or ""))
        out.print(
            f"pardoned {member.member_id}: {cleared} active warning(s) cleared "
            "(recorded in the audit trail)",
            markup=False,
        )
    finally:
        app.close()
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    app = _open(args.config)
    try:
        member_id = None
        if args.member:
            member_id = _find_member(app, args.member).member_id
        records = app.audit(member_id=member_id, rule=args.rule)
        if args.limit:
            records = records[-args.limit :]
        if args.json:
            for record in records:
                out.print(json.dumps(record.to_dict(), ensure_ascii=False), markup=False)
            return 0
        table = Table(show_edge=False)
        for column in ("#", "at", "kind", "rule", "member", "event", "actions", "why"):
            table.add_column(column, overflow="fold")
        for record in records:
            table.add_row(
                str(record.seq),
                record.at.isoformat(timespec="seconds"),
                record.kind.value,
                record.rule,
                record.member_id or "-",
                record.event or "-",
                ", ".join(a.TYPE for a in record.actions) or "-",
                record.explanation,
            )
        out.print(table)
        out.print(f"{len(records):,} record(s)")
    finally:
        app.close()
    return 0


# ------------------------------------------------------------------ campaigns


def _cmd_campaigns_report(args: argparse.Namespace) -> int:
    app = _open(args.config)
    try:
        report = app.campaign_report(days=args.days)
    finally:
        app.close()
    if args.format == "json":
        out.print(json.dumps(report, ensure_ascii=False, indent=2), markup=False)
        return 0
    if not report:
        out.print("no campaigns are configured")
    for name, numbers in report.items():
        table = Table(title=f"campaign {name}", show_edge=False)
        table.add_column("")
        table.add_column("", overflow="fold")
        for key, value in numbers.items():
            shown = (
                json.dumps(value, ensure_ascii=False)
                if isinstance(value, dict | list)
                else str(value)
            )
            table.add_row(key, shown)
        out.print(table)
    return 0


# --------------------------------------------------------------------- report


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def _cmd_report(args: argparse.Namespace) -> int:
    from communitykit.analytics import ReportError

    app = _open(args.config)
    try:
        today = app.clock.now().astimezone(app.engine.community.tz).date()
        end = args.to if args.to is not None else today
        try:
            start = args.start if args.start is not None else end - timedelta(days=29)
        except OverflowError:  # --to in the first days of year 1: refused below
            start = end
        try:
            report = app.report(start, end, group=args.group, platform=args.platform)
        except ReportError as exc:
            err.print(f"communitykit report: {exc}", markup=False)
            return 2
    finally:
        app.close()
    fmt = args.format or (
        "html" if args.out and args.out.lower().endswith((".html", ".htm")) else "json"
    )
    if fmt == "json":
        text = json.dumps(report.to_json(), ensure_ascii=False, indent=2)
    else:
        import importlib

        try:
            html = importlib.import_module("communitykit.analytics._html")
        except ImportError:
            raise UsageError("the HTML report is not available in this version") from None
        text = html.render(report)
    if args.out is None:
        if fmt == "html":
            raise UsageError("give --out FILE for the HTML report")
        out.print(text, markup=False)
        return 0
    path = Path(args.out)
    try:
        path.write_text(text + ("\n" if fmt == "json" else ""), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    out.print(f"wrote {path}")
    return 0


# ------------------------------------------------------------------- giveaway


def _cmd_giveaway_verify(args: argparse.Namespace) -> int:
    import os

    from communitykit.model._draws import verify_draw

    seed = os.environ.get("COMMUNITYKIT_GIVEAWAY_SEED") if args.seed is None else args.seed
    if seed is None:
        seed = sys.stdin.readline().rstrip("\n")
    if not seed:
        raise UsageError(
            "give the published seed with --seed, in COMMUNITYKIT_GIVEAWAY_SEED, or on stdin"
        )
    path = Path(args.eligible)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the eligible members from {path}: {exc}") from None
    ok, why = verify_draw(seed, args.commitment, lines, args.winners)
    (out if ok else err).print(("verified: " if ok else "NOT verified: ") + why, markup=False)
    return 0 if ok else 1


# ------------------------------------------------------------------- segments


def _cmd_segments_list(args: argparse.Namespace) -> int:
    app = _open(args.config)
    try:
        book = app.segment_book
        sizes = app.segments()
        table = Table(show_edge=False)
        table.add_column("segment")
        table.add_column("definition", overflow="fold")
        table.add_column("members", justify="right")
        for name in book.names():
            table.add_row(name, book.definition(name), str(len(sizes[name])))
        out.print(table)
    finally:
        app.close()
    return 0


def _cmd_segments_show(args: argparse.Namespace) -> int:
    from communitykit._segments import member_stage

    app = _open(args.config)
    try:
        chosen = sorted(app.segment(args.name))
        now = app.clock.now()
        book = app.segment_book
        if args.name in book.names():
            out.print(f"{args.name}: {book.definition(args.name)}", markup=False)
        table = Table(show_edge=False)
        for column in ("member", "name", "tier", "stage", "balance", "tags"):
            table.add_column(column, justify="right" if column == "balance" else "left")
        for member_id in chosen[: args.limit or None]:
            member = app.get_member(member_id)
            table.add_row(
                member_id,
                member.display_name,
                app.tier(member_id),
                member_stage(app.engine, member_id, now, app.config.lifecycle).value,
                str(app.balance(member_id)),
                ", ".join(sorted(member.tags)),
            )
        out.print(table)
        out.print(f"{len(chosen)} member(s)")
    finally:
        app.close()
    return 0


def _cmd_segments_export(args: argparse.Namespace) -> int:
    app = _open(args.config)
    try:
        text = app.export_segment(args.name)
    finally:
        app.close()
    rows = sum(1 for _ in csv.reader(io.StringIO(text, newline=""))) - 1  # names may hold newlines
    if args.out is None or args.out == "-":
        sys.stdout.write(text)
        return 0
    path = Path(args.out)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    err.print(f"wrote {rows} member(s) of segment {args.name!r} to {path}", markup=False)
    return 0


# ------------------------------------------------------------------ broadcast


def _cmd_broadcast(args: argparse.Namespace) -> int:
    from communitykit.app import CommunityApp

    app = CommunityApp.from_file(args.config)
    app.open()  # with adapters: they deliver
    try:
        return asyncio.run(_broadcast(app, args))
    finally:
        app.close()


async def _broadcast(app: Any, args: argparse.Namespace) -> int:
    plan, queued = await app.broadcast(
        args.text, segment=args.segment, platform=args.platform, broadcast_id=args.id
    )
    bid = plan.broadcast_id
    out.print(
        f"broadcast {bid}: {plan.members} member(s) in {args.segment!r}, "
        f"{len(plan.actions)} message(s) ({queued} newly queued, "
        f"{plan.without_platform} without a platform to reach them)"
    )
    report = app.broadcast_report(bid)
    runner = app.running_elsewhere()
    if runner is not None:  # two dispatchers on one outbox would send twice
        out.print(
            f"the community is running (pid {runner.get('pid')} on {runner.get('host')}): "
            f"it delivers the broadcast. So far: {report.delivered} delivered, "
            f"{report.unreachable} unreachable, {report.failed} failed, "
            f"{report.pending} pending; run the same command again to see where it stands"
        )
        return 0
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "sent {task.fields[sent]} · failed {task.fields[failed]} · "
            "unreachable {task.fields[unreachable]}"
        ),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    )

    def show(task: Any, report: Any) -> None:
        progress.update(
            task,
            completed=report.total - report.pending,
            sent=report.delivered,
            failed=report.failed,
            unreachable=report.unreachable,
        )

    deadline = asyncio.get_running_loop().time() + args.timeout
    with progress:
        task = progress.add_task(
            f"broadcast {bid}", total=report.total, sent=0, failed=0, unreachable=0
        )
        show(task, report)
        delivering = asyncio.ensure_future(_deliver_until_done(app, bid, deadline))
        while not delivering.done():
            await asyncio.wait({delivering}, timeout=0.25)
            show(task, app.broadcast_report(bid))
        delivering.result()
    report = app.broadcast_report(bid)
    table = Table(title=f"broadcast {bid}", show_edge=False)
    table.add_column("outcome")
    table.add_column("messages", justify="right")
    for name in ("delivered", "unreachable", "failed", "pending"):
        table.add_row(name, str(getattr(report, name)))
    out.print(table)
    for reason, count in report.failures.items():
        out.print(f"  {count} × {reason}")
    if not report.done:
        out.print(
            f"{report.pending} message(s) still pending (retrying later): "
            "run the same command again to resume"
        )
        return 1
    return 0


async def _deliver_until_done(app: Any, broadcast_id: str, deadline: float) -> None:
    """Deliver until the broadcast has no pending message, or the deadline passes."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        await app.deliver()
        if app.broadcast_report(broadcast_id).done:
            return
        due = app.store.next_due()
        wait = 1.0 if due is None else (due - app.clock.now()).total_seconds()
        await asyncio.sleep(min(max(wait, 0.05), max(0.0, deadline - loop.time())))


# -------------------------------------------------------------------- plugins


def _cmd_plugins_list(args: argparse.Namespace) -> int:
    from communitykit.plugins import make_plugin_manager

    plugins = make_plugin_manager()
    table = Table(show_edge=False)
    for column in ("plugin", "distribution", "version", "hooks"):
        table.add_column(column)
    for info in plugins.info():
        table.add_row(
            info.name,
            info.distribution or "-",
            info.version or "-",
            "\n".join(h.removeprefix("communitykit_") for h in info.hooks),
        )
    out.print(table)
    for failure in plugins.failures:
        err.print(
            f"not loaded: {failure.name} ({failure.distribution} {failure.version}): "
            f"{failure.error}",
            markup=False,
        )
    return 0


# ---------------------------------------------------------------------- parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="communitykit",
        description="Community operations: members, tiers, points, rules and campaigns.",
    )
    parser.add_argument("--version", action="version", version=f"communitykit {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-v: info, -vv: debug)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser("demo", help="run a simulated community and print a summary")
    demo.add_argument("--members", type=_positive, default=500, help="members (default 500)")
    demo.add_argument("--days", type=_positive, default=30, help="simulated days (default 30)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.add_argument(
        "--folder", help="where to keep the demo's files (default: a new temp folder)"
    )
    demo.set_defaults(handler=_cmd_demo)

    sim = commands.add_parser("simulate", help="replay an event log and write what it caused")
    sim.add_argument("config", metavar="CONFIG", help="community.toml")
    sim.add_argument("events", metavar="EVENTS.jsonl", help="the event log, one JSON object a line")
    sim.add_argument("--out", required=True, metavar="DIR", help="output folder")
    sim.set_defaults(handler=_cmd_simulate)

    run = commands.add_parser("run", help="run the configured community until interrupted")
    run.add_argument("config", metavar="CONFIG")
    run.set_defaults(handler=_cmd_run)

    members = commands.add_parser("members", help="import, list and show members")
    member_commands = members.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    imp = member_commands.add_parser("import", help="import members from a CSV file")
    imp.add_argument("config", metavar="CONFIG")
    imp.add_argument(
        "file", metavar="FILE.csv", help="columns platform,user_id,display_name,joined_at,tags"
    )
    imp.set_defaults(handler=_cmd_members_import)
    lst = member_commands.add_parser("list", help="list members")
    lst.add_argument("config", metavar="CONFIG")
    lst.add_argument("--tier", help="only members of this tier")
    lst.add_argument("--limit", type=_positive, help="at most this many")
    lst.set_defaults(handler=_cmd_members_list)
    show = member_commands.add_parser("show", help="show one member")
    show.add_argument("config", metavar="CONFIG")
    show.add_argument("member", metavar="MEMBER", help="member id or platform:user_id")
    show.set_defaults(handler=_cmd_members_show)

    role = member_commands.add_parser("role", help="make a member an owner, admin, kol or member")
    role.add_argument("config", metavar="CONFIG")
    role.add_argument("member", metavar="MEMBER", help="member id or platform:user_id")
    role.add_argument("role", choices=["owner", "admin", "kol", "member"])
    role.set_defaults(handler=_cmd_members_role)
    tag = member_commands.add_parser("tag", help="give a member tags (or take them with --remove)")
    tag.add_argument("config", metavar="CONFIG")
    tag.add_argument("member", metavar="MEMBER", help="member id or platform:user_id")
    tag.add_argument("tags", metavar="TAG", nargs="+")
    tag.add_argument("--remove", action="store_true", help="take the tags away instead")
    tag.set_defaults(handler=_cmd_members_tag)

    rules = commands.add_parser("rules", help="dry-run the rules on an event log; pardon")
    rule_commands = rules.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    check = rule_commands.add_parser(
        "check", help="evaluate the rules on an event log and print each verdict (JSON lines)"
    )
    check.add_argument("config", metavar="CONFIG")
    check.add_argument("events", metavar="EVENTS.jsonl")
    check.set_defaults(handler=_cmd_rules_check)
    pardon = rule_commands.add_parser("pardon", help="clear a member's active warnings")
    pardon.add_argument("config", metavar="CONFIG")
    pardon.add_argument("member", metavar="MEMBER", help="member id or platform:user_id")
    pardon.add_argument("--by", default="operator", help="who pardons (kept in the audit trail)")
    pardon.add_argument("--note", help="why (kept in the audit trail)")
    pardon.set_defaults(handler=_cmd_rules_pardon)

    camps = commands.add_parser("campaigns", help="what the campaigns did")
    camp_commands = camps.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    report = camp_commands.add_parser("report", help="each campaign's numbers")
    report.add_argument("config", metavar="CONFIG")
    report.add_argument("--days", type=_positive, default=30, help="over the last N days")
    report.add_argument("--format", choices=["table", "json"], default="table")
    report.set_defaults(handler=_cmd_campaigns_report)

    rep = commands.add_parser(
        "report", help="the community's numbers for a date range, as JSON or one HTML page"
    )
    rep.add_argument("config", metavar="CONFIG")
    rep.add_argument(
        "--from", dest="start", type=_date, help="first day (default: 29 days before --to)"
    )
    rep.add_argument("--to", type=_date, help="last day, inclusive (default: today)")
    rep.add_argument("--group", help="only this group (its key in community.toml)")
    rep.add_argument("--platform", help="only this platform")
    rep.add_argument("--format", choices=["json", "html"], default=None)
    rep.add_argument("--out", help="write to this file (the format follows its suffix)")
    rep.set_defaults(handler=_cmd_report)

    give = commands.add_parser("giveaway", help="check a giveaway's draw")
    give_commands = give.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    verify = give_commands.add_parser(
        "verify", help="recompute a draw from its published seed and check the winners"
    )
    verify.add_argument("--seed", help="the seed published at the draw (or stdin, or env)")
    verify.add_argument("--commitment", required=True, help="the SHA-256 published at opening")
    verify.add_argument(
        "--eligible", required=True, help="a file with one eligible member id per line"
    )
    verify.add_argument("winners", metavar="WINNER", nargs="*", help="the winners, in order")
    verify.set_defaults(handler=_cmd_giveaway_verify)

    aud = commands.add_parser("audit", help="the audit trail: verdicts, fallbacks, pardons")
    aud.add_argument("config", metavar="CONFIG")
    aud.add_argument("--member", help="only this member (member id or platform:user_id)")
    aud.add_argument("--rule", help="only this rule")
    aud.add_argument("--limit", type=_positive, help="only the last N records")
    aud.add_argument("--json", action="store_true", help="one JSON object per line")
    aud.set_defaults(handler=_cmd_audit)

    points = commands.add_parser("points", help="award points and see a member's history")
    point_commands = points.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    award = point_commands.add_parser("award", help="award points to a member")
    award.add_argument("config", metavar="CONFIG")
    award.add_argument("member", metavar="MEMBER")
    award.add_argument("points", type=_positive, metavar="POINTS")
    award.add_argument("--reason", default="manual", help="why (default: manual)")
    award.add_argument("--key", help="idempotency key: the same key never awards twice")
    award.set_defaults(handler=_cmd_points_award)
    history = point_commands.add_parser("history", help="a member's ledger entries")
    history.add_argument("config", metavar="CONFIG")
    history.add_argument("member", metavar="MEMBER")
    history.add_argument("--limit", type=_positive, help="only the last N entries")
    history.set_defaults(handler=_cmd_points_history)

    cast = commands.add_parser(
        "broadcast", help="send a direct message to every reachable member of a segment"
    )
    cast.add_argument("config", help="the community.toml")
    cast.add_argument(
        "--segment",
        default="all",
        help="a segment name or expression (default: all); see 'segments list'",
    )
    cast.add_argument("--text", required=True, help="the message")
    cast.add_argument("--platform", help="send only on this platform")
    cast.add_argument(
        "--id", help="the broadcast id (default: derived from segment, platform and text)"
    )
    cast.add_argument(
        "--timeout", type=float, default=3600.0, help="give up after this many seconds"
    )
    cast.set_defaults(handler=_cmd_broadcast)

    segs = commands.add_parser("segments", help="list, show and export segments of members")
    seg_commands = segs.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    slist = seg_commands.add_parser("list", help="every segment: definition and size")
    slist.add_argument("config", help="the community.toml")
    slist.set_defaults(handler=_cmd_segments_list)
    sshow = seg_commands.add_parser("show", help="the members of one segment")
    sshow.add_argument("config", help="the community.toml")
    sshow.add_argument("name", help='a segment name or expression ("active and tier:gold")')
    sshow.add_argument("--limit", type=_positive, help="show at most this many members")
    sshow.set_defaults(handler=_cmd_segments_show)
    sexport = seg_commands.add_parser("export", help="one segment's members as CSV")
    sexport.add_argument("config", help="the community.toml")
    sexport.add_argument("name", help="a segment name or expression")
    sexport.add_argument("--out", help="the CSV file to write (default: standard output)")
    sexport.set_defaults(handler=_cmd_segments_export)

    plugins = commands.add_parser("plugins", help="list installed plugins")
    plugin_commands = plugins.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    plist = plugin_commands.add_parser("list", help="every plugin with its hooks")
    plist.set_defaults(handler=_cmd_plugins_list)
    return parser


def _configure_logging(verbose: int) -> None:
    """The command (an application, unlike the library) decides where logs go: stderr."""
    from communitykit.http import redact_processor

    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    structlog.configure(
        processors=[
            redact_processor,  # tokens never reach a log line, whoever logs them
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        code: int = args.handler(args)
    except CommunityKitError as exc:
        err.print(f"communitykit: {exc}", markup=False)
        return 1
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
