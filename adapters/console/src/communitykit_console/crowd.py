"""A deterministic crowd: simulated members living on a :class:`ConsolePlatform`.

``Crowd(platform, members=500, seed=7)`` invents the members of a community and
:meth:`Crowd.run_day` plays one day of their life through the platform's driver
methods, in time order, moving the clock to each moment before acting::

    clock = ManualClock(start)
    platform = ConsolePlatform(clock=clock)
    crowd = Crowd(platform, members=500, seed=7)
    for day in range(30):
        await crowd.run_day(start + timedelta(days=day), clock.set)

What it plays, shaped like real chat groups:

* members join over the first week: a founding quarter on the first morning,
  the rest fewer each day, some through another member's invite link, some added
  by a member, a few asking to join with answers to the entry questions;
* activity is heavy-tailed: a few members post a lot, many hardly ever, and a
  large share only reads; some fall silent after a while and a few come back;
* messages peak at lunch and in the evening, some with photos or stickers, some
  replying to recent messages, a few with a link; newcomers introduce themselves;
* members react to each other's messages (popular authors get more), edit a
  message now and then, check in with ``/checkin`` in the morning, start the bot
  (``/start`` in a direct message), a few pay for a membership and a few leave.

The same seed gives exactly the same events. When an engine connected to the
platform acts (removes a member, approves a request, mutes someone), the crowd
follows the platform: it never makes a removed member speak, and a member whose
request was approved starts taking part the next day.
"""

from __future__ import annotations

import bisect
import enum
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from communitykit import Media
from communitykit_console._platform import ConsolePlatform
from communitykit_console._state import check_aware

__all__ = ["Crowd"]

_DAY = timedelta(days=1)
#: how busy each hour of the day is (lunch and evening peaks, quiet nights)
_HOURS = (1.0, 0.5, 0.3, 0.2, 0.2, 0.4, 1.0, 2.5, 4.0, 4.0, 3.5, 3.5,
          5.0, 4.5, 3.0, 3.0, 3.0, 3.5, 4.5, 6.0, 6.5, 6.0, 4.5, 2.5)  # fmt: skip
_HOUR_CUM = tuple(sum(_HOURS[: i + 1]) for i in range(24))
#: share of members who join on each of the first days (after the founders)
_JOIN_DAYS = (0.28, 0.22, 0.16, 0.12, 0.10, 0.07, 0.05)

_FIRST = (
    "Alice", "Bo", "Chen", "Dana", "Emeka", "Fatima", "Gustav", "Hana", "Ivan", "Jia",
    "Kofi", "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tomoko",
    "Uma", "Victor", "Wei", "Ximena", "Yusuf", "Zoe", "Amara", "Bruno", "Chloe", "Diego",
    "Elif", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam", "Mei", "Noah",
)  # fmt: skip
_THINGS = (
    "the reading list", "today's task", "the new course", "the weekend meetup",
    "the practice plan", "the book club pick", "the live session", "the study guide",
    "the morning routine", "the last workshop", "the group challenge", "the podcast episode",
)  # fmt: skip
_CHAT = (
    "Has anyone tried {thing}?",
    "Just finished {thing}, really enjoyed it",
    "What do you all think about {thing}?",
    "Sharing my notes on {thing} later today",
    "Quick question about {thing}: where do I start?",
    "Thanks for the tips yesterday!",
    "This group is great 🙌",
    "Anyone up for {thing} this week?",
    "I'm a bit behind on {thing}, any advice?",
    "Day {day} and still going strong 💪",
    "Good morning everyone!",
    "Evening all, how did {thing} go?",
    "Reminder to myself: finish {thing}",
    "Loved the discussion about {thing}",
)
_REPLIES = (
    "Totally agree",
    "Good point!",
    "Thanks, that helps a lot",
    "I had the same question",
    "+1",
    "Could you share more about that?",
    "Same here 😂",
    "Congrats!",
    "I'd recommend starting small",
)
_INTROS = (
    "Hi everyone, I'm {name}! Happy to be here 👋",
    "Hello! {name} here, looking forward to learning with you all",
    "Hey all, {name} from the newsletter. Excited to join",
)
_CAPTIONS = ("My setup today", "Look what arrived!", "", "Today's progress 📷", "")
_LINKS = (
    "Check this out https://example.com/deal-{n}",
    "Free course here: https://example.org/c/{n}",
)
_EMOJI = ("👍", "❤️", "😂", "🎉", "🔥", "👏", "🙏")
_QUESTIONS = {
    "How did you find us?": ("a friend", "a search", "a post online", "a talk"),
    "What do you hope to get from the group?": (
        "practice partners",
        "motivation",
        "to learn from others",
        "a weekly routine",
    ),
}


