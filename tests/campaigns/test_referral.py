"""The referral campaign type (裂变) through the engine, and its settings."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from communitykit import (
    CommandInvoked,
    CommunityApp,
    CreateInviteLink,
    MemberJoined,
    MemberLeft,
    MessagePosted,
    ModelError,
    Receipt,
    SimulatedClock,
    make_plugin_manager,
)
from communitykit.builtins.campaigns.referral import (
    ReferralCampaign,
    leaderboard,
    referral_code,
    referral_numbers,
)
from communitykit.testing import memory_app
from tests.engine.doubles import ScriptedAdapter

pytestmark = pytest.mark.anyio

# Daylight saving time starts in New York on 2026-03-08.
T0 = datetime(2026, 3, 5, 14, 0, tzinfo=UTC)

CONFIG = """
[community]
name = "裂变测试"
timezone = "America/New_York"

[[groups]]
key = "main"
platform = "console"
id = "main"

[[campaigns]]
type = "referral"
"""


class LinkMaker(ScriptedAdapter):
    """Creates invite links: ``https://t.example/+<name>``."""

    async def perform(self, action: Any) -> Receipt:
        await super().perform(action)
        detail = f"https://t.example/+{action.name}" if isinstance(action, CreateInviteLink) else ""
        return Receipt(action_id=action.action_id, detail=detail)


def build(config: str = CONFIG) -> tuple[CommunityApp, SimulatedClock]:
    app, clock = memory_app(
        config_text=config,
        adapters={"console": LinkMaker()},
        plugins=make_plugin_manager(),
        start=T0,
    )
    app.open()
    return app, clock


def joined(user: str, at: datetime, invite: str | None = None) -> MemberJoined:
    return MemberJoined(
        event_id=f"j-{user}-{at.isoformat()}",
        platform="console",
        group="main",
        user=user,
        at=at,
        display_name=user,
        invite=invite,
    )


def left(user: str, at: datetime) -> MemberLeft:
    return MemberLeft(
        event_id=f"l-{user}-{at.isoformat()}",
        platform="console",
        group="main",
        user=user,
        at=at,
        reason="left",
    )


def say(user: str, n: int, at: datetime) -> MessagePosted:
    return MessagePosted(
        event_id=f"m-{user}-{n}",
        platform="console",
        group="main",
        user=user,
        at=at,
        message_id=f"{user}-{n}",
        text=f"大家好 {n}",
    )


def command(user: str, name: str, *args: str, at: datetime) -> CommandInvoked:
    return CommandInvoked(
        event_id=f"c-{user}-{name}-{at.isoformat()}",
        platform="console",
        group="main",
        user=user,
        at=at,
        command=name,
        args=args,
    )


def texts(app: CommunityApp) -> list[str]:
    return [getattr(item.action, "text", "") for item in app.store.outbox()]


