"""Delivering the outbox and firing timers: exactly once, on time, through restarts and outages.

A due message is claimed in a transaction, posted with Slack message metadata naming it, and marked sent
with its ts. A claim that was never confirmed (the process died between posting and committing) goes
stale; before sending it again the dispatcher looks for its metadata in `conversations.history` (of the
channel, or of the bot's direct-message channel with the person).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import DBAPIError

import messages.delivery_cards  # noqa: F401 - registers the notice about a message Slack refused
from bot.core.delivery import NOTICE_PREFIX, PERMANENT_ERRORS, failure_notices, hint
from bot.core.outdated import out_of_date
from bot.core.pacing import Pace, Pacer
from bot.domain import Event, Outcome, Post, Release
from bot.ids import METADATA_EVENT_TYPE
from bot.metrics import METRICS
from bot.postmortem import UPLOAD_KIND, report_files
from bot.service import Claimed, Service
from bot.slack import Directory, api_error
from bot.timers import TIMER_RULES
from messages.blocks import Message
from messages.render import RenderError, compose
from messages.report_cards import REPORT_UPLOAD_FAILED
from storage import repo
from storage.db import write_failure
from storage.repo import OutboxItem

log = logging.getLogger(__name__)

DELAY_MARK = timedelta(seconds=60)
STALE_CLAIM = timedelta(seconds=60)
HISTORY_PAGES = 10
LOOKUP_UNAVAILABLE = {"missing_scope", "not_in_channel", "channel_not_found", "user_not_found", "cannot_dm_bot"}
"""Errors that mean a lost send cannot be looked up at all (as opposed to Slack being briefly unwell)."""
USER_GROUP = re.compile(r"S[A-Z0-9]{2,}")
"""A post addressed to a user group (a page DM) goes to each member; see `_deliver_to_group`."""


RATE_LIMIT_TRIES = 3
"""429s in a row a call waits out in place (when short enough) before its message is handed back."""
MIN_RETRY_AFTER = 1.0
"""Slack's Retry-After is whole seconds: a message refused with 429 is not offered again sooner."""

T = TypeVar("T")


class HeldBack(Exception):
    """A channel's pace or a Retry-After asks for a longer wait than a delivery pass may spend."""

    def __init__(self, scope: str, seconds: float, *, called: bool) -> None:
        super().__init__(f"held back {seconds:.1f}s: {scope}")
        self.scope = scope
        self.seconds = seconds
        self.called = called
        """Whether Slack was called (and answered 429), so the attempt counts."""


def _retry_after(exc: SlackApiError) -> float:
    headers = getattr(exc.response, "headers", None) or {}
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value[0] if isinstance(value, list) else value))
            except ValueError:
                break
    return MIN_RETRY_AFTER


AMBIGUOUS_ERRORS = {"internal_error", "fatal_error", "request_timeout", "service_unavailable"}
"""Slack errors after which a message may have been posted all the same."""


def _transient(error: str) -> bool:
    """A Slack error worth retrying: rate limits and Slack being unwell (answers with these may have posted)."""
    return error in AMBIGUOUS_ERRORS or error == "ratelimited" or error.startswith("HTTP 5")


def _metadata(item: OutboxItem) -> dict[str, Any]:
    """Slack message metadata naming the outbox item, so a lost send can be found in history."""
    return {"event_type": METADATA_EVENT_TYPE, "event_payload": {"release": item.release_id, "key": item.key}}


def _named(messages: list[dict[str, Any]], item: OutboxItem) -> str | None:
    """The ts of the message whose metadata names `item`, or None."""
    for message in messages:
        meta = message.get("metadata") or {}
        payload = meta.get("event_payload") or {}
        if (
            meta.get("event_type") == METADATA_EVENT_TYPE
            and payload.get("release") == item.release_id
            and payload.get("key") == item.key
        ):
            return str(message["ts"])
    return None


def backoff(attempts: int) -> timedelta:
    """30s, 1m, 2m, 4m … capped at 10m."""
    return timedelta(seconds=min(600, 30 * 2 ** max(0, attempts - 1)))


CLAIM_BATCH = 1000
"""Messages one delivery pass claims at most, in one statement: 1,000 due in the same second go out in one pass
rather than in waves, each waiting for the slowest lane of the one before. A stop cuts a long pass short and
hands back what it had not sent (`drain`)."""


TIMER_BATCH = 50
"""Timers one transaction fires at most; each pass then delivers what is due before it fires more, so the
messages of the first releases to start do not wait for every other release's timers."""


def _decide(timer: repo.Timer) -> Callable[[Release, Any, datetime], Outcome]:
    def decide(release: Release, plan: Any, now: datetime) -> Outcome:
        return TIMER_RULES[timer.rule](release, plan, now, timer.data)

    return decide


