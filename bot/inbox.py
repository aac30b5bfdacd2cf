"""The request inbox: a command, click or form submission is recorded before Slack gets its acknowledgement.

Over HTTP, a verified command or click is recorded and answered before Bolt sees it (`Inbox.front`), and
Bolt dispatches it after the answer; forms, and everything in Socket Mode, are recorded by a Bolt middleware
before their listener acks. Each request is one small insert keyed by its identity (the `X-Slack-Signature`
over HTTP, the `trigger_id` over Socket Mode); a key seen before is a replay and is answered without acting
again. The change a request makes is marked in its own transaction
(`Service.run`), so processing the same request twice applies it once. At start, and on a periodic sweep,
whatever was recorded but not finished is processed from the stored payload: its reply goes through the
`response_url` while Slack still accepts it (30 minutes) and privately (ephemeral, else a DM) after that.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import functools
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.text import slack_escape
from bot.domain import NotSaved
from bot.metrics import METRICS
from bot.service import CURRENT_REQUEST, RequestSlot
from handlers.errors import FINISH_REQUEST, LISTENER_STARTED, TAKE_TURN, reply_privately, request_name
from storage import repo
from storage.db import WriteHealth, write_failure
from storage.repo import InboundRequest

log = logging.getLogger(__name__)

RESPONSE_URL_VALID = timedelta(minutes=29)
"""Slack accepts replies to a `response_url` for 30 minutes; a minute is kept for clock drift."""
KEEP = timedelta(minutes=15)
"""Finished requests are kept this long: Slack accepts a signature within 5 minutes of its timestamp."""
STALE_CLAIM = timedelta(minutes=1)
"""A request another process claimed this long ago and did not finish is taken over by the sweep."""
START_GRACE = timedelta(seconds=5)
"""At start, a request recorded just before is left this long to a replica that may still be processing it."""
RECOVER_WITHIN = timedelta(hours=24)
"""A request left unfinished longer than this is not applied any more (the go-live it was for is over)."""
KEEP_HANDLED = timedelta(days=2)
"""Which requests were applied is kept past RECOVER_WITHIN, so none is applied twice."""
MAX_ATTEMPTS = 3
SWEEP_SECONDS = 60.0
FINISH_WITHIN = 60.0
"""How long recovery waits for one request's listener before it moves on to the next."""
FINISH_WRITE_WITHIN = 0.1
"""A request's finish is written with the next request's record, or after this many seconds if none comes
first: one transaction for both under load. A crash in between processes the request again at the next
start: a change it made is marked in its own transaction and not applied again (only its reply is sent
again); one that changed nothing runs again (a list is shown again; a form it opened cannot be opened
with the expired trigger, and the person is told so)."""
WORKING = 8
"""Requests whose work (after their ack) runs at once; the rest wait their turn, holding nothing."""
ACK_DEADLINE = 3.0
"""Slack's time for an ack; past it a request no longer counts as being acknowledged."""
ACKS_FIRST_WITHIN = 0.5
"""Work behind an ack waits while other requests are still being acknowledged (Slack gives each 3 seconds),
at most this long, so a burst's work cannot make the acks behind it late, nor be starved by them."""
WAITING = 512
"""Acknowledged requests waiting for their turn in memory (about 13 KiB each: 512 hold some 6.5 MiB); past
that, a request waits in the inbox (where it is recorded already) and is taken up from there in the order
received, so a burst of thousands holds no more memory than this many. Taking one up costs a claim and a
second dispatch through Bolt, about as much again as the request itself: the bound is for bursts only."""

NOT_KEPT = frozenset({"token"})
"""Left out of the stored payload: Slack's verification token, which nothing here needs (requests are
verified by their signature) and which would otherwise sit in the database and in DEBUG logs."""

_RECOVERED = "inbox_recovered"
_FAILED_EARLY = "Something went wrong on our side before this could be acted on; nothing was done. Try again."
_FRONT = "inbox_front"
"""In a request's context: it was answered at the HTTP front, just now, rather than recovered or taken up."""
_HEARD = "inbox_heard"
"""In a request's context: a list that a listener taking the request adds to."""
ACKNOWLEDGED = "inbox_acknowledged"
"""In a request's context: call it once the request's ack is on its way to Slack."""
_KINDS = {"block_actions": "action", "view_submission": "view"}