async def test_a_newcomer_who_stays_pays_the_inviter_once_and_one_who_leaves_pays_nothing() -> None:
    app, clock = build()
    await app.feed([joined("ana", T0)])
    await app.feed([command("ana", "invite", at=T0 + timedelta(minutes=1))])
    await app.dispatcher.drain()
    code = referral_code("console:ana")
    link = f"https://t.example/+{code}"
    assert any(code in text for text in texts(app))
    made = [i.action for i in app.store.outbox() if isinstance(i.action, CreateInviteLink)]
    assert [(a.name, a.user, a.group) for a in made] == [(code, "ana", "main")]

    t1 = T0 + timedelta(hours=1)
    await app.feed([joined("bo", t1, invite=link), joined("cy", t1, invite=link)])
    state = app.engine.moderation.state("referral", "console:bo")
    assert state["inviter"] == "console:ana"
    assert state["status"] == "pending"
    ledger = app.engine.ledger
    assert (app.balance("console:ana"), ledger.pending_points("console:ana")) == (0, 100)
    await app.feed([say("bo", n, t1 + timedelta(days=n * 2)) for n in range(1, 4)])
    assert app.balance("console:ana") == 0  # 3 messages, but not 7 days yet
    await app.feed([left("cy", t1 + timedelta(days=2))])
    assert (app.balance("console:ana"), ledger.pending_points("console:ana")) == (0, 50)

    await app.engine.advance_to(t1 + timedelta(days=9), clock.set)
    assert (app.balance("console:ana"), ledger.pending_points("console:ana")) == (50, 0)
    kinds = [(e.kind.value, e.idempotency_key) for e in app.history("console:ana")]
    assert kinds == [
        ("pending", "referral:referral:console:bo"),
        ("pending", "referral:referral:console:cy"),
        ("cancellation", "referral:referral:console:cy:cancel"),
        ("credit", "referral:referral:console:bo:confirm"),
    ]
    assert app.engine.moderation.state("referral", "console:bo")["status"] == "confirmed"
    assert app.engine.moderation.state("referral", "console:cy")["status"] == "cancelled"
    refs = app.engine.moderation.state("referral", "console:ana")["refs"]
    assert {k: v["status"] for k, v in refs.items()} == {
        "console:bo": "confirmed",
        "console:cy": "cancelled",
    }
    # More messages and more days never pay again.
    await app.feed([say("bo", n, t1 + timedelta(days=9, hours=n)) for n in range(4, 7)])
    await app.engine.advance_to(t1 + timedelta(days=12), clock.set)
    assert app.balance("console:ana") == 50

    await app.feed([command("ana", "invite", "top", at=t1 + timedelta(days=12, minutes=1))])
    assert any("0 pending, 1 confirmed, 1 cancelled" in text for text in texts(app))


async def test_the_code_works_as_an_invite_and_can_be_claimed_within_the_hours() -> None:
    config = CONFIG + 'condition = "messages"\n'
    app, _clock = build(config)
    await app.feed([joined("ana", T0), command("ana", "invite", at=T0)])
    code = referral_code("console:ana")
    t1 = T0 + timedelta(hours=2)
    await app.feed([joined("bo", t1, invite=code), joined("cy", t1), joined("dan", t1)])
    await app.feed([command("cy", "joined_by", code.lower(), at=t1 + timedelta(hours=3))])
    await app.feed([command("dan", "joined_by", code, at=t1 + timedelta(hours=30))])
    states = {
        u: app.engine.moderation.state("referral", f"console:{u}") for u in ("bo", "cy", "dan")
    }
    assert states["bo"]["inviter"] == "console:ana"
    assert states["cy"]["inviter"] == "console:ana"
    assert "inviter" not in states["dan"]
    assert any("within 24 hours" in text for text in texts(app))
    # On messages alone: the third one confirms.
    await app.feed([say("bo", n, t1 + timedelta(hours=n)) for n in range(1, 4)])
    assert app.balance("console:ana") == 50
    await app.feed([say("cy", n, t1 + timedelta(hours=n + 4)) for n in range(1, 4)])
    assert app.balance("console:ana") == 100


async def test_no_reward_for_a_member_who_invites_themself_or_rejoins() -> None:
    config = CONFIG + 'condition = "messages"\nmin_messages = 1\n'
    app, clock = build(config)
    await app.feed([joined("ana", T0), command("ana", "invite", at=T0)])
    code = referral_code("console:ana")
    t1 = T0 + timedelta(hours=1)
    await app.feed([joined("bo", t1), say("bo", 1, t1), left("bo", t1 + timedelta(hours=1))])
    t2 = t1 + timedelta(hours=2)
    await app.feed([joined("bo", t2, invite=code), say("bo", 2, t2 + timedelta(minutes=1))])
    await app.feed([command("ana", "joined_by", code, at=t2)])
    await app.engine.advance_to(t2 + timedelta(days=2), clock.set)
    assert app.balance("console:ana") == 0
    assert "inviter" not in app.engine.moderation.state("referral", "console:ana")


