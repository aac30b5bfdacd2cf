"""Slash commands through signed HTTP requests against the real app and a fake Slack."""

from __future__ import annotations

import asyncio
import json
import re
from urllib.parse import parse_qsl, urlencode

from bot.app import web_app
from bot.domain import PhaseStatus
from messages import blocks as bk
from tests.conftest import Clock, SlackDriver, shared_path, sign
from tests.fake_slack import FakeSlack


async def test_phase_done_updates_the_war_room_and_replies_privately(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    reply = await slack.command("/phase", "done db-migration all tables migrated", user="U0DBA")
    assert reply["response_type"] == "ephemeral"
    assert "Database Migration: done" in reply["text"]
    posts = await fake_slack.wait_for("chat.postMessage")
    war_room = [p for p in posts if p["channel"] == "C0WAR"]
    assert war_room and "Database Migration" in war_room[-1]["text"]
    assert "all tables migrated" in json.dumps(war_room[-1]["blocks"])
    bk.validate(war_room[-1]["blocks"])
    release = await slack.runtime.service.get("r1")
    assert release.phase("db-migration").status is PhaseStatus.DONE  # type: ignore[union-attr]


async def test_phase_start_then_list_and_status(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    await slack.command("/phase", "start db-migration", user="U0DBA")
    listing = await slack.command("/phase", "list")
    assert "db-migration" in listing["text"] and "in progress" in listing["text"]
    bk.validate(listing["blocks"])
    card = await slack.command("/release", "status")
    bk.validate(card["blocks"])
    text = json.dumps(card["blocks"])
    assert "Database Migration" in text and "Next:" in text and "complete" in text


async def test_people_outside_the_plan_get_an_explanation_and_nothing_changes(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    reply = await slack.command("/phase", "done db-migration", user="U0STRANGER")
    assert reply["response_type"] == "ephemeral" and "Only people listed in the plan" in reply["text"]
    release = await slack.runtime.service.get("r1")
    assert release.phase("db-migration").status is PhaseStatus.PENDING  # type: ignore[union-attr]
    assert not [p for p in fake_slack.posts("C0WAR") if "Database Migration" in (p.get("text") or "")]


async def test_wrong_input_gets_usage_and_changes_nothing(slack: SlackDriver) -> None:
    before = await slack.runtime.service.get("r1")
    for text, expected in [
        ("finish-him db-migration", "not a phase command"),
        ("done", "Which phase?"),
        ("done no-such-phase", "There is no phase 'no-such-phase'"),
        ("fail db-migration", "Say why"),
        ("", "Tell me what to do"),
        ("done db-migration --release nope", "There is no release 'nope'"),
    ]:
        reply = await slack.command("/phase", text, user="U0DBA")
        assert expected in reply["text"], (text, reply["text"])
        assert reply["response_type"] == "ephemeral"
    reply = await slack.command("/release", "launch")
    assert "Usage:" in reply["text"]
    after = await slack.runtime.service.get("r1")
    assert after == before


async def test_command_from_another_channel_finds_the_only_release(slack: SlackDriver) -> None:
    reply = await slack.command("/phase", "start db-migration", user="U0DBA", channel="C0OTHER", channel_name="random")
    assert "in progress" in reply["text"]


async def test_user_group_members_hold_the_groups_role(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    plan = slack.runtime.service.plans["r1"]
    people = dict(plan.people)
    people["dba"] = ["S0DBAS"]
    slack.runtime.service.plans["r1"] = plan.model_copy(update={"people": people})
    fake_slack.groups["S0DBAS"] = ["U0GROUPMEMBER"]
    reply = await slack.command("/phase", "done db-migration", user="U0GROUPMEMBER")
    assert "done" in reply["text"]


async def test_unsigned_or_badly_signed_requests_are_refused(slack: SlackDriver) -> None:
    body = urlencode({"command": "/phase", "text": "done db-migration", "user_id": "U0DBA", "channel_id": "C0WAR"})
    headers = sign(body, secret="wrong-secret")
    response = await slack.client.post("/slack/events", data=body, headers=headers)
    assert response.status == 401
    stale = sign(body, timestamp=1_000_000_000)
    assert (await slack.client.post("/slack/events", data=body, headers=stale)).status == 401
    release = await slack.runtime.service.get("r1")
    assert release.phase("db-migration").status is PhaseStatus.PENDING  # type: ignore[union-attr]


async def test_real_slash_command_fixture_is_accepted_and_routed(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    """Slack's own wire format (from Bolt's test suite), with our command and text substituted."""
    raw = shared_path("slack", "fixtures", "slash_command.form-urlencoded.txt").read_text().strip()
    form = dict(parse_qsl(raw))
    form.update(command="/phase", text="list", response_url=fake_slack.webhook_url, channel_id="C0WAR")
    body = urlencode(form)
    response = await slack.client.post("/slack/events", data=body, headers=sign(body))
    assert response.status == 200
    replies = await fake_slack.wait_for("respond")
    assert "Phases of Test Platform" in replies[-1]["text"]


async def test_acknowledgement_comes_before_slack_api_calls(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    """The HTTP response (the ack) is returned while the war-room post and the reply are still held by Slack."""
    fake_slack.calls.clear()
    fake_slack.hold, fake_slack.held = asyncio.Event(), frozenset({"respond", "chat.postMessage"})
    form = {
        "command": "/phase",
        "text": "done db-migration",
        "user_id": "U0DBA",
        "channel_id": "C0WAR",
        "channel_name": "x",
        "response_url": fake_slack.webhook_url,
        "team_id": "T111",
        "trigger_id": "1",
    }
    body = urlencode(form)
    # Were the ack to wait for the reply or the post, this request could not finish before the hold is released.
    response = await asyncio.wait_for(slack.client.post("/slack/events", data=body, headers=sign(body)), 5)
    assert response.status == 200 and await response.text() == ""
    assert not [c for c in fake_slack.calls if c.method in fake_slack.held]
    fake_slack.hold.set()
    fake_slack.hold = None
    replies = await fake_slack.wait_for("respond")
    assert replies[-1]["text"].startswith("Database Migration: done")
    await slack.runtime.settle()


async def test_healthz_and_metrics(slack: SlackDriver) -> None:
    health = await slack.client.get("/healthz")
    assert health.status == 200 and (await health.json())["releases"] == ["r1"]
    await slack.command("/phase", "list")
    metrics = await (await slack.client.get("/metrics")).text()
    assert 'warroom_commands_total{command="/phase",result="received"}' in metrics
    assert "warroom_ack_seconds_bucket" in metrics


async def test_healthz_reports_an_unreachable_database(slack: SlackDriver) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    await slack.runtime.engine.dispose()
    bad = slack.runtime
    original = bad.engine
    from storage.db import create_engine

    bad.engine = create_engine("sqlite+aiosqlite:////nonexistent-dir/x.db")
    client = TestClient(TestServer(web_app(bad, serve_slack=False)))
    await client.start_server()
    try:
        response = await client.get("/healthz")
        assert response.status == 503
        assert (await client.post("/slack/events", data="x")).status in {404, 405}
    finally:
        await client.close()
        await bad.engine.dispose()
        bad.engine = original


async def test_app_home_lists_releases(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    event = {
        "token": "t",
        "team_id": "T111",
        "api_app_id": "A111",
        "type": "event_callback",
        "event_id": "Ev1",
        "event_time": 1,
        "event": {"type": "app_home_opened", "user": "U0RM", "channel": "D1", "tab": "home"},
    }
    body = json.dumps(event)
    headers = {**sign(body), "Content-Type": "application/json"}
    response = await slack.client.post("/slack/events", data=body, headers=headers)
    assert response.status == 200
    published = await fake_slack.wait_for("views.publish")
    view = published[-1]["view"]
    assert view["type"] == "home"
    bk.validate(view["blocks"])
    assert "Test Platform" in json.dumps(view["blocks"])


async def test_release_schedule_lists_what_comes_next(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    reply = await slack.command("/release", "schedule")
    assert reply["response_type"] == "ephemeral"
    bk.validate(reply["blocks"])
    text = str(reply["blocks"])
    lines = [line for line in text.split("\\n") if line.startswith("•")]
    assert "Announcement `assembly` (team assembly) → <#C0WAR>" in text
    assert "The go/no-go vote opens" in text and "T0: the release starts" in text
    assert "Status update, then 16 more → <#C0WAR>" in text
    assert text.index("Announcement `assembly`") < text.index("The go/no-go vote opens") < text.index("T0:")
    assert "Announcement `advance`" not in text, "already past and skipped: not coming up"
    assert len(lines) >= 5
    await slack.command("/gonogo", "open", user="U0RM")
    assert "The go/no-go vote opens" not in str((await slack.command("/release", "schedule"))["blocks"])
    refused = await slack.command("/release", "schedule tomorrow")
    assert "takes no arguments" in refused["text"]


async def test_metrics_count_what_is_overdue_so_a_stuck_bot_can_alert(slack: SlackDriver, clock: Clock) -> None:
    async def overdue() -> dict[str, float]:
        text = await (await slack.client.get("/metrics")).text()
        found = re.findall(r'^warroom_overdue\{what="(\w+)"\} ([0-9.]+)$', text, re.M)
        return {what: float(value) for what, value in found}

    await slack.runtime.dispatcher.run_due()
    assert await overdue() == {"messages": 0.0, "timers": 0.0}
    clock.advance(hours=2, minutes=33)  # T-2h assembly and the T-30m vote opening due, and nobody acts
    stuck = await overdue()
    assert stuck["messages"] >= 1 and stuck["timers"] >= 1
    await slack.runtime.dispatcher.run_due()
    assert await overdue() == {"messages": 0.0, "timers": 0.0}
