"""A daily check-in bot (打卡) on the console platform, using only the public API.

Members type ``/checkin`` once a day for 5 points; a second check-in on the same
day gets a polite answer and nothing else. ``/points`` answers with the balance.
Three simulated days in a console group, then the transcript is printed.

Run it:  python examples/checkin_bot.py
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from communitykit_console import ConsoleAdapter, ConsolePlatform

from communitykit import (
    AwardPoints,
    CommandInvoked,
    CommunityApp,
    Decision,
    RuleContext,
    SendMessage,
    SimulatedClock,
    parse_config,
)

CONFIG = """
[community]
name = "Morning runners"
purpose = "People who run before work"
timezone = "Asia/Shanghai"
store = "memory://"

[[groups]]
key = "main"
platform = "console"
id = "main"
title = "Morning runners"

[points]
message = 1
"""

POINTS = 5


class CheckIn:
    """``/checkin`` once per community day; ``/points`` shows the balance."""

    name = "checkin"

    def evaluate(self, ctx: RuleContext) -> Decision | None:
        event = ctx.event
        if not isinstance(event, CommandInvoked):
            return None
        who = ctx.member.display_name or event.user
        if event.command == "points":
            return self._reply(ctx, "balance", f"{who}: {ctx.balance} points")
        if event.command != "checkin":
            return None
        day = event.at.astimezone(ctx.community.tz).date()
        key = f"checkin:{ctx.member.member_id}:{day.isoformat()}"
        if ctx.already_awarded(key):
            return self._reply(
                ctx, "again", f"{who}, you already checked in today. See you tomorrow!"
            )
        reply = self._reply(
            ctx, "welcome", f"✅ {who} checked in for {day:%b %d}: +{POINTS} points"
        )
        award = AwardPoints(member=ctx.member.member_id, points=POINTS, reason="checkin", key=key)
        return Decision(
            source=reply.source,
            explanation=reply.explanation,
            awards=[award],
            actions=reply.actions,
        )

    def _reply(self, ctx: RuleContext, why: str, text: str) -> Decision:
        action = ctx.action(SendMessage, f"rule:{self.name}", why, text=text)
        return Decision(source=f"rule:{self.name}", explanation=why, actions=[action])


async def main() -> list[str]:
    """Run three days and return the group transcript."""
    start = datetime(2026, 3, 2, 6, 30, tzinfo=timezone(timedelta(hours=8)))
    clock = SimulatedClock(start)
    platform = ConsolePlatform(clock=clock.now, groups={"main": "Morning runners"})
    adapter = ConsoleAdapter(platform)
    app = CommunityApp(
        parse_config(CONFIG), clock=clock, adapters={"console": adapter}, rules=[CheckIn()]
    )
    async with app:
        for user, name in (("41", "Lin"), ("42", "Sam")):
            await platform.join(user, "main", display_name=name)
        for day in range(3):
            clock.set(start + timedelta(days=day))
            await platform.command("41", "main", "checkin")
            clock.set(start + timedelta(days=day, minutes=20))
            await platform.post("41", "main", "8 km today, legs are fine")
            await platform.command("41", "main", "checkin")  # once a day is enough
            if day != 1:  # Sam skips a day
                await platform.command("42", "main", "checkin")
            await app.deliver()
        await platform.command("41", "main", "points")
        await app.deliver()
    return list(platform.transcript)


if __name__ == "__main__":
    for line in asyncio.run(main()):
        print(line)