async def test_the_second_level_reward_is_settled_with_the_first() -> None:
    config = CONFIG + 'condition = "messages"\nmin_messages = 1\nsecond_level = 10\n'
    app, _clock = build(config)
    ledger = app.engine.ledger
    await app.feed([joined("ana", T0), command("ana", "invite", at=T0)])
    t1 = T0 + timedelta(hours=1)
    await app.feed([joined("bo", t1, invite=referral_code("console:ana"))])
    await app.feed([command("bo", "invite", at=t1)])
    t2 = t1 + timedelta(hours=1)
    code = referral_code("console:bo")
    await app.feed([joined("cy", t2, invite=code), joined("dan", t2, invite=code)])
    assert ledger.pending_points("console:ana") == 50 + 10 + 10
    assert ledger.pending_points("console:bo") == 100
    await app.feed([say("cy", 1, t2 + timedelta(minutes=5))])  # cy stays: bo and ana earn
    await app.feed([left("dan", t2 + timedelta(minutes=6))])  # dan leaves: both cancelled
    assert (app.balance("console:bo"), ledger.pending_points("console:bo")) == (50, 0)
    assert (app.balance("console:ana"), ledger.pending_points("console:ana")) == (10, 50)
    await app.feed([say("bo", 1, t2 + timedelta(minutes=7))])
    assert (app.balance("console:ana"), ledger.pending_points("console:ana")) == (60, 0)


