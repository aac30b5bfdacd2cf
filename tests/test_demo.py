"""The first run: the demo plan runs as written, and one channel for everything gets each post once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Runtime, build_runtime, web_app
from bot.plan import parse_plan
from bot.service import LoadedPlan
from tests.conftest import T0, Clock, SlackDriver, make_settings, plan_text
from tests.fake_slack import FakeSlack

ONE_CHANNEL = plan_text().replace(
    "channels: {war_room: C0WAR, announcements: C0ANN, incidents: C0INC}",
    "channels: {war_room: C0WAR, announcements: C0WAR, incidents: C0WAR}",
)


@pytest.fixture
async def one_channel(fake_slack: FakeSlack, database_url: str, clock: Clock) -> AsyncIterator[SlackDriver]:
    runtime: Runtime = await build_runtime(make_settings(fake_slack, database_url), clock=clock)
    await runtime.service.load(LoadedPlan(parse_plan(ONE_CHANNEL, "one.yml"), ONE_CHANNEL, "one.yml"))
    await runtime.settle()
    client = TestClient(TestServer(web_app(runtime, serve_slack=True)))
    await client.start_server()
    yield SlackDriver(client, fake_slack, runtime)
    await client.close()
    await runtime.close()


async def test_a_decision_and_an_issue_are_posted_once_when_all_channels_are_one(
    one_channel: SlackDriver, clock: Clock
) -> None:
    clock.set(T0 - timedelta(minutes=20))
    reply = await one_channel.command("/gonogo", "decide go all checks green", user="U0VP")
    assert "Go" in reply["text"]
    await one_channel.fake.wait_until(lambda: bool(one_channel.fake.posts("C0WAR")))
    decisions = [p for p in one_channel.fake.posts("C0WAR") if "decision" in str(p.get("metadata"))]
    assert len(decisions) == 1, [p.get("metadata") for p in one_channel.fake.posts("C0WAR")]

    clock.set(T0 + timedelta(minutes=5))
    await one_channel.command("/issue", "critical api region1 logins fail | pool exhausted", user="U0QA")
    cards = [p for p in one_channel.fake.posts("C0WAR") if "ISSUE DETECTED" in str(p.get("blocks")).upper()]
    assert len(cards) == 1, [p.get("metadata") for p in one_channel.fake.posts("C0WAR")]
