"""Pending awards settled by a later decision: ``Decision.confirms`` and ``cancels``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from communitykit import (
    AwardPoints,
    CancelPoints,
    CommandInvoked,
    CommunityApp,
    ConfirmPoints,
    Decision,
    EntryKind,
    MemberJoined,
    RuleContext,
    SimulatedClock,
    TickContext,
)
from communitykit.config import parse_config
from communitykit.testing import memory_app
from tests.engine.doubles import ScriptedAdapter

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)


@attrs.frozen
class Promises:
    """``/promise K N`` credits N pending points under key K to the member;
    ``/keep K`` confirms it, ``/drop K`` cancels it (each with its own key, so
    a second ``/keep`` after a ``/drop`` is a new request the engine refuses)."""

    name: str = "promises"

    def on_event(self, ctx: RuleContext) -> Decision | None:
        event = ctx.event
        if not isinstance(event, CommandInvoked) or not event.args:
            return None
        source, award = f"campaign:{self.name}", f"promise:{event.args[0]}"
        member, key = ctx.member_id, f"{award}:{event.command}:{event.event_id}"
        if event.command == "promise":
            points = int(event.args[1])
            pending = AwardPoints(member=member, points=points, reason="promise", key=award)
            return Decision(
                source=source, explanation="promised", awards=(attrs.evolve(pending, pending=True),)
            )
        if event.command == "keep":
            confirm = ConfirmPoints(member=member, award=award, reason="kept", key=key)
            return Decision(source=source, explanation="kept", confirms=(confirm,))
        if event.command == "drop":
            cancel = CancelPoints(member=member, award=award, reason="dropped", key=key)
            return Decision(source=source, explanation="dropped", cancels=(cancel,))
        return None

    def next_run(self, after: datetime | None) -> datetime | None:
        return None

    def on_schedule(self, ctx: TickContext) -> Iterable[Decision]:
        return ()


def joined(user: str) -> MemberJoined:
    return MemberJoined(
        event_id=f"j-{user}", platform="console", group="main", user=user, at=T0, display_name=user
    )


def command(n: int, user: str, name: str, *args: str) -> CommandInvoked:
    return CommandInvoked(
        event_id=f"c{n}",
        platform="console",
        group="main",
        user=user,
        at=T0 + timedelta(minutes=n),
        command=name,
        args=args,
    )


def build() -> tuple[CommunityApp, SimulatedClock]:
    app, clock = memory_app(
        campaigns=[Promises()], adapters={"console": ScriptedAdapter()}, start=T0
    )
    app.open()
    return app, clock


async def test_a_pending_award_counts_once_confirmed_and_a_late_cancel_changes_nothing() -> None:
    app, _ = build()
    await app.feed([joined("ana"), command(1, "ana", "promise", "a", "30")])
    ledger = app.engine.ledger
    assert (app.balance("console:ana"), ledger.pending_points("console:ana")) == (0, 30)
    await app.feed([command(2, "ana", "keep", "a")])
    assert (app.balance("console:ana"), ledger.pending_points("console:ana")) == (30, 0)
    await app.feed([command(3, "ana", "drop", "a"), command(4, "ana", "keep", "a")])
    assert app.balance("console:ana") == 30
    kinds = [e.kind for e in app.history("console:ana")]
    assert kinds == [EntryKind.PENDING, EntryKind.CREDIT]


async def test_a_cancelled_award_never_counts_and_an_unknown_key_is_ignored() -> None:
    app, _ = build()
    await app.feed([joined("ana"), joined("bo"), command(1, "ana", "promise", "a", "30")])
    await app.feed([command(2, "bo", "keep", "a")])  # ana's award: not bo's to confirm
    await app.feed([command(3, "ana", "drop", "a"), command(4, "ana", "keep", "a")])
    await app.feed([command(5, "ana", "keep", "nothing")])
    assert (app.balance("console:ana"), app.balance("console:bo")) == (0, 0)
    assert app.engine.ledger.pending_points("console:ana") == 0
    entries = app.history("console:ana")
    assert [e.kind for e in entries] == [EntryKind.PENDING, EntryKind.CANCELLATION]
    assert entries[1].reason == "dropped"
    assert entries[1].refers_to == entries[0].entry_id


async def test_confirmations_and_cancellations_survive_a_restart(tmp_path: Path) -> None:
    config = parse_config(
        '[community]\nname = "承诺"\n'
        f'store = "sqlite:///{tmp_path}/c.db"\n'
        '[[groups]]\nkey = "main"\nplatform = "console"\nid = "main"\n'
    )

    def make() -> CommunityApp:
        app = CommunityApp(
            config,
            clock=SimulatedClock(T0),
            adapters={"console": ScriptedAdapter()},
            campaigns=[Promises()],
        )
        app.open()
        return app

    app = make()
    await app.feed([joined("ana"), command(1, "ana", "promise", "a", "30")])
    await app.feed([command(2, "ana", "promise", "b", "7"), command(3, "ana", "keep", "a")])
    await app.feed([command(4, "ana", "drop", "b")])
    app.close()

    again = make()
    assert again.balance("console:ana") == 30
    assert again.engine.ledger.pending_points("console:ana") == 0
    await again.feed([command(5, "ana", "keep", "b"), command(6, "ana", "drop", "a")])
    assert again.balance("console:ana") == 30
    again.close()


step = st.tuples(
    st.sampled_from(["promise", "keep", "drop"]),
    st.sampled_from(["a", "b", "c"]),
    st.integers(1, 20),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, max_size=25))
async def test_a_pending_award_is_settled_at_most_once_and_counts_only_once_confirmed(
    steps: list[tuple[str, str, int]],
) -> None:
    app, _ = build()
    await app.feed([joined("ana")])
    promised: dict[str, int] = {}  # the first promise of a key is the one that holds
    settled: dict[str, str] = {}
    for n, (verb, key, points) in enumerate(steps, start=1):
        args = (key, str(points)) if verb == "promise" else (key,)
        await app.feed([command(n, "ana", verb, *args)])
        if verb == "promise":
            promised.setdefault(key, points)
        elif key in promised:
            settled.setdefault(key, verb)
        confirmed = sum(p for k, p in promised.items() if settled.get(k) == "keep")
        waiting = sum(p for k, p in promised.items() if k not in settled)
        assert app.balance("console:ana") == confirmed
        assert app.engine.ledger.pending_points("console:ana") == waiting
    entries = app.history("console:ana")
    settling = [e.refers_to for e in entries if e.refers_to is not None]
    assert len(settling) == len(set(settling)) == len(settled)
