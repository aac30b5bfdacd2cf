"""Assembling the running program: database, service, Slack app, dispatcher, scheduler, HTTP server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

# imported for what they register: timer rules (T0, the ladder, the vote) and Python-built messages
import bot.evaluation
import bot.lifecycle
import bot.paging
import bot.votes  # noqa: F401 - see above
import messages.issue_cards
import messages.vote_cards  # noqa: F401 - see above
from bot.domain import Outcome, Release
from bot.inbox import Inbox
from bot.metrics import METRICS
from bot.pagerduty import PagerDuty
from bot.plan import Plan, utcnow
from bot.service import Service
from bot.settings import Settings
from bot.slack import Directory, web_client
from handlers import register_all
from handlers.deps import Deps
from handlers.errors import reply_error, request_name
from schedules.dispatcher import Dispatcher
from schedules.planned import sync_schedule
from schedules.timekeeper import Timekeeper
from schedules.timers import arm_plan_timers
from storage import repo
from storage.db import create_engine, inbox_url, is_sqlite, migrate, ping, sessionmaker

log = logging.getLogger(__name__)

OVERDUE_AFTER = timedelta(minutes=1)
"""A message or timer this late and not done counts as overdue in /metrics."""


async def schedule_plan(session: AsyncSession, plan: Plan, release: Release, now: datetime) -> None:
    """What loading a plan schedules: its messages and its timers (T0, the vote, the decision point)."""
    await sync_schedule(session, plan, release, now)
    await arm_plan_timers(session, plan, release, now)


async def on_error(error: Exception, body: dict[str, Any], respond: Any, client: Any) -> None:
    """Errors outside listeners (middleware) go to the same reply as listener errors."""
    await reply_error(error, body, respond, client)


def build_app(settings: Settings, client: AsyncWebClient, deps: Deps, inbox: Inbox | None = None) -> AsyncApp:
    """The Bolt app with the request inbox and deps middleware, every listener and the error handler."""
    app = AsyncApp(
        client=client,
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
    inbox: Inbox
    inbox_engine: AsyncEngine
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def _changed(self, release_id: str, outcome: Outcome) -> None:
        """Deliver in the background, so the command's reply does not wait for Slack."""
        self.background(self.timekeeper.changed(release_id, outcome))

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as a task that shutdown waits for (`settle`)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for background deliveries started by recent changes (tests and shutdown use it)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        # Drain first: stopping the scheduler cancels the pass it started, between a send and its record.
        await self.dispatcher.drain()
        await self.inbox.stop()
        self.timekeeper.stop()
        await self.settle()
        await self.engine.dispose()
        if self.inbox_engine is not self.engine:
            await self.inbox_engine.dispose()


async def build_runtime(settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> Runtime:
    """Everything `warroom run` needs, migrated and wired, not yet serving."""
    engine = create_engine(settings.database_url)
    await migrate(engine)
    service = Service(sessions=sessionmaker(engine), clock=clock)
    service.plan_loaded.append(schedule_plan)
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    client = web_client(token, settings.slack_api_url)
    directory = Directory(client)
    dispatcher = Dispatcher(service, client, directory, clock)
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
    app = build_app(settings, client, Deps(service, directory, clock), inbox)
    runtime = Runtime(settings, engine, service, client, directory, dispatcher, timekeeper, app, inbox, inbox_engine)
    service.after_commit.append(runtime._changed)
    # PagerDuty runs in the background (tracked with the runtime's tasks) so it never delays a Slack page
    service.externals["pagerduty"] = PagerDuty(service, runtime._tasks, wake=dispatcher.run_due).submit
    return runtime


def web_app(runtime: Runtime, *, serve_slack: bool) -> web.Application:
    """`POST /slack/events` (HTTP mode), `GET /healthz`, `GET /metrics`."""

    async def slack_events(request: web.Request) -> web.Response:
        started = time.perf_counter()
        bolt_request = await to_bolt_request(request)
        bolt_response = await runtime.app.async_dispatch(bolt_request)
        kind = "command" if "command=" in bolt_request.raw_body[:2000] else "interaction"
        METRICS.ack_seconds.labels(kind).observe(time.perf_counter() - started)
        return await to_aiohttp_response(bolt_response)

    async def healthz(_request: web.Request) -> web.Response:
        ok = await ping(runtime.engine)
        body = {"status": "ok" if ok else "database unavailable", "releases": sorted(runtime.service.plans)}
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
    return application


def socket_mode_handler(runtime: Runtime) -> Any:
    """Bolt's Socket Mode handler, on the app's own Web API client (so SLACK_API_URL reaches it too)."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    token = runtime.settings.slack_app_token
    assert token is not None
    return AsyncSocketModeHandler(runtime.app, token.get_secret_value(), web_client=runtime.client)


async def serve(runtime: Runtime, stop: asyncio.Event) -> None:
    """Serve until `stop` is set: HTTP mode, or Socket Mode plus the health and metrics endpoints."""
    settings = runtime.settings
    started_at = runtime.service.clock()  # requests recorded before this are finished by the inbox
    socket_handler = socket_mode_handler(runtime) if settings.socket_mode else None
    if socket_handler is not None:
        await socket_handler.connect_async()
    runner = web.AppRunner(web_app(runtime, serve_slack=not settings.socket_mode), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    await runtime.timekeeper.start()
    runtime.inbox.start(started_at)
    mode = (
        "Socket Mode"
        if settings.socket_mode
        else f"HTTP mode on POST http://{settings.host}:{settings.port}/slack/events"
    )
    log.info("warroom is running (%s); releases: %s", mode, ", ".join(sorted(runtime.service.plans)))
    try:
        await stop.wait()
    finally:
        if socket_handler is not None:
            await socket_handler.close_async()
        await runner.cleanup()
        await runtime.close()