class _Route(enum.Enum):
    FOUNDER = "founder"
    PLAIN = "plain"
    LINK = "link"
    ADDED = "added"
    REQUEST = "request"


class _State(enum.Enum):
    WAITING = "waiting"  # not joined yet
    REQUESTED = "requested"  # asked to join, not approved yet
    MEMBER = "member"
    GONE = "gone"  # left, removed, or declined


@dataclass
class _Person:
    user: str
    name: str
    group: str
    activity: float  # messages on an active day, on average
    checkin: float  # chance of a morning check-in
    join_day: int
    route: _Route
    starts_bot: bool
    introduces: bool
    silent_from: int | None = None
    back_from: int | None = None
    leave_day: int | None = None
    pay_day: int | None = None
    state: _State = _State.WAITING
    started_bot: bool = False

    def silent_on(self, day: int) -> bool:
        if self.silent_from is None or day < self.silent_from:
            return False
        return self.back_from is None or day < self.back_from


_Step = Callable[[], Awaitable[bool]]


@dataclass(order=True)
class _Item:
    at: datetime
    seq: int
    step: _Step = field(compare=False)


class _Day:
    """The plan of one day: items in time order, and ids of what was posted."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.end = start + _DAY
        self.items: list[_Item] = []
        self.posted: dict[int, str] = {}  # planned post number → message id
        self._seq = 0

    def add(self, at: datetime, step: _Step) -> None:
        self._seq += 1
        self.items.append(_Item(at.replace(microsecond=0), self._seq, step))


@dataclass
class _Post:
    number: int
    person: _Person
    at: datetime
    text: str
    media: Media | None
    reply_to: int | None = None


class Crowd:
    """``members`` simulated members of ``groups`` on ``platform``, from ``seed``.

    Groups the platform does not have yet are created. Member ``i`` has the user
    id ``u0001``-style :attr:`members` ``[i]`` and belongs to one of the groups.
    """

    def __init__(
        self,
        platform: ConsolePlatform,
        members: int = 500,
        seed: int = 7,
        groups: Sequence[str] = ("main",),
    ) -> None:
        if isinstance(groups, str):
            groups = (groups,)
        if members < 1:
            raise ValueError(f"a crowd needs at least one member, got {members}")
        if not groups:
            raise ValueError("a crowd needs at least one group")
        self.platform = platform
        self.seed = seed
        self.groups = tuple(groups)
        #: the number of days played so far (the next :meth:`run_day` plays this one)
        self.day = 0
        self._pending_intros: list[tuple[_Person, datetime, str]] = []
        for group in self.groups:
            if group not in platform.groups:
                platform.add_group(group)
        rng = random.Random(f"communitykit-crowd:{seed}")
        width = max(4, len(str(members)))
        self._people = [self._invent(rng, index, width) for index in range(members)]

    @property
    def members(self) -> tuple[str, ...]:
        """The user ids of the crowd (members or not yet), in a fixed order."""
        return tuple(person.user for person in self._people)

    def _invent(self, rng: random.Random, index: int, width: int) -> _Person:
        first = rng.choice(_FIRST)
        name = f"{first} {chr(ord('A') + rng.randrange(26))}."
        founder = rng.random() < 0.25
        if founder:
            join_day, route = 0, _Route.FOUNDER
        else:
            join_day = rng.choices(range(len(_JOIN_DAYS)), weights=_JOIN_DAYS)[0]
            route = rng.choices(
                (_Route.PLAIN, _Route.LINK, _Route.ADDED, _Route.REQUEST),
                weights=(0.56, 0.30, 0.08, 0.06),
            )[0]
        # heavy tail: Pareto activity, and a large share of readers who rarely post
        weight = rng.paretovariate(1.3)
        reader = rng.random() < 0.4
        activity = min(40.0, 0.45 * weight * (0.06 if reader else 1.0))
        checkin = 0.03 if reader else min(0.85, 0.12 + 0.12 * weight)
        person = _Person(
            user=f"u{index + 1:0{width}d}",
            name=name,
            group=self.groups[rng.randrange(len(self.groups))],
            activity=activity,
            checkin=checkin,
            join_day=join_day,
            route=route,
            starts_bot=rng.random() < 0.55,
            introduces=rng.random() < 0.5,
        )
        if rng.random() < 0.3:
            person.silent_from = join_day + 2 + int(rng.expovariate(1 / 6))
            if rng.random() < 0.25:
                person.back_from = person.silent_from + 3 + int(rng.expovariate(1 / 4))
        if rng.random() < 0.04:
            person.leave_day = join_day + 1 + int(rng.expovariate(1 / 8))
        if rng.random() < 0.03:
            person.pay_day = join_day + rng.randrange(10)
        return person

    # ------------------------------------------------------------------ playing a day

    async def run_day(self, day_start: datetime, set_clock: Callable[[datetime], None]) -> int:
        """Play one day from ``day_start`` (its midnight); return how many events it produced.

        ``set_clock`` moves the platform's clock; it is called with each event's
        time before the event is triggered, so events carry increasing ``at``.
        """
        check_aware(day_start, "the start of a crowd's day")
        day = self.day
        self.day += 1
        self._follow_platform()
        rng = random.Random(f"communitykit-crowd:{self.seed}:{day}")
        plan = _Day(day_start)
        self._plan_day(rng, day, plan)
        produced = 0
        for item in sorted(plan.items):
            set_clock(item.at)
            if await item.step():
                produced += 1
        return produced

    def _follow_platform(self) -> None:
        """Take in what the platform decided: removals, approvals, declines."""
        platform = self.platform
        for person in self._people:
            member = platform.is_member(person.user, person.group)
            if person.state is _State.MEMBER and not member:
                person.state = _State.GONE
            elif person.state is _State.REQUESTED:
                if member:
                    person.state = _State.MEMBER
                elif (person.group, person.user) not in platform.join_requests:
                    person.state = _State.GONE

    def _plan_day(self, rng: random.Random, day: int, plan: _Day) -> None:
        joining = [p for p in self._people if p.state is _State.WAITING and p.join_day <= day]
        present = [p for p in self._people if p.state is _State.MEMBER]
        # who may bring others in today: members, and on the first day the founders
        sponsors: dict[str, list[_Person]] = {group: [] for group in self.groups}
        for person in present:
            sponsors[person.group].append(person)
        if day == 0:
            for person in joining:
                if person.route is _Route.FOUNDER:
                    sponsors[person.group].append(person)

        windows: dict[str, tuple[datetime, datetime]] = {}
        for person in joining:
            at = self._plan_join(rng, day, plan, person, sponsors[person.group])
            if person.route is not _Route.REQUEST:
                windows[person.user] = (at, plan.end)
        for person in present:
            windows[person.user] = (plan.start, plan.end)

        talkers = [p for p in self._people if p.user in windows]
        for person in talkers:
            start, end = windows[person.user]
            if person.leave_day is not None and person.leave_day <= day:
                leave_at = _between(rng, max(start, plan.start + timedelta(hours=8)), end)
                if leave_at is not None:
                    end = leave_at
                    windows[person.user] = (start, end)
                    plan.add(leave_at, self._leave(person))
            if person.starts_bot and not person.started_bot:
                at = start + timedelta(minutes=rng.uniform(2, 60))
                if at < end:
                    plan.add(at, self._start_bot(person))
            if person.pay_day is not None and person.pay_day <= day:
                paid_at = _between(rng, start, end)
                if paid_at is not None:
                    plan.add(paid_at, self._pay(person, paid_at))

        posts = self._plan_posts(rng, day, plan, talkers, windows)
        self._plan_replies(rng, posts)
        for post in posts:
            plan.add(post.at, self._post(plan, post))
        self._plan_reactions(rng, day, plan, posts, talkers, windows)
        self._plan_edits(rng, plan, posts)

    def _plan_join(
        self,
        rng: random.Random,
        day: int,
        plan: _Day,
        person: _Person,
        sponsors: list[_Person],
    ) -> datetime:
        if person.route is _Route.FOUNDER:
            at = plan.start + timedelta(hours=9, seconds=rng.uniform(0, 2 * 3600))
        else:
            earliest = plan.start + timedelta(hours=11 if day == 0 else 0)
            at = _hour_time(rng, plan.start)
            while at < earliest:
                at = _hour_time(rng, plan.start)
        sponsor: _Person | None = None
        if person.route in (_Route.LINK, _Route.ADDED) and sponsors:
            weights = [s.activity + 0.2 for s in sponsors]
            sponsor = rng.choices(sponsors, weights=weights)[0]
        if person.route is _Route.REQUEST:
            answers = {q: rng.choice(options) for q, options in _QUESTIONS.items()}
            plan.add(at, self._request(person, answers))
            person.state = _State.REQUESTED
        else:
            plan.add(at, self._join(person, sponsor))
            person.state = _State.MEMBER
            if person.introduces:
                intro = rng.choice(_INTROS).format(name=person.name.split()[0])
                # planned as a post so others can reply and react to it
                person_intro = at + timedelta(seconds=rng.uniform(30, 1800))
                self._pending_intros.append((person, person_intro, intro))
        return at

    def _plan_posts(
        self,
        rng: random.Random,
        day: int,
        plan: _Day,
        talkers: list[_Person],
        windows: dict[str, tuple[datetime, datetime]],
    ) -> list[_Post]:
        posts: list[_Post] = []
        for person, at, text in self._pending_intros:
            if at < windows[person.user][1]:
                posts.append(_Post(0, person, at, text, None))
        self._pending_intros = []
        for person in talkers:
            start, end = windows[person.user]
            if person.silent_on(day):
                continue
            if rng.random() < person.checkin:
                at = plan.start + timedelta(hours=6.5, seconds=rng.uniform(0, 3.5 * 3600))
                if start <= at < end:
                    plan.add(at, self._checkin(person))
            for _ in range(_poisson(rng, person.activity)):
                at = _hour_time(rng, plan.start)
                if not start <= at < end:
                    continue
                text, media = _message(rng, day)
                posts.append(_Post(0, person, at, text, media))
        posts.sort(key=lambda p: (p.at, p.person.user))
        for number, post in enumerate(posts, start=1):
            post.number = number
        return posts

    def _plan_replies(self, rng: random.Random, posts: list[_Post]) -> None:
        recent: dict[str, list[_Post]] = {}
        for post in posts:
            earlier = [
                p
                for p in recent.get(post.person.group, [])[-30:]
                if p.person is not post.person and p.at < post.at
            ]
            if earlier and post.media is None and rng.random() < 0.22:
                post.reply_to = rng.choice(earlier[-15:]).number
                post.text = rng.choice(_REPLIES)
            recent.setdefault(post.person.group, []).append(post)

    def _plan_reactions(
        self,
        rng: random.Random,
        day: int,
        plan: _Day,
        posts: list[_Post],
        talkers: list[_Person],
        windows: dict[str, tuple[datetime, datetime]],
    ) -> None:
        crowds: dict[str, tuple[list[_Person], list[float]]] = {}
        for group in self.groups:
            people = [p for p in talkers if p.group == group and not p.silent_on(day)]
            total, cumulative = 0.0, []
            for p in people:
                total += p.activity + 0.3
                cumulative.append(total)
            crowds[group] = (people, cumulative)
        for post in posts:
            people, cumulative = crowds[post.person.group]
            if not people:
                continue
            popularity = min(3.0, math.sqrt(post.person.activity))
            chosen: list[_Person] = []
            for _ in range(_poisson(rng, 0.3 + 0.5 * popularity)):
                pick = bisect.bisect(cumulative, rng.uniform(0, cumulative[-1]))
                fan = people[min(pick, len(people) - 1)]
                if fan is post.person or fan in chosen:
                    continue
                at = post.at + timedelta(seconds=30 + rng.expovariate(1 / 900))
                start, end = windows[fan.user]
                if not start <= at < end:
                    continue
                chosen.append(fan)
                plan.add(at, self._react(plan, fan, post, rng.choice(_EMOJI)))

    def _plan_edits(self, rng: random.Random, plan: _Day, posts: list[_Post]) -> None:
        for post in posts:
            if post.text and rng.random() < 0.03:
                at = post.at + timedelta(seconds=rng.uniform(20, 600))
                if at < plan.end:
                    plan.add(at, self._edit(plan, post, post.text + " (edited: fixed a typo)"))

    # ------------------------------------------------------------------ the steps

    def _join(self, person: _Person, sponsor: _Person | None) -> _Step:
        async def step() -> bool:
            platform = self.platform
            user, group = person.user, person.group
            if platform.is_member(user, group) or platform.is_banned(user, group):
                return False
            invite: str | None = None
            added_by: str | None = None
            if sponsor is not None and platform.is_member(sponsor.user, group):
                if person.route is _Route.LINK:
                    invite = self._link_of(sponsor)
                else:
                    added_by = sponsor.user
            await platform.join(
                user, group, display_name=person.name, invite=invite, added_by=added_by
            )
            return True

        return step

    def _link_of(self, sponsor: _Person) -> str:
        """The sponsor's invite link: one made for them (by the bot) or their own."""
        for link in self.platform.invite_links.values():
            if link.group == sponsor.group and link.creator == sponsor.user:
                return link.link
        made = self.platform.create_invite_link(
            sponsor.group, f"from-{sponsor.user}", creator=sponsor.user
        )
        return made.link

    def _request(self, person: _Person, answers: dict[str, str]) -> _Step:
        async def step() -> bool:
            platform = self.platform
            user, group = person.user, person.group
            if (
                platform.is_member(user, group)
                or platform.is_banned(user, group)
                or (group, user) in platform.join_requests
            ):
                return False
            platform.add_user(user, person.name)
            await platform.request_join(user, group, answers)
            return True

        return step

    def _leave(self, person: _Person) -> _Step:
        async def step() -> bool:
            person.state = _State.GONE
            if not self.platform.is_member(person.user, person.group):
                return False
            await self.platform.leave(person.user, person.group)
            return True

        return step

    def _start_bot(self, person: _Person) -> _Step:
        async def step() -> bool:
            person.started_bot = True
            await self.platform.command(person.user, None, "start")
            return True

        return step

    def _pay(self, person: _Person, at: datetime) -> _Step:
        async def step() -> bool:
            person.pay_day = None
            valid_until = (at + timedelta(days=365)).date()
            await self.platform.pay(person.user, "99.00", "CNY", valid_until)
            return True

        return step

    def _checkin(self, person: _Person) -> _Step:
        async def step() -> bool:
            if not self.platform.can_post(person.user, person.group):
                return False
            await self.platform.command(person.user, person.group, "checkin")
            return True

        return step

    def _post(self, plan: _Day, post: _Post) -> _Step:
        async def step() -> bool:
            platform = self.platform
            user, group = post.person.user, post.person.group
            if not platform.can_post(user, group):
                return False
            reply_to = None if post.reply_to is None else plan.posted.get(post.reply_to)
            if reply_to is not None and platform.messages[reply_to].deleted:
                reply_to = None
            plan.posted[post.number] = await platform.post(
                user, group, post.text, reply_to=reply_to, media=post.media
            )
            return True

        return step

    def _react(self, plan: _Day, fan: _Person, post: _Post, emoji: str) -> _Step:
        async def step() -> bool:
            platform = self.platform
            message_id = plan.posted.get(post.number)
            if message_id is None or platform.messages[message_id].deleted:
                return False
            group = post.person.group
            if not platform.is_member(fan.user, group) or platform.is_banned(fan.user, group):
                return False
            await platform.react(fan.user, group, message_id, emoji)
            return True

        return step

    def _edit(self, plan: _Day, post: _Post, text: str) -> _Step:
        async def step() -> bool:
            platform = self.platform
            message_id = plan.posted.get(post.number)
            user, group = post.person.user, post.person.group
            if message_id is None or platform.messages[message_id].deleted:
                return False
            if not platform.can_post(user, group):
                return False
            await platform.edit(user, group, message_id, text)
            return True

        return step


# ---------------------------------------------------------------------- randomness


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; the means here are small)."""
    if mean <= 0:
        return 0
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _hour_time(rng: random.Random, day_start: datetime) -> datetime:
    """A moment of the day, more likely when groups are busy."""
    hour = bisect.bisect(_HOUR_CUM, rng.uniform(0, _HOUR_CUM[-1]))
    return day_start + timedelta(hours=min(hour, 23), seconds=rng.uniform(0, 3599))


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime | None:
    if end <= start:
        return None
    return start + (end - start) * rng.random()


def _message(rng: random.Random, day: int) -> tuple[str, Media | None]:
    roll = rng.random()
    if roll < 0.10:
        return rng.choice(_CAPTIONS), Media.PHOTO
    if roll < 0.12:
        return "", Media.STICKER
    if roll < 0.13:
        return rng.choice(_LINKS).format(n=rng.randrange(1000)), None
    template = rng.choice(_CHAT)
    return template.format(thing=rng.choice(_THINGS), day=day + 1), None
