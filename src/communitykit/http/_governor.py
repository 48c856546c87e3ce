"""The governor: sends every request at the earliest moment all its buckets allow.

Each key (``("bot", id)``, ``("chat", 42)``) is a bucket with a burst of one:
requests through it are spaced by its interval, ``period / (limit * (1 - margin))``
— a GCRA "next allowed time" per key. A request names all the keys it
consumes and is granted only when every one is free; the grant consumes them
all at once, at one instant. Nothing is reserved while waiting: a request
blocked by its chat does not hold the bot's bucket, so other chats use it
meanwhile.

Order: among requests that could take a bucket's free slot, the higher
priority goes first, then the earlier. Requests to one target (a chat) go out
one at a time in (priority, arrival) order, retries included: a request holds
its targets from its first grant until it is done.

How it runs: keys of shared kinds (a bot's lane, Discord's global limit: few
keys, many requests each) form "lanes"; every other key (a chat, a Discord
bucket) has a line of its waiting requests. A request first in all its lines (a
"head") is filed in its lane, in one of two heaps: ready (its line keys are
free) ordered by priority and arrival, or later (one of them is busy) ordered
by the time they free up. A dispatch takes, among lanes whose keys are all free
now, the best ready head, grants it and repeats; then one timer task sleeps
until the next moment anything can go. A dispatch costs O(lanes + log
waiting): a handful of lanes, so ten thousand queued broadcast messages cost
nothing while they wait.

Timing: a dispatch wakes the request's task and reserves its keys; the slot is
consumed when the task runs and claims it, right before it sends — so an event
loop that resumes the task late cannot squeeze two sends together. A claim
late by at most a tolerance (a quarter of the margin of the key's period) is
booked at its scheduled moment, so timer lateness does not accumulate into
lost throughput; later than that (idle buckets, a stall) it is booked at
``now``, so idle time never becomes a burst. Booked moments of one key are at
least one interval apart and each send follows its booked moment by at most
the tolerance, so with ``interval = period / (limit * (1 - margin))`` no window
of one period holds more than ``limit`` sends, with room to spare for network
jitter of about ``margin * period / 3``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

import structlog

from communitykit.http._limits import GlobalScope, Key, Limits, Priority, RateLimit
from communitykit.http._redact import redact_text

__all__ = ["Governor", "Lease"]

log = structlog.get_logger(__name__)

_WAITING: Final = 0  # in line
_WOKEN: Final = 1  # its keys are reserved for it; its task has yet to claim them
_GRANTED: Final = 2  # claimed: it is being sent
_GONE: Final = 3  # withdrawn (cancelled, rejected)

_NEVER = -math.inf
_PRUNE_EVERY = 4096


class _Ticket:
    """One wait for a slot (a lease has at most one at a time)."""

    __slots__ = ("future", "lease", "ready", "state", "uid", "version")

    def __init__(self, lease: Lease, future: asyncio.Future[None], uid: int) -> None:
        self.lease = lease
        self.future = future
        self.uid = uid
        self.state = _WAITING
        self.version = -1
        self.ready = _NEVER

    @property
    def order(self) -> tuple[int, int]:
        """Its rank among waiting tickets: priority, then arrival."""
        return (-self.lease.priority, self.lease.seq)


# heap entries: the ticket's order, a version (stale entries are skipped), the ticket
_Ready = tuple[int, int, int, _Ticket]
_Later = tuple[float, int, int, int, _Ticket]


class _Lane:
    """The heads that consume the same shared keys."""

    __slots__ = ("keys", "later", "ready")

    def __init__(self, keys: frozenset[Key]) -> None:
        self.keys = keys
        self.ready: list[_Ready] = []
        self.later: list[_Later] = []


def _live(ticket: _Ticket, version: int) -> bool:
    return ticket.state == _WAITING and ticket.version == version


class Lease:
    """A place in line for one request: :meth:`acquire` a slot for each attempt.

    While a lease is open, after its first grant, it holds its targets: no other
    request to them is granted, so a retry keeps its place. Close it (``async
    with``) when the request is done.
    """

    __slots__ = (
        "_governor",
        "_held",
        "_ticket",
        "keys",
        "lane",
        "lines",
        "priority",
        "seq",
        "targets",
    )

    def __init__(
        self, governor: Governor, keys: tuple[Key, ...], priority: Priority, seq: int
    ) -> None:
        limits = governor.limits
        self._governor = governor
        self.keys = keys
        #: the keys of target kinds (held from the first grant until released)
        self.targets = tuple(key for key in keys if limits.is_target(key))
        #: the keys with a line of their own (targets and the other unshared keys)
        self.lines = tuple(key for key in keys if not limits.is_shared(key))
        #: the shared keys
        self.lane = frozenset(key for key in keys if limits.is_shared(key))
        self.priority = priority
        self.seq = seq
        self._ticket: _Ticket | None = None
        self._held: list[Key] = []

    async def acquire(self) -> float:
        """Wait for a slot in every bucket and consume them; returns the time it did.

        Send right after it returns: the slot is consumed at that moment.
        """
        if self._ticket is not None:
            raise RuntimeError("this lease is already waiting for a slot")
        ticket = self._governor._enqueue(self)
        try:
            await ticket.future
        except asyncio.CancelledError:
            self._governor._abandon(ticket)
            raise
        return self._governor._claim(ticket)

    def release(self) -> None:
        """Give up the place in line and the held targets (idempotent)."""
        self._governor._release(self)

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Lease({self.keys!r}, {self.priority.name})"


class Governor:
    """Paces requests over the buckets of a :class:`Limits` profile.

    ``monotonic`` and ``sleep`` are the clock and the way to wait for it; tests
    pass a virtual clock so nothing really sleeps.
    """

    def __init__(
        self,
        limits: Limits,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._limits = limits
        self._monotonic = monotonic
        self._sleep = sleep
        self._factor = 1.0 / (1.0 - limits.margin)
        self._rates: dict[Key, RateLimit | None] = {}
        self._next: dict[Key, float] = {}
        self._last: dict[Key, float] = {}
        self._paused: dict[Key, float] = {}
        self._reserved: dict[Key, _Ticket] = {}
        self._global_pause = _NEVER
        self._queues: dict[Key, list[tuple[int, int, int, int, _Ticket]]] = {}
        self._holders: dict[Key, Lease] = {}
        self._lanes: dict[frozenset[Key], _Lane] = {}
        self._waiting: dict[_Ticket, None] = {}
        self._seq = itertools.count()
        self._uids = itertools.count()
        self._versions = itertools.count()
        self._timer: asyncio.Task[None] | None = None
        self._timer_at = math.inf
        self._grants = 0

    # -- public --------------------------------------------------------------

    @property
    def limits(self) -> Limits:
        return self._limits

    @property
    def waiting(self) -> int:
        """How many requests wait for a slot."""
        return len(self._waiting)

    def now(self) -> float:
        return self._monotonic()

    def lease(self, keys: Iterable[Key], priority: Priority = Priority.NORMAL) -> Lease:
        """A place in line for a request consuming ``keys`` (validated against the limits)."""
        return Lease(self, self._limits.check(keys), Priority(priority), next(self._seq))

    async def acquire(self, keys: Iterable[Key], priority: Priority = Priority.NORMAL) -> float:
        """Wait for one slot in every bucket of ``keys``; returns the grant time."""
        async with self.lease(keys, priority) as lease:
            return await lease.acquire()

    def pause(self, scope: Iterable[Key] | GlobalScope, seconds: float) -> None:
        """Send nothing through ``scope`` (keys, or :data:`GLOBAL`) for ``seconds``."""
        until = self._monotonic() + max(0.0, seconds)
        if isinstance(scope, GlobalScope):
            log.debug("http.paused", scope="global", seconds=seconds)
            self._global_pause = max(self._global_pause, until)
        else:
            keys = self._limits.check(scope)
            log.debug("http.paused", scope=redact_text(repr(keys)), seconds=seconds)
            for key in keys:
                self._paused[key] = max(self._paused.get(key, _NEVER), until)
                self._refile_line(key)
        self._dispatch()

    def paused_until(self, key: Key | GlobalScope) -> float | None:
        """When a pause of ``key`` (or the global one) ends, if one is running."""
        until = (
            self._global_pause if isinstance(key, GlobalScope) else self._paused.get(key, _NEVER)
        )
        return until if until > self._monotonic() else None

    def rate(self, key: Key) -> RateLimit | None:
        """The rate ``key`` runs at: learned with :meth:`set_rate`, else its kind's."""
        if key in self._rates:
            return self._rates[key]
        return self._limits.rate(key[0])

    def set_rate(self, key: Key, rate: RateLimit | None) -> None:
        """Run ``key`` at ``rate`` from now on (e.g. a bucket learned from headers)."""
        (key,) = self._limits.check([key])
        if key in self._rates and self._rates[key] == rate:
            return
        self._rates[key] = rate
        if key in self._last:
            interval = self._interval(key)
            if interval > 0:
                self._next[key] = self._last[key] + interval
            else:
                self._next.pop(key, None)
            self._refile_line(key)
            self._dispatch()

    def reject_waiting(
        self,
        error: Callable[[Lease], BaseException],
        where: Callable[[Lease], bool] = lambda lease: True,
    ) -> int:
        """Make the waiting :meth:`Lease.acquire` calls ``where`` selects raise ``error(lease)``."""
        rejected = [ticket for ticket in self._waiting if where(ticket.lease)]
        for ticket in rejected:
            self._withdraw(ticket, dispatch=False)
            if not ticket.future.done():
                ticket.future.set_exception(error(ticket.lease))
        if rejected:
            self._dispatch()
        return len(rejected)

    def close(self) -> None:
        """Stop the timer. Waiting requests are left to their callers to cancel."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = math.inf

    def __repr__(self) -> str:
        return f"Governor({self._limits.name!r}, waiting={self.waiting})"

    # -- rates -----------------------------------------------------------------

    def _interval(self, key: Key) -> float:
        rate = self.rate(key)
        return 0.0 if rate is None else rate.interval * self._factor

    def _tolerance(self, keys: Iterable[Key]) -> float:
        """How late a grant may be booked earlier than now: see the module doc."""
        tolerance = math.inf
        for key in keys:
            rate = self.rate(key)
            if rate is not None:
                interval = rate.interval * self._factor
                tolerance = min(tolerance, rate.period * self._limits.margin / 4, interval / 2)
        return 0.0 if tolerance == math.inf else tolerance

    def _free_at(self, key: Key) -> float:
        if key in self._reserved:
            return math.inf
        return max(self._next.get(key, _NEVER), self._paused.get(key, _NEVER))

    def _lane_free_at(self, lane: _Lane) -> float:
        return max((self._free_at(key) for key in lane.keys), default=_NEVER)

    # -- lines ---------------------------------------------------------------

    def _head(self, key: Key) -> _Ticket | None:
        """The ticket first in line for ``key`` (the holder's, while a target is held)."""
        holder = self._holders.get(key)
        if holder is not None:
            return holder._ticket
        queue = self._queues.get(key)
        while queue and queue[0][-1].state != _WAITING:
            heapq.heappop(queue)
        if not queue:
            self._queues.pop(key, None)
            return None
        return queue[0][-1]

    def _file(self, ticket: _Ticket) -> None:
        """(Re)place ``ticket`` in its lane if it heads every line it is in."""
        ticket.version = version = next(self._versions)
        if ticket.state != _WAITING:
            return
        lease = ticket.lease
        if any(self._head(key) is not ticket for key in lease.lines):
            return
        lane = self._lanes.get(lease.lane)
        if lane is None:
            lane = self._lanes[lease.lane] = _Lane(lease.lane)
        at = max((self._free_at(key) for key in lease.lines), default=_NEVER)
        priority, seq = ticket.order
        if at <= self._monotonic():
            heapq.heappush(lane.ready, (priority, seq, version, ticket))
        else:
            heapq.heappush(lane.later, (at, priority, seq, version, ticket))

    def _refile_line(self, key: Key) -> None:
        if not self._limits.is_shared(key):
            head = self._head(key)
            if head is not None:
                self._file(head)

    def _enqueue(self, lease: Lease) -> _Ticket:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ticket = _Ticket(lease, future, next(self._uids))
        lease._ticket = ticket
        self._waiting[ticket] = None
        displaced = {self._head(key) for key in lease.lines}
        priority, seq = ticket.order
        # In every line, a lease that holds targets (a retry, mid-request) goes
        # before those that hold nothing: it heads its targets' lines anyway, and
        # ranking it last in another line (a bucket) would leave each waiting for
        # the other. Holders hold disjoint targets, so the first of them in this
        # order heads all its lines: something can always go.
        holding = 0 if lease._held else 1
        for key in lease.lines:
            heapq.heappush(
                self._queues.setdefault(key, []), (holding, priority, seq, ticket.uid, ticket)
            )
        for head in displaced:
            if head is not None:
                self._file(head)
        self._file(ticket)
        self._dispatch()
        return ticket

    def _withdraw(self, ticket: _Ticket, *, dispatch: bool = True) -> None:
        if ticket.state != _WAITING:
            return
        ticket.state = _GONE
        ticket.version = next(self._versions)
        del self._waiting[ticket]
        lease = ticket.lease
        if lease._ticket is ticket:
            lease._ticket = None
        for key in lease.lines:
            self._refile_line(key)
        if dispatch:
            self._dispatch()

    def _release(self, lease: Lease) -> None:
        ticket = lease._ticket
        if ticket is not None:
            if ticket.state == _WOKEN:
                self._abandon(ticket)
            self._withdraw(ticket, dispatch=False)
        held, lease._held = lease._held, []
        for target in held:
            if self._holders.get(target) is lease:
                del self._holders[target]
            self._refile_line(target)
        self._dispatch()

    # -- granting --------------------------------------------------------------

    def _wake(self, ticket: _Ticket, now: float) -> None:
        """Give ``ticket`` its slot: reserve its keys until its task claims them."""
        lease = ticket.lease
        ticket.ready = max(
            self._global_pause, max((self._free_at(key) for key in lease.keys), default=_NEVER)
        )
        ticket.state = _WOKEN
        del self._waiting[ticket]
        for key in lease.keys:
            if self._interval(key) > 0:
                self._reserved[key] = ticket
        held = lease.targets if self._limits.ordered else ()
        for target in held:
            if self._holders.get(target) is not lease:
                self._holders[target] = lease
                lease._held.append(target)
        self._refile_lines(lease, held)
        if not ticket.future.done():
            ticket.future.set_result(None)

    def _claim(self, ticket: _Ticket) -> float:
        """The woken ticket's task runs: consume its keys now, when it sends.

        A slot is consumed when the request really goes, not when it was
        granted: a busy event loop that resumes the task late cannot squeeze
        two sends together. The send is booked at its scheduled moment when it
        is late by less than the tolerance (no drift), else at now.
        """
        now = self._monotonic()
        lease = ticket.lease
        booked = ticket.ready if ticket.ready >= now - self._tolerance(lease.keys) else now
        for key in lease.keys:
            if self._reserved.get(key) is ticket:
                del self._reserved[key]
            interval = self._interval(key)
            if interval > 0:
                self._next[key] = booked + interval
                self._last[key] = booked
        ticket.state = _GRANTED
        if lease._ticket is ticket:
            lease._ticket = None
        self._refile_lines(lease, lease._held)
        self._grants += 1
        if self._grants % _PRUNE_EVERY == 0:
            self._prune(now)
        self._dispatch()
        return now

    def _abandon(self, ticket: _Ticket) -> None:
        """The ticket's task was cancelled: out of line, or its reserved keys back."""
        if ticket.state == _WAITING:
            self._withdraw(ticket)
            return
        if ticket.state != _WOKEN:
            return
        ticket.state = _GONE
        lease = ticket.lease
        for key in lease.keys:
            if self._reserved.get(key) is ticket:
                del self._reserved[key]
        if lease._ticket is ticket:
            lease._ticket = None
        self._refile_lines(lease, lease._held)
        self._dispatch()

    def _refile_lines(self, lease: Lease, held: Iterable[Key]) -> None:
        """File the next heads of the lease's lines (a held target has none)."""
        held = set(held)
        for key in lease.lines:
            if key not in held:
                self._refile_line(key)

    def _dispatch(self) -> None:
        now = self._monotonic()
        while now >= self._global_pause:
            best: _Ready | None = None
            best_lane: _Lane | None = None
            for keys, lane in list(self._lanes.items()):
                self._promote(lane, now)
                if not lane.ready:
                    if not lane.later:
                        del self._lanes[keys]
                    continue
                if self._lane_free_at(lane) > now:
                    continue
                top = lane.ready[0]
                if best is None or top[:2] < best[:2]:
                    best, best_lane = top, lane
            if best is None or best_lane is None:
                break
            heapq.heappop(best_lane.ready)
            ticket = best[3]
            if ticket.future.done():  # its task was cancelled and will withdraw it
                self._withdraw(ticket, dispatch=False)
                continue
            self._wake(ticket, now)
        self._arm(now)

    def _promote(self, lane: _Lane, now: float) -> None:
        """Move heads whose line keys are free by ``now`` to ``ready``; drop stale entries."""
        while lane.ready and not _live(lane.ready[0][3], lane.ready[0][2]):
            heapq.heappop(lane.ready)
        while lane.later:
            at, priority, seq, version, ticket = lane.later[0]
            if not _live(ticket, version):
                heapq.heappop(lane.later)
            elif at <= now:
                heapq.heappop(lane.later)
                heapq.heappush(lane.ready, (priority, seq, version, ticket))
            else:
                break

    def _arm(self, now: float) -> None:
        """Make sure the timer wakes at the next moment anything can be granted."""
        wake = math.inf
        if self._waiting:
            for lane in self._lanes.values():
                if lane.ready:
                    wake = min(wake, self._lane_free_at(lane))
                elif lane.later:
                    wake = min(wake, max(lane.later[0][0], self._lane_free_at(lane)))
            if wake < math.inf:
                wake = max(wake, self._global_pause, now)
        if wake == math.inf:
            self.close()
            return
        timer = self._timer
        if timer is not None and not timer.done():
            if self._timer_at <= wake:
                return
            timer.cancel()
        self._timer_at = wake
        self._timer = asyncio.get_running_loop().create_task(
            self._tick(wake), name="communitykit.http governor"
        )

    async def _tick(self, at: float) -> None:
        delay = at - self._monotonic()
        if delay > 0:
            await self._sleep(delay)
        self._timer = None
        self._timer_at = math.inf
        self._dispatch()

    def _prune(self, now: float) -> None:
        """Forget keys whose state no longer matters (a broadcast touches many chats once)."""
        for key, free in list(self._next.items()):
            if key in self._rates or key in self._queues or key in self._holders:
                continue
            if free + self._interval(key) <= now:
                del self._next[key]
                self._last.pop(key, None)
        for key, until in list(self._paused.items()):
            if until <= now:
                del self._paused[key]
