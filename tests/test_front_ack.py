"""Over HTTP a command or click is acknowledged as soon as the inbox has recorded it, before Bolt dispatches it:
Bolt's listener runner looks for a listener's ack every 10 ms, which every acknowledgement would wait for,
and no middleware or listener stands between a recorded request and its ack."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from slack_bolt.middleware.async_custom_middleware import AsyncCustomMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from sqlalchemy import select

from storage.models import InboxRow
from tests.conftest import Clock, sign
from tests.fake_slack import FakeSlack
from tests.test_acks_first import phase_list, replied
from tests.test_gonogo_handlers import click
from tests.test_inbox import group_runtime, until_finished


async def test_a_command_is_acknowledged_before_bolt_dispatches_it(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    async with group_runtime(fake_slack, database_url, clock) as (runtime, client):
        dispatched, let_go = asyncio.Event(), asyncio.Event()

        async def hold(next: Callable[[], Awaitable[None]]) -> None:
            dispatched.set()
            await let_go.wait()
            await next()

        runtime.app.middleware(hold)
        body = phase_list(fake_slack, "held")
        try:
            async with asyncio.timeout(5):  # were the ack behind Bolt's middleware, it would not come at all
                response = await client.post("/slack/events", data=body, headers=sign(body))
            assert response.status == 200
            assert await response.text() == "", "a command's ack shows nothing: the reply follows"
            await asyncio.wait_for(dispatched.wait(), 5)
            assert not replied(fake_slack, "held")
        finally:
            let_go.set()
        await fake_slack.wait_until(lambda: replied(fake_slack, "held"), 10)
        await until_finished(runtime)
        await runtime.settle()


async def test_a_click_nothing_listens_to_is_acknowledged_and_finished(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    async with group_runtime(fake_slack, database_url, clock) as (runtime, client):
        link = click(fake_slack, "open_runbook_link", "U0QA")  # a link button: Slack sends the click anyway
        body = urlencode({"payload": json.dumps(link)})
        response = await client.post("/slack/events", data=body, headers=sign(body))
        assert response.status == 200, "Slack marks a button whose click is not answered 200 as failed"
        await until_finished(runtime)
        assert not [c for c in fake_slack.calls if c.method.startswith("respond")], "a link needs no reply"
        await runtime.settle()


async def test_a_command_nothing_here_handles_is_answered_saying_so(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    async with group_runtime(fake_slack, database_url, clock) as (runtime, client):
        form: dict[str, Any] = dict(parse_qsl(phase_list(fake_slack, "stray")), command="/deploy")
        body = urlencode(form)
        response = await client.post("/slack/events", data=body, headers=sign(body))
        assert response.status == 200
        await fake_slack.wait_until(lambda: replied(fake_slack, "stray"), 10)
        reply = next(c for c in fake_slack.calls if c.method == "respond:stray")
        assert "/deploy" in str(reply.args.get("text")), reply.args
        assert reply.args.get("response_type") == "ephemeral"
        await until_finished(runtime)
        async with runtime.inbox.inbox_sessions() as session:
            rows = (await session.scalars(select(InboxRow))).all()
        assert [r.finished_at is not None for r in rows] == [True]
        await runtime.settle()


def failing_for(who: str) -> Callable[..., Awaitable[None]]:
    """A Bolt middleware that raises for the request `who` (by its trigger_id) and passes the rest on."""

    async def broken(body: dict[str, Any], next: Callable[[], Awaitable[None]]) -> None:
        if who in str(body.get("trigger_id", "")):
            raise RuntimeError(f"a middleware failed on {who}")
        await next()

    return broken


async def test_a_request_whose_middleware_fails_after_the_ack_is_told_and_finished(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    async with group_runtime(fake_slack, database_url, clock) as (runtime, client):
        runtime.app.middleware(failing_for("broken"))
        body = phase_list(fake_slack, "broken")
        response = await client.post("/slack/events", data=body, headers=sign(body))
        assert response.status == 200, "answered before the middleware ran"
        await fake_slack.wait_until(lambda: replied(fake_slack, "broken"), 10)
        reply = next(c for c in fake_slack.calls if c.method == "respond:broken")
        assert "Try again" in str(reply.args.get("text")), reply.args
        await until_finished(runtime)  # told to try again: not tried again by the sweep too
        later = phase_list(fake_slack, "after")
        assert (await client.post("/slack/events", data=later, headers=sign(later))).status == 200
        await fake_slack.wait_until(lambda: replied(fake_slack, "after"), 10)
        await until_finished(runtime)
        await runtime.settle()


async def test_in_socket_mode_a_command_nothing_handles_is_finished_and_not_answered_later(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    async with group_runtime(fake_slack, database_url, clock) as (runtime, _client):
        body = dict(parse_qsl(phase_list(fake_slack, "stray")), command="/deploy")
        response = await runtime.app.async_dispatch(AsyncBoltRequest(body=body, mode="socket_mode"))
        assert response.status == 404, "Bolt gives Slack no ack, and Slack tells the person"
        await until_finished(runtime)
        clock.advance(hours=3)
        assert await runtime.inbox.recover(received_before=clock()) == 0, "nothing left for a restart to redo"
        assert not [c for c in fake_slack.calls if "does not handle" in str(c.args.get("text"))]
        await runtime.settle()


async def test_a_request_failing_before_the_apps_middleware_is_told_and_finished(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    async with group_runtime(fake_slack, database_url, clock) as (runtime, client):
        # first of all the app's middleware: `on_error` finds no deps and sends nothing itself
        broken = AsyncCustomMiddleware(app_name="test", func=failing_for("early"))
        runtime.app._async_middleware_list.insert(0, broken)
        body = phase_list(fake_slack, "early")
        assert (await client.post("/slack/events", data=body, headers=sign(body))).status == 200
        await fake_slack.wait_until(lambda: replied(fake_slack, "early"), 10)
        reply = next(c for c in fake_slack.calls if c.method == "respond:early")
        assert "nothing was done. Try again" in str(reply.args.get("text")), reply.args
        await until_finished(runtime)
        await runtime.settle()