async def _fire(session: Any, *, timer: repo.Timer, now: datetime) -> bool:
    return await repo.fire_timer(session=session, release_id=timer.release_id, key=timer.key, at=timer.at, now=now)


@dataclass
class _Record:
    """How a claimed message ended, waiting to be written with the others that ended meanwhile."""

    item: OutboxItem
    status: str
    now: datetime
    fields: dict[str, Any]
    written: asyncio.Future[None]


def _fail(record: _Record, error: Exception) -> None:
    if not record.written.done():  # its lane may have been cancelled meanwhile
        record.written.set_exception(error)


@dataclass
class Dispatcher:
    service: Service
    client: AsyncWebClient
    directory: Directory
    clock: Callable[[], datetime]
    process_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    pace: Pace = field(default_factory=Pace)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _draining: bool = False
    _runner: asyncio.Task[Any] | None = None
    """The task running the current pass (an APScheduler job, a catch-up after a command…)."""
    _cut_short: bool = False
    _claimed: dict[int, OutboxItem] = field(default_factory=dict)
    """Items this process claimed and has not recorded yet: handed back if it stops first."""
    _started: set[int] = field(default_factory=set)
    """Of those, the ones whose send began: Slack may have them, so whoever takes them over looks first."""
    _pacer: Pacer = field(init=False, repr=False)
    _in_flight: asyncio.Semaphore = field(init=False, repr=False)
    _deadline: float = 0.0
    _held_until: datetime | None = None
    before_post: Callable[[OutboxItem], Awaitable[bool]] | None = None
    """Called before a message is rendered for posting; True when it changed the release (re-read it then).
    The plan's checks are read here, so the vote and status updates show readings of the moment."""
    claim_batch: int = CLAIM_BATCH
    timer_batch: int = TIMER_BATCH
    _records: list[_Record] = field(default_factory=list)
    _writer: asyncio.Task[None] | None = None
    _unwritten: list[asyncio.Future[None]] = field(default_factory=list)
    """Records of posted messages the current pass has yet to see committed (see `_finish`)."""
    _queued: dict[str, datetime] = field(default_factory=dict)
    """Per lane, when the last message this process handed back for it is due again: a newer message of the
    lane goes after that one, not before it while the channel happens to be free (see `_behind`)."""

    def __post_init__(self) -> None:
        self._pacer = Pacer(self.pace)
        self._in_flight = asyncio.Semaphore(self.pace.concurrency)

    def next_wake(self) -> datetime | None:
        """The earliest time a message handed back for its channel or method may go (then forgotten)."""
        at, self._held_until = self._held_until, None
        return at

    async def run_due(self) -> int:
        """Deliver everything due now and fire due timers; returns how many items were handled.

        Runs are serialized within a process; across processes the claim in the database decides.
        """
        handled = 0
        async with self._lock:
            self._runner = asyncio.current_task()
            try:
                while not self._draining:
                    count = await self._fire_timers() + await self._deliver_batch()
                    handled += count
                    if not count:
                        break
            except DBAPIError as exc:
                # the database cannot save (disk full…): said once; claims roll back, the sweep tries again
                if (cause := write_failure(exc)) is None:
                    raise
                self.service.writes.failed(cause)
            except asyncio.CancelledError:
                # `drain` cut the pass short (what it claimed is handed back there); any other cancel goes on
                if not self._cut_short or self._runner is None or self._runner.uncancel() > 0:
                    raise
            finally:
                self._runner = None
        return handled

    async def drain(self, within: float = 8.0) -> None:
        """Start no new pass and wait for the one in progress, so a shutdown leaves no claim unrecorded.

        Bounded below the usual container stop grace (Docker: 10 s) so the process exits before SIGKILL;
        a claim still open then is looked up in history at the next start.
        """
        self._draining = True
        try:
            async with asyncio.timeout(within):
                await self._lock.acquire()
            self._lock.release()
        except TimeoutError:
            if self._runner is not None:
                self._cut_short = True
                self._runner.cancel()
            await self._lock.acquire()  # the pass unwinds at its next await: a cancelled send or commit
            self._lock.release()
        if self._writer is not None:  # what ended before the stop is recorded as it ended, not handed back
            await asyncio.gather(self._writer, return_exceptions=True)
        await self._hand_back_claims()

    async def _hand_back_claims(self) -> None:
        """Release what this process claimed and did not record, so a restart or another replica sends it at
        once instead of waiting out STALE_CLAIM; a send that had begun is looked up in history first."""
        if not self._claimed:
            return
        claims = [(item, item.id in self._started) for item in self._claimed.values()]
        async with self.service.sessions() as session, session.begin():
            await repo.release_claims(session=session, claim_id=self.process_id, claims=claims)
        in_flight = sum(started for _, started in claims)
        log.warning(
            "stopped before recording %d claimed message(s) (%d being sent): handed back for the next start",
            len(claims),
            in_flight,
        )
        self._claimed.clear()
        self._started.clear()

    # --- timers ---------------------------------------------------------------------------------------------

    async def _fire_timers(self) -> int:
        """Fire the due timers: many in one transaction (each claimed under its release's lock, so a timer
        another process fired meanwhile is left alone); when that batch fails for anything but the database,
        one by one, so a rule that cannot be saved does not hold up the others."""
        now = self.clock()
        async with self.service.sessions() as session:
            due = await repo.due_timers(session=session, now=now, limit=self.timer_batch)
        units: list[tuple[repo.Timer, Claimed]] = []
        for timer in sorted(due, key=lambda t: (t.release_id, t.at, t.key)):  # locks in one order everywhere
            rule = TIMER_RULES.get(timer.rule)
            if rule is None or timer.release_id not in self.service.plans:
                log.warning("timer %s/%s has no rule %r or plan; leaving it", timer.release_id, timer.key, timer.rule)
                continue
            units.append((timer, Claimed(timer.release_id, partial(_fire, timer=timer, now=now), _decide(timer))))
        if not units:
            return 0
        try:
            results = await self.service.run_claimed([unit for _, unit in units])
        except DBAPIError:
            raise
        except Exception:
            log.exception("firing %d timers together failed; firing them one by one", len(units))
            return await self._fire_one_by_one([timer for timer, _ in units], now)
        fired = 0
        for (timer, _), result in zip(units, results, strict=True):
            if isinstance(result, Exception):
                log.error("timer %s/%s failed", timer.release_id, timer.key, exc_info=result)
            elif result is not None:
                fired += 1
        return fired

    async def _fire_one_by_one(self, due: list[repo.Timer], now: datetime) -> int:
        fired = 0
        for timer in due:
            async with self.service.sessions() as session, session.begin():
                claimed = await _fire(session, timer=timer, now=now)
            if not claimed:
                continue
            try:
                await self.service.run(timer.release_id, _decide(timer))
                fired += 1
            except Exception:
                log.exception("timer %s/%s failed", timer.release_id, timer.key)
        return fired

    # --- the outbox -----------------------------------------------------------------------------------------

    async def _deliver_batch(self) -> int:
        now = self.clock()
        self._unwritten = []  # a pass cut short leaves none for the next one to wait for
        async with self.service.sessions() as session, session.begin():
            items = await repo.claim_due(
                session=session,
                now=now,
                claim_id=self.process_id,
                stale_after=STALE_CLAIM,
                limit=self.claim_batch,
                behind=self._behind,
            )
            # Delivery never changes a release, so each one is loaded once per batch, with the claim; a change
            # made meanwhile enqueues its own refresh, which the next pass renders from fresh state.
            releases = await repo.get_releases(session=session, release_ids={i.release_id for i in items})
        self._claimed.update((item.id, item) for item in items)
        # One lane per channel, in order; lanes run side by side, so a paced or rate-limited channel
        # holds back only itself, and none waits longer than the pass may (`pace.hold`).
        self._deadline = time.monotonic() + self.pace.hold
        lanes: dict[str, list[OutboxItem]] = {}
        for item in items:
            lanes.setdefault(self._lane(item), []).append(item)
        results = await asyncio.gather(
            *(self._deliver_lane(lane, releases) for lane in lanes.values()), return_exceptions=True
        )
        unwritten, self._unwritten = self._unwritten, []
        results += await asyncio.gather(*unwritten, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return len(items)

    def _lane(self, item: OutboxItem) -> str:
        if item.kind == "update":
            return f"update:{item.data.get('target')}"
        return self._channel_lane(item.release_id, item.channel)

    def _channel_lane(self, release_id: str, channel: str) -> str:
        plan = self.service.plans.get(release_id)
        return plan.channel(channel) if plan is not None else channel

    def _queue_behind(self, lane: str, at: datetime) -> None:
        """A message of `lane` went back to the outbox, due again `at`: the lane's newer messages go after it."""
        if (queued := self._queued.get(lane)) is None or queued < at:
            self._queued[lane] = at
        if self._held_until is None or at < self._held_until:
            self._held_until = at

    def _behind(self, release_id: str, kind: str, channel: str) -> datetime | None:
        """For a due message about to be claimed: when it may go, after what its lane handed back and is not
        due yet, each a pace interval after the one before; None when nothing of its lane waits."""
        if kind == "update" or not self._queued:
            return None
        lane = self._channel_lane(release_id, channel)
        queued = self._queued.get(lane)
        if queued is None:
            return None
        if queued <= self.clock():
            del self._queued[lane]  # what it held back is due: the claim takes them in the order they were due
            return None
        at = queued + timedelta(seconds=self.pace.interval)
        self._queue_behind(lane, at)
        return at

    async def _deliver_lane(self, lane: list[OutboxItem], releases: dict[str, Release]) -> None:
        for n, item in enumerate(lane):
            held = await self._deliver(item, releases)
            if held is not None and held.scope.startswith("chat.postMessage:") and lane[n + 1 :]:
                await self._hand_back_rest(lane[n + 1 :], held)
                return

    async def _hand_back_rest(self, rest: list[OutboxItem], held: HeldBack) -> None:
        """The channel's pace or Retry-After holds the rest of its lane too: all go back to the outbox in one
        write, due one after another at the channel's pace, so later passes claim only what may go."""
        first = self.clock() + timedelta(seconds=max(held.seconds, MIN_RETRY_AFTER) if held.called else held.seconds)
        due = [(item, first + timedelta(seconds=self.pace.interval * k)) for k, item in enumerate(rest, 1)]
        async with self.service.sessions() as session, session.begin():
            await repo.hand_back(session=session, claim_id=self.process_id, due=due, error=str(held))
        self.service.writes.succeeded()
        for item in rest:
            self._claimed.pop(item.id, None)
            self._started.discard(item.id)
            METRICS.outbox("pending", item.kind)
        self._queue_behind(self._lane(rest[0]), due[-1][1])
        if self._held_until is None or due[0][1] < self._held_until:
            self._held_until = due[0][1]

    async def _slack(self, scope: str, call: Callable[[], Awaitable[T]], *, post_to: str | None = None) -> T:
        """One Slack call within its holds (Retry-After of its channel or method) and its channel's pace.

        Waits in place while the pass may; a longer wait raises HeldBack, and the message goes back to
        the outbox until then. A 429 holds back only its scope: one channel's posts, or one method.
        """
        called = False
        retry_after = MIN_RETRY_AFTER
        for _ in range(RATE_LIMIT_TRIES):
            now = time.monotonic()
            wait = self._pacer.wait(scope, now)
            if post_to is not None:
                wait = max(wait, self._pacer.next_post(post_to, now))
            if wait > 0:
                if now + wait > self._deadline:
                    raise HeldBack(scope, wait, called=called)
                await asyncio.sleep(wait)
            if post_to is not None:
                self._pacer.posted(post_to, time.monotonic())
            try:
                async with self._in_flight:
                    return await call()
            except SlackApiError as exc:
                if getattr(exc.response, "status_code", None) != 429:
                    raise
                called = True
                retry_after = _retry_after(exc)
                self._pacer.hold(scope, time.monotonic(), retry_after)
                log.info("Slack asked to wait %.0fs before calling %s again", retry_after, scope)
        raise HeldBack(scope, max(retry_after, MIN_RETRY_AFTER), called=True)

    async def _hand_back(self, item: OutboxItem, held: HeldBack, *, maybe_posted: bool) -> None:
        """Put a held-back message back in the outbox, due again when its channel or method is free."""
        seconds = max(held.seconds, MIN_RETRY_AFTER) if held.called else held.seconds
        retry_at = self.clock() + timedelta(seconds=seconds)
        await self._finish(
            item, "pending", retry_at=retry_at, error=str(held), maybe_posted=maybe_posted, undo_attempt=not held.called
        )
        self._queue_behind(self._lane(item), retry_at)

    async def _finish(self, item: OutboxItem, status: str, *, wait: bool = True, **kwargs: Any) -> None:
        """Record how a claimed message ended. Messages that end at about the same time (the lanes of a pass)
        are written in one transaction; each waits until its own record is committed, unless `wait` is False:
        then the pass waits for it before it ends (a posted message's lane goes on to its next one meanwhile,
        still in order, since Slack has answered for this one)."""
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._records.append(_Record(item, status, self.clock(), kwargs, written))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_records())
        if wait:
            await written
        else:
            self._unwritten.append(written)

    async def _write_records(self) -> None:
        while self._records:
            batch, self._records = self._records, []
            try:
                try:
                    await self._write(batch)
                except Exception as exc:
                    if len(batch) == 1:
                        _fail(batch[0], exc)
                        continue
                    # one record that cannot be written must not keep the others from theirs: one by one
                    for record in batch:
                        try:
                            await self._write([record])
                        except Exception as one:
                            _fail(record, one)
            except asyncio.CancelledError:
                for record in batch + self._records:
                    record.written.cancel()
                raise

    async def _write(self, batch: list[_Record]) -> None:
        async with self.service.sessions() as session, session.begin():
            sent = [repo.Sent(r.item.id, r.now, **r.fields) for r in batch if r.status == "sent"]
            await repo.finish_sent(session=session, claim_id=self.process_id, sent=sent)  # one statement for all
            for record in batch:
                await self._record(session, record.item, record.status, record.now, **record.fields)
        self.service.writes.succeeded()
        for record in batch:
            item, status = record.item, record.status
            self._claimed.pop(item.id, None)
            self._started.discard(item.id)
            METRICS.outbox(status, item.kind)
            if status == "sent":
                METRICS.lateness(item.kind, (record.now - item.due_at).total_seconds())
            if not record.written.done():
                record.written.set_result(None)

    async def _record(self, session: Any, item: OutboxItem, status: str, now: datetime, **kwargs: Any) -> None:
        """What goes with a message's end: its row (a sent one's is written with the others by `_write`) and
        the timeline's note of it."""
        if status != "sent":
            await repo.finish_item(
                session=session, item_id=item.id, claim_id=self.process_id, status=status, now=now, **kwargs
            )
        if status == "skipped" and item.kind in {"announcement", "post", "status"}:
            event = Event("message.skipped", now, subject=item.key, data={"reason": kwargs.get("error", "")})
            await repo.append_events(session=session, release_id=item.release_id, events=[event])
        if status == "sent" and item.kind in {"announcement", "status"}:
            data = {
                "due_at": item.due_at.isoformat(),
                "late_seconds": round((now - item.due_at).total_seconds(), 3),
            }
            if kwargs.get("delayed"):
                data["delayed"] = True
            await repo.append_events(
                session=session,
                release_id=item.release_id,
                events=[Event("message.posted", now, subject=item.key, data=data)],
            )

    async def _deliver(self, item: OutboxItem, releases: dict[str, Release]) -> HeldBack | None:
        """Deliver one claimed message and record how it ended; the hold when it went back for its channel."""
        self._started.add(item.id)
        now = self.clock()
        plan = self.service.plans.get(item.release_id)
        if plan is None:
            await self._finish(item, "pending", retry_at=now + backoff(item.attempts), error="plan not loaded")
            return None
        if item.release_id not in releases:
            releases[item.release_id] = await self.service.get(item.release_id)
        release = releases[item.release_id]
        late = now - item.due_at
        overtaken = out_of_date(release, item.kind, item.template, now)
        if overtaken is not None:
            await self._finish(item, "skipped", error=overtaken)
            return None
        if item.grace_seconds is not None and late > timedelta(seconds=item.grace_seconds):
            await self._finish(
                item,
                "skipped",
                error=f"due {int(late.total_seconds())}s ago, past its grace of {item.grace_seconds}s",
            )
            return None
        if self.before_post is not None and await self.before_post(item):
            release = releases[item.release_id] = await self.service.get(item.release_id)
        if item.kind == UPLOAD_KIND:
            await self._upload(item, plan, release)
            return None
        delayed = item.kind in {"announcement", "status"} and late > DELAY_MARK
        if item.kind != "update" and item.channel not in plan.channels and USER_GROUP.fullmatch(item.channel):
            await self._deliver_to_group(item, plan, release, now)
            return None
        # Only the Slack calls are guarded: if recording the result fails, the claim stays and goes
        # stale, and the history check below keeps the message from being posted twice.
        try:
            if item.kind == "update":
                updated = await self._update(item, plan, release, now)
            else:
                found = None
                if item.claimed_at is not None:
                    found = await self._find_posted(item)
                if found is None:
                    found = await self._post(item, plan, release, now, delayed)
                else:
                    log.info("message %s was already posted (ts %s); not sending it again", item.key, found[1])
                posted: tuple[str, str] = found
        except HeldBack as held:
            await self._hand_back(item, held, maybe_posted=item.claimed_at is not None)
            return held
        except RenderError as exc:
            # e.g. a template only a newer plan has: retried (another replica, or this one once it follows)
            await self._failed(item, str(exc), maybe_posted=item.claimed_at is not None)
            return None
        except SlackApiError as exc:
            # the retry must look before posting when an earlier send may have reached Slack, or this one:
            # Slack documents that a post answered with internal_error and the like may still have gone out
            error = api_error(exc)
            await self._failed(item, error, maybe_posted=item.claimed_at is not None or _transient(error))
            return None
        except (TimeoutError, SlackClientError, OSError) as exc:
            await self._failed(item, f"{type(exc).__name__}: {exc}", maybe_posted=True)
            return None
        if item.kind == "update":
            if updated:
                await self._finish(item, "sent")
            else:
                await self._finish(item, "skipped", error="the original is not posted yet; it will show this state")
            return None
        await self._finish(item, "sent", wait=False, channel_id=posted[0], ts=posted[1], delayed=delayed)
        return None

    async def _post(
        self, item: OutboxItem, plan: Any, release: Release, now: datetime, delayed: bool
    ) -> tuple[str, str]:
        """Render and post one message with metadata naming it; return (channel id, ts)."""
        message = compose(plan, item.template, release, now, item.data, delayed=delayed)
        channel = await self._channel(plan.channel(item.channel))
        thread_ts = await self._thread_ts(item)
        try:
            return await self._send(channel, item, message, thread_ts=thread_ts)
        except SlackApiError as exc:
            # a public channel the bot was never invited to: join it (channels:join) and post once more
            if api_error(exc) != "not_in_channel" or not await self._join(channel):
                raise
        return await self._send(channel, item, message, thread_ts=thread_ts)

    async def _join(self, channel: str) -> bool:
        """Join a public channel; False when Slack will not (a private channel needs an invitation)."""
        try:
            await self._slack("conversations.join", lambda: self.client.conversations_join(channel=channel))
        except SlackApiError as exc:
            log.warning("cannot join %s: %s", channel, api_error(exc))
            return False
        log.info("joined %s, which the plan names but @warroom was not in", channel)
        return True

    async def _send(
        self, channel: str, item: OutboxItem, message: Message, *, thread_ts: str | None = None
    ) -> tuple[str, str]:
        """One chat.postMessage carrying the item's metadata (how a lost send is found); (channel id, ts)."""
        response = await self._slack(
            f"chat.postMessage:{channel}",
            lambda: self.client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
                metadata=_metadata(item),
                **message.kwargs(),
            ),
            post_to=channel,
        )
        return str(response.get("channel") or channel), str(response.get("ts"))

    async def _failed(self, item: OutboxItem, error: str, *, maybe_posted: bool = False) -> None:
        now = self.clock()
        log.warning("posting %s/%s failed (attempt %d): %s", item.release_id, item.key, item.attempts, error)
        if error in PERMANENT_ERRORS:
            await self._finish(item, "failed", error=f"{error}: {hint(error)}")
            plan = self.service.plans.get(item.release_id)
            notices = (
                failure_notices(plan, key=item.key, channel=item.channel, error=error)
                if plan is not None and item.kind != "update"
                else ()
            )
            told = {n.channel for n in notices}
            notices += tuple(
                n for n in self._requester_notice(item, error, plan, retrying=False) if n.channel not in told
            )
            async with self.service.sessions() as session, session.begin():
                data = {"error": error, "channel": item.channel, "hint": hint(error)}
                await repo.append_events(
                    session=session,
                    release_id=item.release_id,
                    events=[Event("message.failed", now, subject=item.key, data=data)],
                )
                await repo.apply_effects(
                    session=session, release_id=item.release_id, effects=notices, now=now, seq=f"failed:{item.id}"
                )
            return
        await self._finish(
            item, "pending", retry_at=now + backoff(item.attempts), error=error, maybe_posted=maybe_posted
        )
        if item.attempts == 1 and (retrying := self._requester_notice(item, error, None, retrying=True)):
            async with self.service.sessions() as session, session.begin():
                await repo.apply_effects(
                    session=session, release_id=item.release_id, effects=retrying, now=now, seq=f"retrying:{item.id}"
                )
        if item.attempts == 3:
            async with self.service.sessions() as session, session.begin():
                await repo.append_events(
                    session=session,
                    release_id=item.release_id,
                    events=[Event("message.retrying", now, subject=item.key, data={"error": error, "attempts": 3})],
                )

    def _requester_notice(self, item: OutboxItem, error: str, plan: Any, *, retrying: bool) -> tuple[Post, ...]:
        """The person who asked for an upload (`/release report`) is told privately when Slack does not take it:
        once when it is first retried, and when it fails for good."""
        requester = item.data.get("requested_by")
        if item.kind != UPLOAD_KIND or not isinstance(requester, str):
            return ()
        plan = plan or self.service.plans.get(item.release_id)
        channel = plan.channel(item.channel) if plan is not None else item.channel
        data = {"key": item.key, "channel": channel, "error": error, "retrying": retrying}
        suffix = "retrying" if retrying else "failed"
        return (Post(requester, REPORT_UPLOAD_FAILED, data, key=f"{NOTICE_PREFIX}{item.key}:{suffix}"),)

    async def _upload(self, item: OutboxItem, plan: Any, release: Release) -> None:
        """`/release report`: the report and its chart, rendered now, uploaded to the item's channel with
        Slack's external upload flow (slack_sdk's files_upload_v2: files.getUploadURLExternal per file, the
        bytes to each upload URL, one files.completeUploadExternal sharing both with the summary as comment).

        A channel the bot is not in is joined when public (uploads need membership, unlike posts). Failures
        are retried or recorded like a post's; a retry uploads again (an upload carries no metadata to find
        it by), so a lost answer can show the report twice, never not at all.
        """
        try:
            async with self.service.sessions() as session:
                timeline = await repo.get_timeline(session=session, release_id=item.release_id)
                outbox = await repo.outbox(session=session, release_id=item.release_id)
            files = await asyncio.to_thread(report_files, release, timeline, plan, outbox)
            channel = await self._channel(plan.channel(item.channel))
            title = f"{release.name} {release.version}"

            def upload() -> Awaitable[Any]:
                return self.client.files_upload_v2(
                    file_uploads=files.uploads(title), channel=channel, initial_comment=files.summary
                )

            try:
                response = await self._slack("files.upload", upload)
            except SlackApiError as exc:
                if api_error(exc) != "not_in_channel" or not await self._join(channel):
                    raise
                response = await self._slack("files.upload", upload)
        except HeldBack as held:
            await self._hand_back(item, held, maybe_posted=False)
            return
        except SlackApiError as exc:
            await self._failed(item, api_error(exc))
            return
        except (TimeoutError, SlackClientError, OSError) as exc:
            await self._failed(item, f"{type(exc).__name__}: {exc}")
            return
        ids = [str(f.get("id")) for f in response.get("files") or []]
        await self._finish(item, "sent", channel_id=channel, error=f"uploaded as {', '.join(ids)}")
        data = {
            "channel": channel,
            "files": ids,
            "markdown_bytes": len(files.markdown),
            "chart_bytes": len(files.chart),
        }
        async with self.service.sessions() as session, session.begin():
            event = Event("report.uploaded", self.clock(), subject=item.key, data=data)
            await repo.append_events(session=session, release_id=item.release_id, events=[event])

    async def _deliver_to_group(self, item: OutboxItem, plan: Any, release: Release, now: datetime) -> None:
        """DM each member of a user group; when Slack will not list them (free plans, missing scope),
        post the message in the war room instead, mentioning the group — never dropped silently.

        A member Slack refuses for good (an inactive account) is noted and skipped; when a member could not
        be reached for now (rate limit, Slack unwell), the item is retried and members already reached are
        looked up, not sent to again.
        """
        failed: list[str] = []
        retry: list[str] = []
        fallback: tuple[str, str] | None = None
        try:
            message = compose(plan, item.template, release, now, item.data)
            members = await self.directory.group_members(item.channel) or []
            if not members:
                log.warning("user group %s not expanded; posting %s in the war room", item.channel, item.key)
                channel = await self._channel(plan.channel("war_room"))
                found = await self._search_history(channel, item) if item.claimed_at is not None else None
                fallback = (channel, found) if found is not None else await self._send(channel, item, message)
            for member in members:
                if item.claimed_at is not None and await self._reached(member, item):
                    log.info("%s already has %s (an earlier send whose commit was lost)", member, item.key)
                    continue
                try:
                    await self._send(member, item, message)
                except SlackApiError as exc:
                    (retry if _transient(api_error(exc)) else failed).append(f"{member}: {api_error(exc)}")
            if retry or (members and len(failed) == len(members)):
                raise SlackClientError("; ".join(retry or failed)[:500])
        except RenderError as exc:
            await self._failed(item, str(exc), maybe_posted=item.claimed_at is not None)
            return
        except HeldBack as held:
            await self._hand_back(item, held, maybe_posted=True)  # members reached are looked up, not re-sent
            return
        except SlackApiError as exc:
            await self._failed(item, api_error(exc), maybe_posted=True)
            return
        except (TimeoutError, SlackClientError, OSError) as exc:
            # some members may have their DM already: the retry looks before sending to each
            await self._failed(item, f"{type(exc).__name__}: {exc}", maybe_posted=True)
            return
        if fallback is not None:
            note = "group not expanded: posted in the war room"
            await self._finish(item, "sent", channel_id=fallback[0], ts=fallback[1], error=note)
            return
        note = f"sent to {len(members) - len(failed)} of {len(members)} member(s)"
        if failed:
            note += "; " + "; ".join(failed)
        await self._finish(item, "sent", channel_id=item.channel, error=note)

    async def _reached(self, member: str, item: OutboxItem) -> bool:
        channel = await self._im(member)
        return channel is not None and await self._search_history(channel, item) is not None

    async def _channel(self, ref: str) -> str:
        return await self.directory.channel_id(ref) or ref

    async def _thread_ts(self, item: OutboxItem) -> str | None:
        if not item.thread_of:
            return None
        async with self.service.sessions() as session:
            parent = await repo.sent_message(session=session, release_id=item.release_id, key=item.thread_of)
        return parent.ts if parent else None

    async def _find_posted(self, item: OutboxItem) -> tuple[str, str] | None:
        """Look for this item's metadata in recent history (a send whose commit was lost).

        A DM is looked up in the bot's direct-message channel with the person.
        """
        plan = self.service.plans[item.release_id]
        ref = plan.channel(item.channel)
        channel = await self._im(ref) if ref[:1] in {"U", "W"} else await self.directory.channel_id(ref)
        if channel is None or item.claimed_at is None:
            return None
        # a reply is not in the channel's history (Slack lists thread parents only): read its thread
        thread_ts = await self._thread_ts(item)
        ts = await (self._search_thread(channel, thread_ts, item) if thread_ts else self._search_history(channel, item))
        return (channel, ts) if ts else None

    async def _search_thread(self, channel: str, thread_ts: str, item: OutboxItem) -> str | None:
        """The ts of a reply in the thread under `thread_ts` whose metadata names `item`, or None."""
        cursor = None
        for _ in range(HISTORY_PAGES):
            try:
                response = await self._slack(
                    "conversations.replies",
                    partial(
                        self.client.conversations_replies,
                        channel=channel,
                        ts=thread_ts,
                        include_all_metadata=True,
                        limit=200,
                        cursor=cursor,
                    ),
                )
            except SlackApiError as exc:
                if api_error(exc) not in LOOKUP_UNAVAILABLE | {"thread_not_found"}:
                    raise
                log.warning(
                    "cannot read the thread %s in %s to look for %s: %s", thread_ts, channel, item.key, api_error(exc)
                )
                return None
            found = _named(response.get("messages", []), item)
            if found is not None:
                return found
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return None

    async def _im(self, user: str) -> str | None:
        try:
            return await self.directory.im_channel(user)
        except SlackApiError as exc:
            if api_error(exc) not in LOOKUP_UNAVAILABLE:
                raise
            log.warning("cannot open the DM with %s to look for a lost send: %s", user, api_error(exc))
            return None

    async def _search_history(self, channel: str, item: OutboxItem) -> str | None:
        """The ts of a message in `channel` whose metadata names `item`, or None.

        When Slack will not show the history (scope missing, bot not in the channel), the answer is None:
        for a go-live a message sent twice is better than one never sent.
        """
        # nothing is sent before it is due; a claim kept across failed retries may be much later than the send
        # The lost send happened after the message fell due and before its last claim ended: look there only
        # (a busy war room adds many messages after it), up to HISTORY_PAGES pages of 200.
        claimed = item.claimed_at or item.due_at
        oldest = (min(item.due_at, claimed) - timedelta(minutes=10)).timestamp()
        latest = (claimed + STALE_CLAIM + timedelta(minutes=5)).timestamp()
        cursor = None
        joined = False
        for _ in range(HISTORY_PAGES):
            try:
                response = await self._slack(
                    "conversations.history",
                    partial(
                        self.client.conversations_history,
                        channel=channel,
                        oldest=f"{oldest:.6f}",
                        latest=f"{latest:.6f}",
                        inclusive=True,
                        include_all_metadata=True,
                        limit=200,
                        cursor=cursor,
                    ),
                )
            except SlackApiError as exc:
                # chat:write.public posts to public channels the bot is not in, but reading needs membership
                if api_error(exc) == "not_in_channel" and not joined and channel[:1] == "C":
                    joined = await self._join(channel)
                    if joined:
                        continue
                if api_error(exc) not in LOOKUP_UNAVAILABLE:
                    raise
                log.warning("cannot read %s to look for %s: %s", channel, item.key, api_error(exc))
                return None
            found = _named(response.get("messages", []), item)
            if found is not None:
                return found
            cursor = (response.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return None

    async def _update(self, item: OutboxItem, plan: Any, release: Release, now: datetime) -> bool:
        """Re-render a message posted earlier (its key is in data.target) and update it in place."""
        async with self.service.sessions() as session:
            original = await repo.sent_message(session=session, release_id=item.release_id, key=item.data["target"])
        if original is None or original.status != "sent" or not original.ts or not original.channel_id:
            return False
        message: Message = compose(plan, original.template, release, now, original.data)
        channel, ts = original.channel_id, original.ts
        await self._slack("chat.update", lambda: self.client.chat_update(channel=channel, ts=ts, **message.kwargs()))
        return True
