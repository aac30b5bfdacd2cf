"""PagerDuty Events API v2: trigger on a page, acknowledge on its ack; failures warn the war room."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web

from bot.domain import Actor, External
from bot.issues import ResolveIssue, decide_issue, parse_issue
from bot.pagerduty import PagerDuty, event_body
from bot.paging import AckPage, decide_page, parse_page
from bot.plan import Plan, parse_plan
from bot.rules import release_from_plan
from bot.service import LoadedPlan
from storage import repo
from tests.conftest import T0, SlackDriver, plan_text
from tests.fake_slack import FakeSlack

ROUTING_KEY = "R0UTINGKEY0000000000000000000000"
RM = Actor("U0RM", frozenset({"release_manager"}))


@dataclass
class FakePagerDuty:
    """A tiny Events API v2 on loopback: records bodies, answers 202 unless told to fail."""

    received: list[dict[str, Any]] = field(default_factory=list)
    fail: list[int] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> FakePagerDuty:
        app = web.Application()
        app.router.add_post("/v2/enqueue", self._enqueue)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v2/enqueue"
        return self

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _enqueue(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        if self.fail:
            status = self.fail.pop(0)
            return web.json_response({"status": "invalid event", "message": "Event object is invalid"}, status=status)
        return web.json_response({"status": "success", "dedup_key": body.get("dedup_key")}, status=202)

    def actions(self) -> list[str]:
        return [b["event_action"] for b in self.received]


@pytest.fixture
async def pagerduty() -> AsyncIterator[FakePagerDuty]:
    fake = await FakePagerDuty().start()
    yield fake
    await fake.stop()


def with_pagerduty(url: str) -> str:
    return plan_text() + f"integrations:\n  pagerduty: {{routing_key: {ROUTING_KEY}, events_url: '{url}'}}\n"


@pytest.fixture
async def wired(slack: SlackDriver, pagerduty: FakePagerDuty) -> SlackDriver:
    """The slack driver with r1's plan reloaded to send pages to the fake PagerDuty."""
    text = with_pagerduty(pagerduty.url)
    await slack.runtime.service.load(LoadedPlan(parse_plan(text, "test.yml"), text, "test.yml"))
    await slack.runtime.settle()
    return slack


# --- pure --------------------------------------------------------------------------------------------------


def test_trigger_and_acknowledge_bodies_follow_events_api_v2() -> None:
    data = {
        "dedup_key": "warroom-r1-page-1",
        "page": 1,
        "summary": "x" * 2000,
        "severity": "critical",
        "source": "warroom/r1",
        "component": "api",
        "custom_details": {"page": 1},
    }
    body = event_body(ROUTING_KEY, "trigger", data)
    assert body["routing_key"] == ROUTING_KEY and body["event_action"] == "trigger"
    assert body["dedup_key"] == "warroom-r1-page-1"
    assert len(body["payload"]["summary"]) == 1024
    assert body["payload"]["severity"] == "critical" and body["payload"]["component"] == "api"
    ack = event_body(ROUTING_KEY, "acknowledge", {"dedup_key": "warroom-r1-page-1", "page": 1})
    assert ack == {
        "routing_key": ROUTING_KEY,
        "event_action": "acknowledge",
        "dedup_key": "warroom-r1-page-1",
    }
    with pytest.raises(ValueError):
        event_body(ROUTING_KEY, "explode", data)


