"""Assembling the running program: database, service, Slack app, dispatcher, scheduler, HTTP server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import ClientSession, web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import build_normalized_headers, extract_content_type, parse_body
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

# imported for what they register: timer rules (T0, the ladder, the vote) and Python-built messages
import bot.evaluation
import bot.lifecycle
import bot.paging
import bot.votes  # noqa: F401 - see above
import messages.issue_cards
import messages.vote_cards  # noqa: F401 - see above
from bot import heap
from bot.connection import SocketLink, keep_asking_auth_test
from bot.core.pacing import Pace
from bot.core.signature import refusal
from bot.core.slack_request import body_problem
from bot.core.window import ended_before_start
from bot.domain import Outcome, Release
from bot.home import HomeBoard
from bot.inbox import Inbox
from bot.integrations.alertmanager import PATH as ALERTMANAGER_HOOK
from bot.integrations.alertmanager import alertmanager_hook
from bot.integrations.prometheus import PrometheusChecks
from bot.metrics import METRICS
from bot.pagerduty import PagerDuty
from bot.plan import Plan, utcnow
from bot.redact import REDACTOR
from bot.service import Service
from bot.settings import Settings, SettingsError
from bot.slack import BotIdentity, Directory, PooledRespond, delivery_client, web_client
from handlers import register_all
from handlers.deps import Deps
from handlers.errors import reply_error, request_name
from schedules.dispatcher import Dispatcher
from schedules.planned import load_as_history, sync_schedule
from schedules.timekeeper import Timekeeper
from schedules.timers import arm_plan_timers
from storage import repo
from storage.db import create_engine, inbox_url, is_sqlite, migrate, ping, sessionmaker

log = logging.getLogger(__name__)

OVERDUE_AFTER = timedelta(minutes=1)
"""A message or timer this late and not done counts as overdue in /metrics."""


async def schedule_plan(session: AsyncSession, plan: Plan, release: Release, now: datetime) -> None:
    """What loading a plan schedules: its messages and its timers (T0, the vote, the decision point)."""
    if ended_before_start(plan, release, now):
        await load_as_history(session, plan, release, now)
        return
    await sync_schedule(session, plan, release, now)
    await arm_plan_timers(session, plan, release, now)


async def on_error(
    error: Exception, body: dict[str, Any], respond: Any, client: Any, context: AsyncBoltContext
) -> None:
    """Errors outside listeners (middleware) go to the same reply as listener errors.

    Only once the request has passed Bolt's own checks (signature, authorization) and reached the app's
    middleware: before that, its `response_url` and ids are whatever the sender wrote, and nothing is sent.
    """
    if "deps" not in context:
        log.error("error in Bolt's own checks of %s; no reply sent", request_name(body), exc_info=error)
        return
    await reply_error(error, body, respond, client)


class _UnusedTokenWarning(logging.Filter):
    """Bolt reads SLACK_BOT_TOKEN from the environment itself and warns that it goes unused when a client is
    given; the token reaches it through `authorize`, so the warning says nothing true."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


_UNUSED_TOKEN_WARNING = _UnusedTokenWarning()