Clock = Callable[[], datetime]


def identify(request: AsyncBoltRequest) -> tuple[str, str] | None:
    """The request's inbox key and kind, or None for what is not recorded (events, view_closed, options)."""
    body = request.body
    kind = "command" if body.get("command") else _KINDS.get(str(body.get("type")))
    if kind is None:
        return None
    signature = (request.headers.get("x-slack-signature") or [""])[0]
    if request.mode == "http" and signature:
        return f"sig:{signature}", kind
    trigger = body.get("trigger_id")
    if trigger:
        return f"trigger:{trigger}", kind
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return f"body:{digest}", kind


def _who(body: dict[str, Any]) -> tuple[str, str]:
    """The person who sent the request and the channel it came from (empty when it has none)."""
    user = body.get("user_id") or (body.get("user") or {}).get("id") or ""
    channel = (
        body.get("channel_id")
        or (body.get("channel") or {}).get("id")
        or (body.get("container") or {}).get("channel_id")
        or ""
    )
    return str(user), str(channel)


@dataclass
class PrivateReply:
    """`respond` for a recovered request whose `response_url` has expired: ephemeral in its channel, else a DM."""

    client: AsyncWebClient
    user: str
    channel: str
    response_url: None = None

    async def __call__(self, text: str = "", blocks: Any = None, **_ignored: Any) -> None:
        await reply_privately(self.client, user=self.user, channel=self.channel, text=text, blocks=blocks)


