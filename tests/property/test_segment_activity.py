"""Activity counted for segments agrees with a naive count over the raw events."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from communitykit import MemberJoined, MessagePosted, ReactionAdded
from communitykit._segments import count_activity
from communitykit.model._segments import Period
from communitykit.testing import memory_app

T0 = datetime(2026, 3, 1, tzinfo=UTC)
USERS = ["a", "b", "c"]

moves = st.lists(
    st.tuples(
        st.sampled_from(["post", "post", "reply", "react"]),
        st.sampled_from(USERS),
        st.sampled_from(USERS),  # whom a reaction is for
        st.integers(0, 30),  # which earlier message a reply or reaction is about
        st.sampled_from([None, "photo", "video"]),
        st.integers(1, 60),  # hours after the previous event
    ),
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(moves, st.integers(1, 20), st.integers(0, 48))
def test_activity_in_a_period_agrees_with_a_naive_count_over_the_raw_events(
    script: list[tuple[str, str, str, int, str | None, int]], days: int, idle_hours: int
) -> None:
    events: list[Any] = [
        MemberJoined(event_id=f"j{u}", platform="console", user=u, at=T0) for u in USERS
    ]
    at = T0
    posted: list[tuple[str, str, datetime]] = []  # message id, author, when
    for n, (kind, user, target, which, media, hours) in enumerate(script):
        at += timedelta(hours=hours)
        if kind == "react":
            message = posted[which % len(posted)][0] if posted else "none"
            events.append(
                ReactionAdded(
                    event_id=f"r{n}",
                    platform="console",
                    user=user,
                    at=at,
                    message_id=message,
                    emoji="+",
                    to_user=target,
                )
            )
            continue
        reply_to = posted[which % len(posted)][0] if kind == "reply" and posted else None
        events.append(
            MessagePosted(
                event_id=f"m{n}",
                platform="console",
                user=user,
                at=at,
                message_id=f"msg{n}",
                text="x",
                reply_to=reply_to,
                media=media,
            )
        )
        posted.append((f"msg{n}", user, at))
    now = at + timedelta(hours=idle_hours)
    start = now - timedelta(days=days)

    async def run() -> dict[str, Any]:
        app, _ = memory_app(start=T0)
        app.open(with_adapters=False)
        await app.feed(events)
        period = Period(days=days)
        found = count_activity(app.store, app.engine.graph, [period], now, UTC)[period]
        return {m: (a.messages, dict(a.media), a.replies, a.reactions) for m, a in found.items()}

    counted = asyncio.run(run())

    messages: Counter[str] = Counter()
    media: dict[str, Counter[str]] = {}
    replies: Counter[str] = Counter()
    reactions: Counter[str] = Counter()
    author_of = {}
    for event in events:
        if not start <= event.at <= now:
            continue
        if isinstance(event, MessagePosted):
            author_of[event.message_id] = event.user
            messages[event.user] += 1
            if event.media is not None:
                media.setdefault(event.user, Counter())[event.media.value] += 1
            answered = author_of.get(event.reply_to) if event.reply_to else None
            if answered is not None and answered != event.user:
                replies[answered] += 1
        elif isinstance(event, ReactionAdded) and event.to_user != event.user:
            reactions[str(event.to_user)] += 1
    naive = {
        f"console:{user}": (
            messages[user],
            dict(media.get(user, {})),
            replies[user],
            reactions[user],
        )
        for user in set(messages) | set(replies) | set(reactions)
    }
    assert counted == naive