def build_app(
    settings: Settings,
    client: AsyncWebClient,
    deps: Deps,
    identity: BotIdentity | None = None,
    inbox: Inbox | None = None,
) -> AsyncApp:
    """The Bolt app with the request inbox and deps middleware, every listener and the error handler.

    Bolt would call `auth.test` on the first request, before its ack — with Slack down, that command is lost.
    `authorize` answers from `identity` (the start-up auth.test) instead, so no request waits on Slack.
    """
    who = identity or BotIdentity()
    token = client.token

    async def authorize(enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
        return AuthorizeResult(
            enterprise_id=enterprise_id or who.enterprise_id,
            team_id=team_id or who.team_id,
            bot_id=who.bot_id,
            bot_user_id=who.user_id,
            bot_token=token,
            user_id=user_id,
        )

    bolt_log = logging.getLogger("slack_bolt.AsyncApp")
    bolt_log.addFilter(_UNUSED_TOKEN_WARNING)
    app = AsyncApp(
        # named, Bolt does not look its caller's file name up with inspect.stack(), which reads the source of
        # every frame on the stack: a tenth of a second at start
        name="warroom",
        # given its logger, Bolt leaves its level alone; left to itself it copies the root's level onto it,
        # and its Socket Mode session lines would show at INFO although `slack_bolt` is set to WARNING
        logger=bolt_log,
        # the token arrives through `authorize` (given both, Bolt warns that one is ignored)
        client=AsyncWebClient(
            base_url=client.base_url,
            timeout=client.timeout,
            retry_handlers=list(client.retry_handlers),
            session=client.session,
        ),
        authorize=authorize,
        signing_secret=settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else "",
        request_verification_enabled=not settings.socket_mode,
        raise_error_for_unhandled_request=False,
    )
    if inbox is not None:
        # after Bolt's own verification, before any listener acks: what is acknowledged is recorded
        app.middleware(inbox.middleware)
        inbox.app = app

    @app.middleware
    async def inject_deps(context: AsyncBoltContext, body: dict[str, Any], next: Callable[[], Any]) -> None:
        context["deps"] = deps
        if type(context.get("respond")) is AsyncRespond and client.session is not None:
            # Bolt's own (not the private reply of a recovered request whose response_url has expired)
            context["respond"] = PooledRespond(response_url=context.response_url, session=client.session)
        METRICS.command(request_name(body), "received")
        await next()

    register_all(app)
    app.error(on_error)
    return app


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    service: Service
    client: AsyncWebClient
    directory: Directory
    dispatcher: Dispatcher
    timekeeper: Timekeeper
    app: AsyncApp
    http: ClientSession
    """One pooled, kept-alive HTTP session for the Slack Web API, PagerDuty and Prometheus, closed at shutdown."""
    inbox: Inbox
    inbox_engine: AsyncEngine
    identity: BotIdentity = field(default_factory=BotIdentity)
    socket: SocketLink | None = None
    checks: PrometheusChecks | None = None
    """Reads the plans' checks from Prometheus (also wired into the dispatcher, the timer and `/release checks`)."""
    exit_code: int = 0
    home: HomeBoard | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def _changed(self, release_id: str, outcome: Outcome) -> None:
        """Deliver in the background, so the command's reply does not wait for Slack: one pass for all the
        changes that come while it runs, and nothing of each change waiting with it."""
        self._keep(self.timekeeper.touch())

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as a task that shutdown waits for (`settle`)."""
        self._keep(asyncio.get_running_loop().create_task(work))

    def _keep(self, task: asyncio.Task[None]) -> None:
        if task not in self._tasks:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for background deliveries started by recent changes (tests and shutdown use it)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        # Drain first: stopping the scheduler cancels the pass it started, between a send and its record.
        # Meanwhile the requests at work finish (or are stopped, left for the next start) before the Slack
        # session they use closes.
        await asyncio.gather(self.dispatcher.drain(), self.inbox.stop())
        self.timekeeper.stop()
        if self.home is not None:
            self.home.stop()
        await self.timekeeper.finish()
        await self.settle()
        await self.http.close()
        await self.engine.dispose()
        if self.inbox_engine is not self.engine:
            await self.inbox_engine.dispose()


async def build_runtime(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    pace: Pace | None = None,
    identity: BotIdentity | None = None,
) -> Runtime:
    """Everything `warroom run` needs, migrated and wired, not yet serving (`pace`: Slack's by default;
    `identity`: the start-up auth.test)."""
    REDACTOR.add(*(s.get_secret_value() for s in settings.secrets()))
    REDACTOR.install()
    identity = identity or BotIdentity()
    engine = create_engine(settings.database_url)
    await migrate(engine)
    service = Service(sessions=sessionmaker(engine), clock=clock)
    service.plan_loaded.append(schedule_plan)
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    http = ClientSession()
    client = web_client(token, settings.slack_api_url, session=http)
    directory = Directory(client)
    delivery = delivery_client(token, settings.slack_api_url, session=http)
    pace = pace or Pace()
    dispatcher = Dispatcher(service, delivery, directory, clock, pace=pace)
    timekeeper = Timekeeper(dispatcher, clock)
    # Its own engine (on SQLite its own file), so recording a request before the ack never waits for the work
    inbox_database = inbox_url(settings.database_url)
    if ":memory:" in inbox_database:
        inbox_engine = engine  # a second engine would open a second, empty in-memory database
    else:
        inbox_engine = create_engine(inbox_database)
        if inbox_database != settings.database_url:
            await migrate(inbox_engine)
    inbox = Inbox(
        service.sessions, sessionmaker(inbox_engine), client, clock, one_writer=is_sqlite(settings.database_url)
    )
    prometheus_token = settings.prometheus_token.get_secret_value() if settings.prometheus_token else None
    checks = PrometheusChecks(service, http=http, token=prometheus_token)
    dispatcher.before_post = checks.before_post  # the vote, status updates, the decision prompt: read just before
    home = HomeBoard(service, directory, client, spawn=lambda work: runtime.background(work), every=pace.home_every)
    app = build_app(settings, client, Deps(service, directory, clock, checks=checks, home=home), identity, inbox)
    runtime = Runtime(
        settings, engine, service, client, directory, dispatcher, timekeeper, app, http, inbox, inbox_engine, identity
    )
    service.after_commit.append(runtime._changed)
    runtime.home = home
    service.after_commit.append(home.changed)  # re-publishes the App Home of the people a change concerns
    # PagerDuty runs in the background (tracked with the runtime's tasks) so it never delays a Slack page
    service.externals["pagerduty"] = PagerDuty(service, runtime._tasks, wake=dispatcher.run_due, http=http).submit
    runtime.checks = checks
    checks.tasks = runtime._tasks  # the checks timer reads in the background, like PagerDuty
    service.externals["prometheus"] = checks.submit
    return runtime


def _single_header(request: web.Request, name: str) -> str | None:
    """The header's value when it was sent exactly once (a repeated signature header is no signature)."""
    values = request.headers.getall(name, [])
    return values[0] if len(values) == 1 else None


def _bolt_request(raw: bytes, request: web.Request) -> AsyncBoltRequest | str:
    """The verified body as Bolt's request, or why it is not one Slack sends (not UTF-8, not a form, JSON
    or `payload` object, or not of the shape Slack gives each kind of request).

    The text handed to Bolt is exactly the bytes that were signed, decoded as UTF-8 whatever charset the
    Content-Type claims, so Bolt's own check of the signature sees the same body; it is parsed here with
    Bolt's own parser, so what is checked is what Bolt will read.
    """
    headers = build_normalized_headers(request.headers)  # type: ignore[arg-type]
    try:
        text = raw.decode("utf-8")
        body = parse_body(text, extract_content_type(headers))
    except ValueError as error:  # UnicodeDecodeError and json.JSONDecodeError are ValueErrors
        return "the body is not UTF-8" if isinstance(error, UnicodeDecodeError) else "the body does not parse"
    problem = body_problem(body)
    if problem is not None:
        return problem
    return AsyncBoltRequest(body=text, query=request.query_string, headers=headers)


def web_app(runtime: Runtime, *, serve_slack: bool) -> web.Application:
    """`POST /slack/events` (HTTP mode), `GET /healthz`, `GET /metrics`, `POST /hooks/alertmanager`."""

    secret = runtime.settings.slack_signing_secret
    signing_secret = secret.get_secret_value().encode() if secret else b""

    async def slack_events(request: web.Request) -> web.Response:
        started = time.perf_counter()
        raw = await request.read()
        why = refusal(
            secret=signing_secret,
            timestamp=_single_header(request, "X-Slack-Request-Timestamp"),
            signature=_single_header(request, "X-Slack-Signature"),
            body=raw,
            now=time.time(),
        )
        if why is not None:
            log.warning("refused a request to /slack/events from %s: %s", request.remote, why)
            return web.json_response({"error": "invalid request signature"}, status=401)
        bolt_request = _bolt_request(raw, request)
        if isinstance(bolt_request, str):
            log.warning("refused a signed request to /slack/events from %s: %s", request.remote, bolt_request)
            return web.json_response({"error": f"not a Slack request: {bolt_request}"}, status=400)
        # a command or click is answered once the inbox has it; Bolt dispatches it after the answer
        answered = await runtime.inbox.front(bolt_request)
        bolt_response = answered if answered is not None else await runtime.app.async_dispatch(bolt_request)
        kind = "command" if "command=" in bolt_request.raw_body[:2000] else "interaction"
        METRICS.ack_seconds.labels(kind).observe(time.perf_counter() - started)
        return await to_aiohttp_response(bolt_response)

    async def healthz(_request: web.Request) -> web.Response:
        ok = await ping(runtime.engine)
        failure = runtime.service.writes.failure or runtime.inbox.writes.failure
        status = "ok" if ok else "database unavailable"
        if ok and failure is not None:  # it answers but cannot save: commands are refused until it can
            ok, status = False, f"database cannot save: {failure}"
        body: dict[str, Any] = {
            "status": status,
            "releases": sorted(runtime.service.plans),
        }
        if runtime.socket is not None:
            # degraded, not down: scheduled posts still go out through the Web API, so a restart would not help
            body["socket"] = await runtime.socket.state()
        return web.json_response(body, status=200 if ok else 503)

    async def metrics(_request: web.Request) -> web.Response:
        try:
            async with runtime.service.sessions() as session:
                messages, timers = await repo.overdue(session=session, before=runtime.service.clock() - OVERDUE_AFTER)
            METRICS.overdue.labels("messages").set(messages)
            METRICS.overdue.labels("timers").set(timers)
        except Exception:  # the database being down is /healthz's to report; the counters are still served
            log.warning("could not count overdue messages for /metrics", exc_info=True)
        return web.Response(body=METRICS.render(), content_type="text/plain", charset="utf-8")

    application = web.Application()
    if serve_slack:
        application.router.add_post("/slack/events", slack_events)
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/metrics", metrics)
    # in Socket Mode too: Alertmanager reaches Warroom over HTTP whichever way Slack does
    application.router.add_post(
        ALERTMANAGER_HOOK, alertmanager_hook(runtime.service, runtime.settings.alertmanager_token)
    )
    return application


def socket_link(runtime: Runtime) -> SocketLink:
    """The Socket Mode connection, on the app's own Web API client (so SLACK_API_URL reaches it too)."""
    token = runtime.settings.slack_app_token
    assert token is not None
    return SocketLink(runtime.app, token.get_secret_value(), runtime.client)


def socket_mode_handler(runtime: Runtime) -> Any:
    """Bolt's Socket Mode handler (see `socket_link`)."""
    return socket_link(runtime).handler


async def serve(runtime: Runtime, stop: asyncio.Event) -> int:
    """Serve until `stop` is set: HTTP mode, or Socket Mode plus the health and metrics endpoints.

    Neither Slack nor the socket holds the rest back: the listener, the scheduler and the outbox start first;
    the Socket Mode connection and a token check Slack did not answer at start go on in the background.
    Returns the exit code: 0, or 2 when Slack refused a token meanwhile.
    """
    settings = runtime.settings
    started_at = runtime.service.clock()  # requests recorded before this are finished by the inbox

    def fatal(message: str) -> None:
        log.error("%s", message)
        runtime.exit_code = 2
        stop.set()

    # before the first request: what serving makes from here on is the collector's to free
    METRICS.gc_frozen_objects.set(heap.keep_start_up())
    METRICS.watch_collections()
    runner = web.AppRunner(web_app(runtime, serve_slack=not settings.socket_mode), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as exc:  # taken since the check at start
        await runner.cleanup()
        await runtime.close()
        message = f"WARROOM_PORT {settings.port} cannot be listened on at {settings.host}: {exc.strerror}"
        raise SettingsError(message) from None
    loops: list[asyncio.Task[None]] = []
    if not runtime.identity.known and settings.slack_bot_token is not None:
        token = settings.slack_bot_token.get_secret_value()
        loops.append(asyncio.create_task(keep_asking_auth_test(token, settings.slack_api_url, runtime.identity, fatal)))
    loops.append(asyncio.create_task(heap.Trimmer().run()))
    if settings.socket_mode:
        runtime.socket = socket_link(runtime)
        loops.append(asyncio.create_task(runtime.socket.run(fatal)))
    await runtime.timekeeper.start(deliver=False)
    # what fell due while the bot was down goes out in the background: a slow Slack must not hold the start
    runtime.background(runtime.timekeeper.catch_up())
    runtime.inbox.start(started_at)
    mode = (
        "Socket Mode"
        if settings.socket_mode
        else f"HTTP mode on POST http://{settings.host}:{settings.port}/slack/events"
    )
    if settings.alertmanager_token is not None:
        mode += f"; Alertmanager hook on POST http://{settings.host}:{settings.port}{ALERTMANAGER_HOOK}"
    log.info("warroom is running (%s); releases: %s", mode, ", ".join(sorted(runtime.service.plans)))
    try:
        await stop.wait()
    finally:
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        if runtime.socket is not None:
            await runtime.socket.close()
        await runner.cleanup()
        await runtime.close()
    return runtime.exit_code
