"""Acknowledgements first: the work behind one request's ack waits while other requests are still being
acknowledged (Slack gives each 3 seconds), for a bounded time, so a burst of work cannot make an ack late."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

from bot import inbox
from tests.conftest import Clock, sign
from tests.fake_slack import FakeSlack
from tests.test_gonogo_handlers import click
from tests.test_inbox import group_runtime


def phase_list(fake: FakeSlack, who: str) -> str:
    """`/phase list` whose reply goes to a response_url of its own (`respond:<who>` in the fake's calls)."""
    form = {
        "team_id": "T111", "channel_id": "C0WAR", "channel_name": "deployment-war-room", "user_id": "U0QA",
        "user_name": "qa", "command": "/phase", "text": "list", "api_app_id": "A111",
        "response_url": fake.webhook_url.replace("/respond", f"/{who}"), "trigger_id": f"{who}.phase.trigger",
    }  # fmt: skip
    return urlencode(form)


def replied(fake: FakeSlack, who: str) -> bool:
    return any(c.method == f"respond:{who}" for c in fake.calls)


def held_recording(runtime: Any, who: str, monkeypatch: pytest.MonkeyPatch) -> tuple[asyncio.Event, asyncio.Event]:
    """Over HTTP, hold the request `who` before the inbox writes its record, which its ack waits for: it is
    arriving, not acknowledged. Returns (arrived, let_go)."""
    arrived, let_go = asyncio.Event(), asyncio.Event()
    record = runtime.inbox._record

    async def held(request: Any) -> bool:
        if who in str(request.payload.get("trigger_id", "")):
            arrived.set()
            await let_go.wait()
        return bool(await record(request))

    monkeypatch.setattr(runtime.inbox, "_record", held)
    return arrived, let_go


async def held_arrival(runtime: Any, who: str) -> tuple[asyncio.Event, asyncio.Event]:
    """In Socket Mode, hold the request `who` after it is recorded and before its listener acks it: it is
    arriving, not acknowledged. Returns (arrived, let_go)."""
    arrived, let_go = asyncio.Event(), asyncio.Event()

    async def hold(body: dict[str, Any], next: Callable[[], Awaitable[None]]) -> None:
        if who in str(body.get("trigger_id", "")):
            arrived.set()
            await let_go.wait()
        await next()

    runtime.app.middleware(hold)  # after the inbox's and the deps' middleware: the request is recorded
    return arrived, let_go


async def test_work_behind_an_ack_waits_while_another_request_is_being_acknowledged(
    fake_slack: FakeSlack, database_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox, "ACKS_FIRST_WITHIN", 30.0)
    async with group_runtime(fake_slack, database_url, clock) as (runtime, client):
        arrived, let_go = held_recording(runtime, "second", monkeypatch)
        second_body = phase_list(fake_slack, "second")
        second = asyncio.create_task(client.post("/slack/events", data=second_body, headers=sign(second_body)))
        try:
            await asyncio.wait_for(arrived.wait(), 10)
            first_body = phase_list(fake_slack, "first")
            response = await client.post("/slack/events", data=first_body, headers=sign(first_body))
            assert response.status == 200, "the first request is acknowledged while the second arrives"
            await asyncio.sleep(0.5)  # its reply would have gone out by now
            assert not replied(fake_slack, "first"), "the first request's work ran before the second was acked"
        finally:
            let_go.set()
        assert (await second).status == 200
        await fake_slack.wait_until(lambda: replied(fake_slack, "first") and replied(fake_slack, "second"), 10)
        await runtime.settle()


async def test_work_waits_for_other_acks_no_longer_than_the_bound(
    fake_slack: FakeSlack, database_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox, "ACKS_FIRST_WITHIN", 0.2)
    async with group_runtime(fake_slack, database_url, clock) as (runtime, client):
        arrived, let_go = held_recording(runtime, "stuck", monkeypatch)
        stuck_body = phase_list(fake_slack, "stuck")
        stuck = asyncio.create_task(client.post("/slack/events", data=stuck_body, headers=sign(stuck_body)))
        try:
            await asyncio.wait_for(arrived.wait(), 10)
            body = phase_list(fake_slack, "first")
            assert (await client.post("/slack/events", data=body, headers=sign(body))).status == 200
            # a request that never finishes arriving does not hold the others' work back
            await fake_slack.wait_until(lambda: replied(fake_slack, "first"), 10)
            assert not stuck.done()
        finally:
            let_go.set()
        assert (await stuck).status == 200
        await fake_slack.wait_until(lambda: replied(fake_slack, "stuck"), 10)
        await runtime.settle()


async def test_replies_through_response_urls_share_one_kept_alive_connection(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    async with group_runtime(fake_slack, database_url, clock) as (runtime, client):
        for n in range(4):  # one after another: a reply's connection is free again for the next one
            body = phase_list(fake_slack, f"reply{n}")
            assert (await client.post("/slack/events", data=body, headers=sign(body))).status == 200
            await fake_slack.wait_until(lambda n=n: replied(fake_slack, f"reply{n}"), 10)
        await runtime.settle()
    peers = [c.peer for c in fake_slack.calls if c.method.startswith("respond:reply")]
    assert len(peers) == 4 and None not in peers
    assert len(set(peers)) == 1, f"each reply opened a connection of its own: {peers}"


async def socket_request(runtime: Any, body: str | dict[str, Any]) -> Any:
    """Dispatch a request as the Socket Mode handler does (verified by the socket, not signed): a form-encoded
    command, or an interaction payload."""
    payload = dict(parse_qsl(body)) if isinstance(body, str) else body
    return await runtime.app.async_dispatch(AsyncBoltRequest(body=payload, mode="socket_mode"))


async def test_in_socket_mode_a_request_nothing_listens_to_holds_no_work_back(
    runtime: Any, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox, "ACKS_FIRST_WITHIN", 30.0)  # were it held back, it would be for 3 s
    link = click(fake_slack, "open_runbook_link", "U0QA")  # a link button: no listener, Bolt answers 404
    link["trigger_id"] = "link.trigger"
    assert (await socket_request(runtime, link)).status == 404
    assert (await socket_request(runtime, phase_list(fake_slack, "after-link"))).status == 200
    # Bolt gives no answer for the link; only Slack's 3 seconds would end its being acknowledged
    await fake_slack.wait_until(lambda: replied(fake_slack, "after-link"), 2)
    await runtime.settle()


async def test_in_socket_mode_turns_stay_in_the_order_received(
    runtime: Any, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox, "ACKS_FIRST_WITHIN", 30.0)
    arrived, let_go = await held_arrival(runtime, "second")
    second = asyncio.create_task(socket_request(runtime, phase_list(fake_slack, "second")))
    try:
        await asyncio.wait_for(arrived.wait(), 10)
        assert (await socket_request(runtime, phase_list(fake_slack, "first"))).status == 200
    finally:
        let_go.set()
    assert (await second).status == 200
    await fake_slack.wait_until(lambda: replied(fake_slack, "first") and replied(fake_slack, "second"), 10)
    await runtime.settle()
    order = [c.method for c in fake_slack.calls if c.method in {"respond:first", "respond:second"}]
    assert order == ["respond:first", "respond:second"], order