async def test_points_history_and_members_show_tell_pending_referral_points(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from communitykit.cli import main
    from communitykit.config import parse_config

    path = tmp_path / "community.toml"
    path.write_text(
        CONFIG.replace(
            'timezone = "America/New_York"',
            f'timezone = "America/New_York"\nstore = "sqlite:///{tmp_path}/r.db"',
        ),
        encoding="utf-8",
    )
    app = CommunityApp(
        parse_config(path.read_text(encoding="utf-8")),
        clock=SimulatedClock(T0),
        adapters={"console": ScriptedAdapter()},
    )
    app.open()
    await app.feed([joined("ana", T0), command("ana", "invite", at=T0)])
    await app.feed([joined("bo", T0, invite=referral_code("console:ana"))])
    app.close()
    assert main(["points", "history", str(path), "console:ana"]) == 0
    history = capsys.readouterr().out
    assert "pending" in history and "(50)" in history
    assert "balance 0; 50 pending" in history
    assert main(["members", "show", str(path), "console:ana"]) == 0
    assert re.search(r"pending points\s+50", capsys.readouterr().out)


def test_pure_numbers_and_leaderboard() -> None:
    states = [
        ("b", {"inviter": "a", "status": "pending"}),
        ("c", {"inviter": "a", "status": "pending"}),
        ("d", {"inviter": "e", "status": "cancelled"}),
        ("a", {"refs": {"b": {"status": "confirmed", "day": "2026-03-08"}}}),
        ("#code:RX", {"owner": "a"}),
    ]
    numbers = referral_numbers(states)
    assert (numbers["pending"], numbers["confirmed"], numbers["cancelled"]) == (1, 1, 1)
    assert numbers["inviters"]["a"]["confirmed"] == 1
    assert leaderboard(states, 5) == [("a", 1, 1)]


def test_settings_are_checked_and_named() -> None:
    campaign = ReferralCampaign.from_settings({"timezone": "Asia/Shanghai", "reward": 20})
    assert (campaign.reward, campaign.timezone, campaign.stay_days) == (20, "Asia/Shanghai", 7)
    with pytest.raises(ModelError, match="referral campaign: condition"):
        ReferralCampaign.from_settings({"condition": "sometimes"})
    with pytest.raises(ModelError, match="referral campaign"):
        ReferralCampaign.from_settings({"rewards": 5})
    with pytest.raises(ModelError, match="referral campaign: reply"):
        ReferralCampaign.from_settings({"reply": "{secret}"})
    with pytest.raises(ModelError, match="referral campaign: check_at"):
        ReferralCampaign.from_settings({"check_at": "25:00"})


def test_the_daily_check_is_at_noon_local_across_dst() -> None:
    campaign = ReferralCampaign.from_settings({"timezone": "America/New_York"})
    before = campaign.next_run(datetime(2026, 3, 7, 18, 0, tzinfo=UTC))
    after = campaign.next_run(datetime(2026, 3, 8, 18, 0, tzinfo=UTC))
    assert before == datetime(2026, 3, 8, 16, 0, tzinfo=UTC)  # EDT from 2026-03-08
    assert after == datetime(2026, 3, 9, 16, 0, tzinfo=UTC)
    assert campaign.next_run(datetime(2026, 3, 6, 12, 0, tzinfo=UTC)) == datetime(
        2026, 3, 6, 17, 0, tzinfo=UTC
    )


async def test_a_newcomer_added_by_a_member_is_attributed_to_them() -> None:
    config = CONFIG + 'condition = "messages"\nmin_messages = 1\n'
    app, _clock = build(config)
    await app.feed([joined("ana", T0)])
    added = MemberJoined(
        event_id="j-bo",
        platform="console",
        group="main",
        user="bo",
        at=T0 + timedelta(hours=1),
        added_by="ana",
    )
    await app.feed([added, say("bo", 1, T0 + timedelta(hours=2))])
    assert app.engine.moderation.state("referral", "console:bo")["via"] == "added"
    assert app.balance("console:ana") == 50


async def test_a_code_with_a_lowercase_prefix_is_found_in_any_case() -> None:
    config = CONFIG + 'code_prefix = "ref"\ncondition = "messages"\nmin_messages = 1\n'
    app, _clock = build(config)
    await app.feed([joined("ana", T0), command("ana", "invite", at=T0)])
    code = referral_code("console:ana", "ref")
    assert code.startswith("ref")
    await app.feed([joined("bo", T0 + timedelta(hours=1), invite=code.upper())])
    await app.feed([say("bo", 1, T0 + timedelta(hours=2))])
    assert app.balance("console:ana") == 50


async def test_a_confirmed_reward_expires_counting_from_its_confirmation() -> None:
    config = (
        CONFIG.replace("[[campaigns]]", "[points]\nexpire_after_days = 5\n\n[[campaigns]]")
        + 'condition = "days"\nstay_days = 7\n'
    )
    app, clock = build(config)
    await app.feed([joined("ana", T0), command("ana", "invite", at=T0)])
    t1 = T0 + timedelta(hours=1)
    await app.feed([joined("bo", t1, invite=referral_code("console:ana"))])
    # confirmed at the daily check after 7 days, though points expire after 5
    await app.engine.advance_to(t1 + timedelta(days=8), clock.set)
    assert app.balance("console:ana") == 50
    (credit,) = [e for e in app.history("console:ana") if e.kind.value == "credit"]
    assert credit.expires_at == credit.at + timedelta(days=5)
    await app.engine.advance_to(credit.at + timedelta(days=5, minutes=1), clock.set)
    assert app.balance("console:ana") == 0


async def test_a_referral_remembered_from_before_pending_rewards_is_paid_once_when_confirmed() -> (
    None
):
    """State kept by a version that paid only at confirmation has no pending credit:
    the confirmation credits the reward itself, once."""
    app, clock = build()
    await app.feed([joined("ana", T0), joined("bo", T0 + timedelta(hours=1))])
    at = (T0 + timedelta(hours=1)).isoformat()
    app.engine.moderation.states.setdefault("referral", {})["console:bo"] = {
        "inviter": "console:ana",
        "at": at,
        "status": "pending",
        "joined": at,
    }
    ledger = app.engine.ledger
    assert (app.balance("console:ana"), ledger.pending_points("console:ana")) == (0, 0)
    t1 = T0 + timedelta(hours=1)
    await app.feed([say("bo", n, t1 + timedelta(days=n * 2)) for n in range(1, 4)])
    await app.engine.advance_to(t1 + timedelta(days=9), clock.set)
    assert app.balance("console:ana") == 50
    assert [(e.kind.value, e.idempotency_key) for e in app.history("console:ana")] == [
        ("credit", "referral:referral:console:bo")
    ]
    await app.engine.advance_to(t1 + timedelta(days=12), clock.set)
    assert app.balance("console:ana") == 50
    assert app.engine.moderation.state("referral", "console:bo")["status"] == "confirmed"