def test_rules_emit_pagerduty_effects_only_when_configured(plan: Plan) -> None:
    release = release_from_plan(plan)
    command = parse_page("1 db down")
    assert not [e for e in decide_page(release, plan, RM, command, T0).effects if isinstance(e, External)]  # type: ignore[arg-type]
    configured = parse_plan(with_pagerduty("http://127.0.0.1:9/v2/enqueue"), "pd.yml")
    critical = parse_issue("critical api down", configured.regions or ())
    outcome = decide_issue(release, configured, RM, critical, T0)  # type: ignore[arg-type]
    trigger = [e for e in outcome.effects if isinstance(e, External)]
    assert len(trigger) == 1 and trigger[0].system == "pagerduty" and trigger[0].action == "trigger"
    assert trigger[0].data["dedup_key"] == "warroom-r1-page-1" and trigger[0].data["severity"] == "critical"
    assert ROUTING_KEY not in json.dumps(trigger[0].data), "the secret stays in the plan, not in effects"
    acked = decide_page(outcome.release, configured, RM, AckPage(1), T0 + timedelta(minutes=2))
    assert [(e.action, e.data["dedup_key"]) for e in acked.effects if isinstance(e, External)] == [
        ("acknowledge", "warroom-r1-page-1")
    ]
    resolved = decide_issue(acked.release, configured, RM, ResolveIssue(1), T0 + timedelta(minutes=9))
    assert [e.action for e in resolved.effects if isinstance(e, External)] == ["resolve"]


# --- against the fake --------------------------------------------------------------------------------------


async def test_a_page_triggers_and_its_ack_acknowledges_in_pagerduty(
    wired: SlackDriver, fake_slack: FakeSlack, pagerduty: FakePagerDuty
) -> None:
    await wired.command("/page", "1 payments failing", user="U0RM")
    await wired.runtime.settle()
    assert pagerduty.actions() == ["trigger"]
    trigger = pagerduty.received[0]
    assert trigger["routing_key"] == ROUTING_KEY and trigger["dedup_key"] == "warroom-r1-page-1"
    assert "payments failing" in trigger["payload"]["summary"] and trigger["payload"]["source"] == "warroom/r1"
    assert fake_slack.posts("U0OC1"), "the Slack page goes out as well"
    await wired.command("/page", "ack 1", user="U0OC1")
    await wired.runtime.settle()
    assert pagerduty.actions() == ["trigger", "acknowledge"]
    assert pagerduty.received[1]["dedup_key"] == "warroom-r1-page-1"


async def test_a_pagerduty_failure_warns_the_war_room_and_the_slack_page_still_goes(
    wired: SlackDriver, fake_slack: FakeSlack, pagerduty: FakePagerDuty, caplog: pytest.LogCaptureFixture
) -> None:
    pagerduty.fail = [400]
    caplog.set_level(logging.DEBUG)
    reply = await wired.command("/page", "1 db down", user="U0RM")
    await wired.runtime.settle()
    assert "Page #1" in reply["text"]
    assert fake_slack.posts("U0OC1") and fake_slack.posts("U0OC2")
    warnings = [p for p in fake_slack.posts("C0WAR") if "PagerDuty" in p["text"]]
    assert warnings and "failed" in warnings[0]["text"] and "HTTP 400" in warnings[0]["text"]
    async with wired.runtime.service.sessions() as session:
        timeline = await repo.get_timeline(session=session, release_id="r1")
    assert [e.data["action"] for e in timeline if e.kind == "pagerduty.failed"] == ["trigger"]
    assert ROUTING_KEY not in caplog.text, "the routing key is never logged"


async def test_server_errors_are_retried_and_an_unreachable_pagerduty_is_reported(
    runtime: Any, pagerduty: FakePagerDuty, fake_slack: FakeSlack
) -> None:
    text = with_pagerduty(pagerduty.url)
    await runtime.service.load(LoadedPlan(parse_plan(text, "test.yml"), text, "test.yml"))
    sender = PagerDuty(runtime.service, backoff=0)
    effect = External("pagerduty", "trigger", {"dedup_key": "warroom-r1-page-9", "page": 9, "summary": "s"})
    pagerduty.fail = [500, 429]
    assert await sender.deliver("r1", effect) is True
    assert len(pagerduty.received) == 3
    unreachable = with_pagerduty("http://127.0.0.1:9/v2/enqueue")
    await runtime.service.load(LoadedPlan(parse_plan(unreachable, "test.yml"), unreachable, "test.yml"))
    assert (
        await PagerDuty(runtime.service, backoff=0, retries=1, wake=runtime.dispatcher.run_due).deliver("r1", effect)
        is False
    )
    await runtime.settle()
    assert any("page #9" in p["text"] and "PagerDuty" in p["text"] for p in fake_slack.posts("C0WAR"))