class Inbox:
    """Records requests before their ack, and finishes the ones a crash or a dead replica left behind."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        inbox_sessions: async_sessionmaker[AsyncSession],
        client: AsyncWebClient,
        clock: Clock,
        *,
        one_writer: bool = False,
    ) -> None:
        self.sessions = sessions
        self.inbox_sessions = inbox_sessions
        # SQLite: take turns here rather than in SQLite's busy handler, which sleeps between its tries
        self._turn: asyncio.Lock | contextlib.nullcontext[None] = (
            asyncio.Lock() if one_writer else contextlib.nullcontext()
        )
        self.client = client
        self.clock = clock
        self.app: AsyncApp | None = None
        self._in_flight: set[str] = set()
        self._working = asyncio.Semaphore(WORKING)
        self._waiting = 0
        self._deferred: collections.deque[tuple[str, datetime]] = collections.deque()
        """Acknowledged requests left waiting in the inbox, oldest first: key, and when recorded (its claim)."""
        self._room = asyncio.Event()
        self._taking_one = False
        """A request is being taken up from the inbox (popped from `_deferred`, not yet dispatched)."""
        self._taking_up: asyncio.Task[None] | None = None
        self._at_work: set[asyncio.Task[Any]] = set()
        self._dispatching: set[asyncio.Task[None]] = set()
        """Requests answered at the HTTP front whose dispatch through Bolt has not returned yet."""
        self._stopping = False
        self._sweeper: asyncio.Task[None] | None = None
        self._records: list[tuple[InboundRequest, asyncio.Future[bool]]] = []
        self._finishes: list[tuple[str, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._finish_timer: asyncio.TimerHandle | None = None
        self.writes = WriteHealth()
        """Whether the inbox can record (its own file on SQLite): /healthz fails while it cannot."""
        self._replies: set[asyncio.Task[Any]] = set()
        self._arriving = 0
        """Recorded requests between their arrival and their ack leaving (see `_arrival`)."""
        self._none_arriving = asyncio.Event()
        self._none_arriving.set()
        self._yielding = 0
        """Requests whose work waits in `_after_acks`."""

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncSession]:
        """One short write transaction on the inbox."""
        async with self._turn, self.inbox_sessions() as session, session.begin():
            yield session

    async def _record(self, request: InboundRequest) -> bool:
        """Record `request`; False when it was recorded before. Requests arriving together share one commit."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._records.append((request, future))
        self._write_soon()
        return await future

    def _write_soon(self) -> None:
        if self._finish_timer is not None:  # what waits for it goes into this write
            self._finish_timer.cancel()
            self._finish_timer = None
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        """Write what is waiting in one transaction; what arrives meanwhile goes into the next one."""
        while self._records or self._finishes:
            records, self._records = self._records, []
            finishes, self._finishes = self._finishes, []
            try:
                async with self._writing() as session:
                    inserted: set[str] = set()
                    if records:
                        inserted = await repo.record_requests(session=session, requests=[r for r, _ in records])
                    if finishes:
                        await repo.finish_requests(session=session, keys={k for k, _ in finishes}, now=self.clock())
            except Exception as exc:
                waiters: list[asyncio.Future[Any]] = [f for _, f in records] + [f for _, f in finishes]
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(exc)
                continue
            self.writes.succeeded()
            for request, recorded in records:
                if not recorded.done():
                    recorded.set_result(request.key in inserted)
                    inserted.discard(request.key)  # the same request twice at once: the second is a replay
            for _, finished in finishes:
                if not finished.done():
                    finished.set_result(None)

    # --- before the ack -----------------------------------------------------------------------------------

    def _arrival(self) -> Callable[[], None]:
        """Count a request as being acknowledged; the callable returned (idempotent) says its ack is out.

        Whichever comes first: the HTTP front once the request is recorded (`front`), the end of the
        recording in Socket Mode, the listener's ack when no other request is arriving, or Slack's 3 seconds,
        after which the ack no longer matters.
        """
        self._arriving += 1
        self._none_arriving.clear()
        done = False
        timer: asyncio.TimerHandle | None = None

        def acknowledged() -> None:
            nonlocal done
            if done:
                return
            done = True
            if timer is not None:
                timer.cancel()
            self._arriving -= 1
            if not self._arriving:
                self._none_arriving.set()

        timer = asyncio.get_running_loop().call_later(ACK_DEADLINE, acknowledged)
        return acknowledged

    async def _after_acks(self) -> None:
        """Wait until no request is being acknowledged, at most ACKS_FIRST_WITHIN; turns stay in the order
        received (one that did not have to wait lets those woken before it go first)."""
        if self._arriving:
            self._yielding += 1
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(ACKS_FIRST_WITHIN):
                        await self._none_arriving.wait()
            finally:
                self._yielding -= 1
        elif self._yielding:
            await asyncio.sleep(0)

    async def middleware(
        self, req: AsyncBoltRequest, context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        """Record the request (a replay is answered 200 and goes no further), then let the listeners run."""
        recovered: InboundRequest | None = context.get(_RECOVERED)
        if recovered is not None:
            # answered at the front: where it waits, and for other acks, was settled there
            self._attach(context, recovered, may_wait_in_inbox=False, acks_waited=bool(context.get(_FRONT)))
            if self.clock() - recovered.received_at > RESPONSE_URL_VALID:
                context["respond"] = PrivateReply(self.client, recovered.user_id, recovered.channel_id)
            await next()
            return None
        identity = identify(req)
        if identity is None:
            CURRENT_REQUEST.set(None)  # nothing recorded: no change may be marked as this request's
            await next()
            return None
        key, kind = identity
        if kind == "view":  # a form's ack comes after its change: other work does not wait for that
            return await self._take_in(req, context, next, key, kind)
        acknowledged = self._arrival()
        context[ACKNOWLEDGED] = acknowledged
        try:
            response = await self._take_in(req, context, next, key, kind)
        except BaseException:
            acknowledged()
            raise
        if response is not None or req.mode != "http":
            # answered here, without a listener; or Socket Mode, where Bolt answers once the listener acks
            # (and not at all when none listens): it counts while it is recorded, the part that is ours
            acknowledged()
        return response

    async def _take_in(
        self,
        req: AsyncBoltRequest,
        context: AsyncBoltContext,
        next: Callable[[], Awaitable[None]],
        key: str,
        kind: str,
    ) -> BoltResponse | None:
        request = await self._recorded(req, key, kind)
        if isinstance(request, BoltResponse):
            return request
        self._attach(context, request, may_wait_in_inbox=kind != "view")
        await next()
        if not context.get(_HEARD):
            # nothing listens to it (Bolt gives Slack no ack, and Slack tells the person): nothing will finish it
            self._in_flight.discard(key)
            await self.finish(key)
        return None

    async def _recorded(self, req: AsyncBoltRequest, key: str, kind: str) -> InboundRequest | BoltResponse:
        """Record the request: it, or the answer for one that is not acted on (a replay; not recorded)."""
        now = self.clock()
        user, channel = _who(req.body)
        payload = {k: v for k, v in req.body.items() if k not in NOT_KEPT}
        request = InboundRequest(key, kind, request_name(req.body), payload, user, channel, now, now, 1)
        try:
            recorded = await self._record(request)
        except DBAPIError as exc:
            if (cause := write_failure(exc)) is None:
                raise
            self.writes.failed(cause)
            return self._not_recorded(req.body, kind, str(NotSaved(cause)))
        if not recorded:
            METRICS.command(request.name, "replayed")
            log.warning("%s from %s was received before (same %s): not acted on again", request.name, user, key[:4])
            return BoltResponse(status=200, body="")
        return request

    async def front(self, req: AsyncBoltRequest) -> BoltResponse | None:
        """HTTP mode: record a verified command or click and answer it here; Bolt dispatches it after the ack.

        Bolt's listener runner looks for a listener's ack every 10 ms, and its middleware runs first: a
        request answered here waits for neither, only for its record. None for what Bolt answers itself:
        a form (its ack carries the change's outcome), events, options.
        """
        identity = identify(req)
        if identity is None or identity[1] == "view" or self.app is None:
            return None
        key, kind = identity
        acknowledged = self._arrival()
        try:
            request = await self._recorded(req, key, kind)
        finally:
            # the answer is ready (its bytes leave before anything scheduled now runs)
            acknowledged()
        if isinstance(request, BoltResponse):
            return request
        self._in_flight.add(key)
        if self._inbox_first():
            self._defer(key, request.claimed_at)  # a burst: it waits in the inbox without being dispatched
        else:
            # a context of its own: what the middleware sets in it is this request's, not the HTTP handler's
            task = asyncio.get_running_loop().create_task(self._after_front(request), context=contextvars.Context())
            self._dispatching.add(task)
            task.add_done_callback(self._dispatched)
        return BoltResponse(status=200, body="")

    def _not_recorded(self, body: dict[str, Any], kind: str, text: str) -> BoltResponse:
        """The ack for a request the inbox could not record: it is not acted on, and the person is told so."""
        text = slack_escape(text)
        if kind == "command":
            return BoltResponse(status=200, body={"response_type": "ephemeral", "text": text})
        if kind == "view":
            blocks = (body.get("view") or {}).get("blocks") or []
            block = next((b.get("block_id") for b in blocks if isinstance(b, dict) and b.get("type") == "input"), None)
            if block:
                return BoltResponse(status=200, body={"response_action": "errors", "errors": {block: text[:300]}})
            return BoltResponse(status=200, body="")
        if url := body.get("response_url"):  # a click: Slack shows nothing of its ack, so the reply goes after it
            task = asyncio.get_running_loop().create_task(self._ephemeral(str(url), text))
            self._replies.add(task)
            task.add_done_callback(self._replies.discard)
        return BoltResponse(status=200, body="")

    def _attach(
        self, context: AsyncBoltContext, request: InboundRequest, *, may_wait_in_inbox: bool, acks_waited: bool = False
    ) -> None:
        """`may_wait_in_inbox`: once acknowledged, the request may wait for its turn in the inbox rather than
        in memory (not a form, whose ack comes after its change; not one taken up from the inbox already).
        `acks_waited`: it waited for the acks under way before it was dispatched (`front`)."""
        key = request.key
        # the listener's task is created after the middleware returns, so it inherits this value
        CURRENT_REQUEST.set(RequestSlot(key))
        self._in_flight.add(key)
        done: asyncio.Event | None = context.get("inbox_done")
        # read now, not from `context` later: the context holds these closures, and a closure holding the
        # context would be a cycle, keeping the whole request until a full collection (a burst's thousands)
        own: Callable[[], None] | None = context.get(ACKNOWLEDGED)
        turn = False
        deferred = False

        async def take_turn() -> None:
            # after the ack: waiting here holds no database connection and no SQLite lock
            nonlocal turn, deferred
            if turn:
                return
            if own is not None and self._arriving <= 1:
                # no other request is being acknowledged: its work may run while Bolt sends its ack
                own()
            if may_wait_in_inbox and self._inbox_first():
                # recorded already: it waits in the inbox, its turn after those before it
                deferred = True
                self._defer(key, request.claimed_at)
                raise asyncio.CancelledError
            self._waiting += 1
            try:
                if not acks_waited:
                    await self._after_acks()
                await self._working.acquire()
            finally:
                self._waiting -= 1
                self._room.set()
            if self._stopping:  # left recorded and unfinished: the next start processes it
                self._working.release()
                raise asyncio.CancelledError
            turn = True
            if (task := asyncio.current_task()) is not None:
                self._at_work.add(task)

        async def finish(completed: bool = True) -> None:
            if turn:
                self._working.release()
                self._at_work.discard(asyncio.current_task())
            try:
                if completed:  # a listener the stop cut short stays unfinished, for the next start
                    # a form, or recovered after a restart (recovery waits for it): written at once
                    await self.finish(key, at_once=request.kind == "view" or done is not None)
            finally:
                if not deferred:
                    self._in_flight.discard(key)
                if done is not None:
                    done.set()

        context[TAKE_TURN] = take_turn
        context[FINISH_REQUEST] = finish
        heard: list[bool] = []  # a listener took the request (not the context: a closure on it is a cycle)
        context[LISTENER_STARTED] = functools.partial(heard.append, True)
        context[_HEARD] = heard

    # --- a burst: acknowledged requests waiting in the inbox ------------------------------------------------

    def _in_memory(self) -> int:
        """Acknowledged requests waiting in memory: for their turn, or for their dispatch after the front."""
        return self._waiting + len(self._dispatching)

    def _inbox_first(self) -> bool:
        """Whether an acknowledged request waits in the inbox: others wait there before it, or memory is full."""
        behind = bool(self._deferred) or self._taking_one
        return (behind or self._in_memory() >= WAITING) and not self._stopping

    def _defer(self, key: str, claimed_at: datetime) -> None:
        if not self._deferred:
            log.info("more than %d acknowledged requests wait for their turn: the rest wait in the inbox", WAITING)
        self._deferred.append((key, claimed_at))
        if self._taking_up is None or self._taking_up.done():
            # a context of its own: not the current request's, which a request it takes up must not inherit
            self._taking_up = asyncio.get_running_loop().create_task(self._take_up(), context=contextvars.Context())

    async def _take_up(self) -> None:
        """Take the requests left in the inbox up again, oldest first, as room frees up in memory."""
        while self._deferred and not self._stopping:
            if self._in_memory() >= WAITING // 2:
                self._room.clear()
                await self._room.wait()
                continue
            key, claimed_at = self._deferred.popleft()
            self._taking_one = True  # until it is dispatched, what arrives still goes behind it
            try:
                await self._take_up_one(key, claimed_at)
            except Exception:
                self._in_flight.discard(key)  # the sweep finds it once its claim is a minute old
                log.warning("could not take up the recorded request %s; the sweep will", key[:16], exc_info=True)
            finally:
                self._taking_one = False

    async def _take_up_one(self, key: str, claimed_at: datetime) -> None:
        async with self._writing() as session:
            request = await repo.take_up_request(session=session, key=key, claimed_at=claimed_at, now=self.clock())
        if request is None:
            self._in_flight.discard(key)  # finished meanwhile, or another replica took it over
            return
        await self._dispatch(request)

    def _dispatched(self, task: asyncio.Task[None]) -> None:
        self._dispatching.discard(task)
        self._room.set()

    async def _after_front(self, request: InboundRequest) -> None:
        try:
            # even Bolt's dispatch waits: it costs about as much as the ack itself
            await self._after_acks()
            if self._stopping:  # left recorded and unfinished: the next start processes it
                return
            await self._dispatch(request, front=True)
        except Exception:
            self._in_flight.discard(request.key)  # the sweep takes it over once its claim is a minute old
            log.exception("could not dispatch the recorded %s from %s; the sweep will", request.name, request.user_id)

    async def _dispatch(
        self, request: InboundRequest, *, front: bool = False, done: asyncio.Event | None = None
    ) -> None:
        """Run a recorded request's listener; its ack is out already (or, recovered, no longer matters).

        Mode socket_mode: the payload was verified when it was recorded (its signature may have expired since).
        """
        assert self.app is not None, "Inbox.app is set when the Bolt app is built"
        context: dict[str, Any] = {_RECOVERED: request}
        if front:
            context[_FRONT] = True
        if done is not None:
            context["inbox_done"] = done
        # its listener acks (already done, so nothing is sent) and waits for its turn like the rest
        bolt_request = AsyncBoltRequest(body=request.payload, mode="socket_mode", context=context)
        response = await self.app.async_dispatch(bolt_request)
        CURRENT_REQUEST.set(None)  # its listener has its own copy; the next one here gets its own slot
        if response.status == 200 or bolt_request.context.get(_HEARD):
            return  # its listener finishes it (one may answer 404 by being slow to ack: it still finishes)
        # no listener will finish it: nothing listens to it, or a middleware failed (past the deps, `on_error`
        # told the person to try again; before them, nobody was told: that is said here)
        self._in_flight.discard(request.key)
        if response.status == 404 and request.kind == "command":
            name = slack_escape(request.name)
            await self._reply(request, f"This app does not handle `{name}`; nothing was done.")
        elif response.status != 404:
            log.warning("%s from %s failed before its listener (%s)", request.name, request.user_id, response.status)
            if "deps" not in bolt_request.context:
                await self._reply(request, _FAILED_EARLY)
        await self.finish(request.key)
        if done is not None:
            done.set()

    async def finish(self, key: str, *, at_once: bool = True) -> None:
        """Mark the request finished: its listener replied, or said why not. Unless `at_once`, it is written
        with the next record, or within FINISH_WRITE_WITHIN."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._finishes.append((key, future))
        if at_once or self._stopping:
            self._write_soon()
        elif self._finish_timer is None and (self._writer is None or self._writer.done()):
            self._finish_timer = loop.call_later(FINISH_WRITE_WITHIN, self._write_soon)
        try:
            await future
        except Exception:  # it stays unfinished: recovery finds its change applied and repeats only the reply
            log.warning("could not mark request %s finished", key[:16], exc_info=True)

    # --- after a crash ------------------------------------------------------------------------------------

    async def recover(self, *, received_before: datetime | None = None, claimed_before: datetime | None = None) -> int:
        """Finish what was recorded and not finished; returns how many requests were taken over.

        At start: what was received before this process started. On the sweep: what another process
        claimed over a minute ago and left unfinished.
        """
        async with self.inbox_sessions() as session:
            waiting = await repo.unfinished_requests(
                session=session, received_before=received_before, claimed_before=claimed_before
            )
        taken = 0
        for request in waiting:
            if request.key in self._in_flight:
                continue
            async with self._writing() as session:
                claimed = await repo.claim_request(session=session, request=request, now=self.clock())
            if not claimed:
                continue  # another replica took it first
            taken += 1
            try:
                await self._complete(request)
            except Exception:
                log.exception("could not finish the recorded %s from %s", request.name, request.user_id)
        if taken:
            log.info("finished %d request(s) recorded before a restart", taken)
        return taken

    async def _complete(self, request: InboundRequest) -> None:
        async with self.sessions() as session:
            reply = await repo.handled_reply(session=session, key=request.key)
        if reply is not None:  # the change was committed; only the reply may not have gone out
            if reply:
                await self._reply(request, reply)
            await self.finish(request.key)
            return
        if self.clock() - request.received_at > RECOVER_WITHIN:
            log.error(
                "not applying %s from %s: it was received more than %s ago",
                request.name,
                request.user_id,
                RECOVER_WITHIN,
            )
            await self.finish(request.key)
            return
        if request.attempts >= MAX_ATTEMPTS:
            log.error("giving up on %s from %s after %d attempts", request.name, request.user_id, request.attempts)
            await self.finish(request.key)
            return
        if request.kind == "view":
            # a form is acknowledged only after its change is saved: Slack told the person it failed
            log.info("not applying a form %s from %s that was never acknowledged", request.name, request.user_id)
            await self.finish(request.key)
            return
        await self._replay(request)

    async def _replay(self, request: InboundRequest) -> None:
        done = asyncio.Event()
        await self._dispatch(request, done=done)
        try:
            async with asyncio.timeout(FINISH_WITHIN):
                await done.wait()
        except TimeoutError:
            log.warning(
                "the recorded %s from %s is still running; the sweep will look again", request.name, request.user_id
            )

    async def _ephemeral(self, response_url: str, text: str) -> None:
        """A reply only its sender sees, through `response_url`, over the app's pooled HTTP session."""
        webhook = AsyncWebhookClient(response_url, session=self.client.session)
        await webhook.send(text=text, response_type="ephemeral", replace_original=False)

    async def _reply(self, request: InboundRequest, text: str) -> None:
        url = request.payload.get("response_url")
        if url and self.clock() - request.received_at <= RESPONSE_URL_VALID:
            await self._ephemeral(str(url), text)
            return
        await reply_privately(self.client, user=request.user_id, channel=request.channel_id, text=text)

    # --- housekeeping -------------------------------------------------------------------------------------

    async def sweep(self) -> None:
        """Take over requests a dead replica left unfinished, and forget finished ones past the replay window."""
        await self.recover(claimed_before=self.clock() - STALE_CLAIM)
        async with self._writing() as session:
            expired = await repo.expire_requests(session=session, received_before=self.clock() - KEEP)
        async with self.sessions() as session, session.begin():
            await repo.expire_handled(session=session, before=self.clock() - KEEP_HANDLED)
        if expired:
            log.debug("forgot %d finished requests older than %s", expired, KEEP)

    def start(self, started_at: datetime) -> None:
        """Finish what was left before `started_at`, then sweep every minute until `stop`."""
        self._sweeper = asyncio.get_running_loop().create_task(self._run(started_at))

    async def _run(self, started_at: datetime) -> None:
        # At once what is clearly abandoned; after a short grace also what was recorded just before the
        # start, which another replica may still be answering (a crash a moment ago looks the same).
        for wait in (0.0, START_GRACE.total_seconds()):
            await asyncio.sleep(wait)
            try:
                await self.recover(received_before=started_at, claimed_before=self.clock() - START_GRACE)
            except Exception:
                log.exception("recovering recorded requests failed; the sweep tries again")
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.sweep()
            except Exception:
                log.warning("the request inbox sweep failed; it runs again in %ss", SWEEP_SECONDS, exc_info=True)

    async def stop(self, within: float = 5.0) -> None:
        """Start no more requests, give those at work `within` seconds and stop the rest (they stay recorded,
        for the next start), stop sweeping, and write what is waiting (a finish not written would repeat
        its reply at start)."""
        self._stopping = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        if self._dispatching:  # answered at the front, not at work yet: left recorded for the next start
            _, pending = await asyncio.wait(set(self._dispatching), timeout=within)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._at_work:
            _, cut_short = await asyncio.wait(set(self._at_work), timeout=max(0.0, deadline - loop.time()))
            for task in cut_short:
                task.cancel()
            await asyncio.gather(*cut_short, return_exceptions=True)
            if cut_short:
                log.info("stopped %d request(s) still at work; the next start finishes them", len(cut_short))
        if self._taking_up is not None:  # what still waits in the inbox is taken up at the next start
            self._room.set()
            await asyncio.gather(self._taking_up, return_exceptions=True)
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        if self._replies:  # telling someone their click was not recorded: before the HTTP session closes
            await asyncio.wait(set(self._replies), timeout=within)
        if self._finishes:
            self._write_soon()
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
