"""POST /hooks/alertmanager from the outside: the token, bad bodies, the window, the war room's messages,
concurrent deliveries, and the rollback question answered with signed button clicks."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import Runtime, build_runtime, web_app
from bot.domain import IssueStatus, ReleaseStatus
from bot.plan import parse_plan
from bot.service import LoadedPlan
from messages import blocks as bk
from storage import repo
from tests.alert_payloads import TOKEN, TRIGGER, alert, alert_plan_text, delivery
from tests.conftest import FAST_PACE, T0, Clock, SlackDriver, make_settings
from tests.fake_slack import FakeSlack
from tests.test_cli import run
from tests.test_issues import click

NOW = T0 + timedelta(minutes=40)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FIRING = alert("HighErrorRate", labels={"region": "region1"})


@pytest.fixture
async def alert_runtime(fake_slack: FakeSlack, database_url: str, clock: Clock) -> AsyncIterator[Runtime]:
    clock.set(NOW)
    settings = make_settings(fake_slack, database_url, WARROOM_ALERTMANAGER_TOKEN=TOKEN)
    rt = await build_runtime(settings, clock=clock, pace=FAST_PACE)
    text = alert_plan_text()
    await rt.service.load(LoadedPlan(parse_plan(text, "alerts.yml"), text, "alerts.yml"))
    await rt.settle()
    yield rt
    await rt.close()


@pytest.fixture
async def client(alert_runtime: Runtime) -> AsyncIterator[TestClient]:
    test_client = TestClient(TestServer(web_app(alert_runtime, serve_slack=True)))
    await test_client.start_server()
    yield test_client
    await test_client.close()


@pytest.fixture
def slack(client: TestClient, fake_slack: FakeSlack, alert_runtime: Runtime) -> SlackDriver:
    return SlackDriver(client, fake_slack, alert_runtime)


async def post(client: TestClient, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await client.post(
        "/hooks/alertmanager", data=data, headers={"Content-Type": "application/json", **AUTH, **(headers or {})}
    )
    text = await response.text()
    return response.status, json.loads(text) if text.startswith("{") else text


async def nothing_stored(runtime: Runtime, fake: FakeSlack) -> None:
    await runtime.settle()
    release = await runtime.service.get("r1")
    assert release.issues == () and release.alerts == ()
    async with runtime.service.sessions() as session:
        timeline = await repo.get_timeline(session=session, release_id="r1")
    assert not [e for e in timeline if e.kind.startswith(("alert.", "issue."))]
    assert not [p for p in fake.posts() if "ISSUE" in p.get("text", "")]


async def test_without_a_token_set_the_hook_is_not_there(runtime: Runtime) -> None:
    test_client = TestClient(TestServer(web_app(runtime, serve_slack=True)))
    await test_client.start_server()
    try:
        status, _ = await post(test_client, delivery(FIRING))
    finally:
        await test_client.close()
    assert status == 404


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer wrong-token-wrong-token",
        f"Basic {TOKEN}",
        f"Bearer {TOKEN}x",
        TOKEN,
        f"Bearer {TOKEN[:-1]}",
        "Bearer",
    ],
)
async def test_a_missing_or_wrong_token_is_401_and_changes_nothing(
    client: TestClient,
    alert_runtime: Runtime,
    fake_slack: FakeSlack,
    authorization: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    headers = {"Content-Type": "application/json"} | ({"Authorization": authorization} if authorization else {})
    response = await client.post("/hooks/alertmanager", data=json.dumps(delivery(FIRING)), headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "bearer token" in (await response.json())["error"]
    await nothing_stored(alert_runtime, fake_slack)
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b'[{"status": "firing"}]', "not a JSON object"),
        (json.dumps({"version": "4", "status": "firing"}).encode(), "alerts: Field required"),
        (json.dumps(delivery({**FIRING, "status": "pending"})).encode(), "alerts.0.status"),
        (json.dumps(delivery({**FIRING, "labels": "alertname=HighErrorRate"})).encode(), "alerts.0.labels"),
        (b"{" + b" " * (1024 * 1024) + b"}", "larger than 1048576 bytes"),
    ],
)
async def test_a_bad_body_is_400_with_the_reason_and_nothing_is_stored(
    client: TestClient, alert_runtime: Runtime, fake_slack: FakeSlack, body: bytes, reason: str
) -> None:
    status, answer = await post(client, body)
    assert status == 400
    assert reason in answer["error"]
    await nothing_stored(alert_runtime, fake_slack)


async def test_an_alert_outside_any_release_window_is_acknowledged_and_ignored_in_one_log_line(
    client: TestClient, alert_runtime: Runtime, fake_slack: FakeSlack, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    clock.set(T0 - timedelta(hours=3))
    with caplog.at_level(logging.INFO, logger="bot.integrations.alertmanager"):
        status, answer = await post(client, delivery(FIRING))
    assert status == 200 and answer["status"] == "ignored"
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.integrations.alertmanager"]
    assert len(lines) == 1 and "ignored 1 alert(s) from alertmanager" in lines[0] and "window" in lines[0]
    await nothing_stored(alert_runtime, fake_slack)


async def test_an_alert_no_rule_matches_is_acknowledged_and_ignored(
    client: TestClient, alert_runtime: Runtime, fake_slack: FakeSlack
) -> None:
    status, answer = await post(client, delivery(alert("Watchdog")))
    assert (status, answer["status"]) == (200, "ignored") and "no plan" in answer["reason"]
    await nothing_stored(alert_runtime, fake_slack)


async def test_a_firing_alert_posts_the_issue_card_and_pages_as_a_critical_issue(
    client: TestClient, alert_runtime: Runtime, fake_slack: FakeSlack
) -> None:
    status, answer = await post(client, delivery(FIRING))
    assert status == 200 and answer == {"status": "ok", "releases": {"r1": ["alert.firing issue:1"]}}
    await alert_runtime.settle()
    [card] = [p for p in fake_slack.posts("C0WAR") if p["text"].startswith("ISSUE DETECTED #1")]
    bk.validate(card["blocks"])
    assert "Reported by Alertmanager" in json.dumps(card["blocks"])
    assert [p for p in fake_slack.posts("C0INC") if p["text"].startswith("ISSUE DETECTED #1")], (
        "critical: incidents too"
    )
    paged = {
        p["channel"]
        for p in fake_slack.posts()
        if "Page #1" in p.get("text", "") or "paged" in p.get("text", "").lower()
    }
    assert paged, "level 1 is paged at once"


async def test_a_resolved_alert_tells_the_war_room_and_its_resolve_button_opens_the_form(
    client: TestClient, alert_runtime: Runtime, fake_slack: FakeSlack, slack: SlackDriver
) -> None:
    await post(client, delivery(FIRING))
    ended = NOW + timedelta(minutes=4)
    status, answer = await post(client, delivery({**FIRING, "status": "resolved", "endsAt": ended.isoformat()}))
    assert status == 200 and answer["releases"]["r1"] == ["alert.resolved issue:1"]
    await alert_runtime.settle()
    [line] = [p for p in fake_slack.posts("C0WAR") if "resolved in Alertmanager at" in p["text"]]
    assert "thread_ts" not in line, "in the war room itself, not hidden in a thread"
    bk.validate(line["blocks"])
    assert (await alert_runtime.service.get("r1")).issue(1).status is IssueStatus.OPEN  # type: ignore[union-attr]
    await click(slack, fake_slack, "issue_resolve", "r1:1", "U0DEV", wait="views.open")
    [opened] = fake_slack.of("views.open")
    assert "Resolve issue #1" in json.dumps(opened["view"])


async def test_concurrent_deliveries_of_one_alert_open_one_issue(
    client: TestClient, alert_runtime: Runtime, fake_slack: FakeSlack
) -> None:
    variants = [{**FIRING, "annotations": {**FIRING["annotations"], "value": f"{n}%"}} for n in range(6)]
    results = await asyncio.gather(*(post(client, delivery(v)) for v in variants))
    assert [status for status, _ in results] == [200] * 6
    await alert_runtime.settle()
    release = await alert_runtime.service.get("r1")
    assert [i.number for i in release.issues] == [1]
    assert [a.issue_number for a in release.alerts] == [1]
    assert len([p for p in fake_slack.posts("C0WAR") if p["text"].startswith("ISSUE DETECTED")]) == 1


async def test_the_rollback_trigger_prompt_is_answered_by_the_release_manager_with_a_button(
    client: TestClient, alert_runtime: Runtime, fake_slack: FakeSlack, slack: SlackDriver
) -> None:
    await slack.command("/release", "start --force vendor confirmed by phone", user="U0VP")
    latency = alert("ApiLatency", annotations={"summary": "API p95 620ms", "value": "0.62s"})
    await post(client, delivery(latency))
    await alert_runtime.settle()
    [prompt] = [p for p in fake_slack.posts("C0WAR") if p["text"].startswith("Rollback trigger firing")]
    bk.validate(prompt["blocks"])
    shown = json.dumps(prompt["blocks"], ensure_ascii=False)
    assert TRIGGER in shown and "*Current value:* 0.62s" in shown and "firing since <!date^" in shown
    await post(client, delivery({**latency, "annotations": {"summary": "API p95 700ms", "value": "0.70s"}}))
    await alert_runtime.settle()
    assert len([p for p in fake_slack.posts("C0WAR") if p["text"].startswith("Rollback trigger firing")]) == 1
    refused = await click(slack, fake_slack, "rollback_evaluation_continue", "r1:1", "U0DEV")
    assert refused["text"].startswith("Only the")
    answered = await click(slack, fake_slack, "rollback_evaluation_continue", "r1:1", "U0RM")
    assert answered["text"].startswith("Recorded: continue after issue #1")
    assert any("Answered: Continue" in str(u.get("blocks")) for u in fake_slack.of("chat.update"))
    async with alert_runtime.service.sessions() as session:
        timeline = await repo.get_timeline(session=session, release_id="r1")
    [continued] = [e for e in timeline if e.kind == "rollback.continued"]
    assert continued.actor == "U0RM" and "ApiLatency" in continued.data["reason"]
    assert [e.kind for e in timeline].count("alert.rollback_trigger") == 1


async def test_rolling_back_from_the_trigger_prompt_starts_the_rollback_with_the_trigger_as_reason(
    client: TestClient, alert_runtime: Runtime, fake_slack: FakeSlack, slack: SlackDriver
) -> None:
    await slack.command("/release", "start --force vendor confirmed by phone", user="U0VP")
    await post(client, delivery(alert("ApiLatency")))
    await alert_runtime.settle()
    await click(slack, fake_slack, "rollback_evaluation_execute", "r1:1", "U0VP")
    release = await alert_runtime.service.get("r1")
    assert release.status is ReleaseStatus.ROLLING_BACK
    async with alert_runtime.service.sessions() as session:
        timeline = await repo.get_timeline(session=session, release_id="r1")
    [started] = [e for e in timeline if e.kind == "release.rollback_started"]
    assert started.actor == "U0VP" and TRIGGER in started.data["reason"]
    assert [p for p in fake_slack.posts("C0ANN") if "rollback" in p["text"].lower()], "announced"


async def test_the_token_never_reaches_a_log(
    client: TestClient, alert_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await post(client, delivery(FIRING))
        await alert_runtime.settle()
        logging.getLogger("anything").warning("sent with Authorization: Bearer %s", TOKEN)
    assert TOKEN not in caplog.text and "(redacted)" in caplog.text


@pytest.mark.parametrize(
    ("token", "says"),
    [("short", "too short"), ("a token with spaces in it", "spaces"), (f" {TOKEN}", "spaces")],
)
def test_a_malformed_token_stops_the_start_with_one_line(token: str, says: str) -> None:
    result = run(
        "run",
        "examples/unifiedhealth-golive.yml",
        env={"SLACK_BOT_TOKEN": "xoxb-1", "WARROOM_ALERTMANAGER_TOKEN": token},
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "WARROOM_ALERTMANAGER_TOKEN" in result.stderr and says in result.stderr
    assert token.strip() not in result.stderr or len(token.strip()) < 6


async def test_in_socket_mode_the_hook_is_served_beside_healthz(alert_runtime: Runtime, fake_slack: FakeSlack) -> None:
    test_client = TestClient(TestServer(web_app(alert_runtime, serve_slack=False)))
    await test_client.start_server()
    try:
        status, answer = await post(test_client, delivery(FIRING))
        slack_events = await test_client.post("/slack/events", data="x")
    finally:
        await test_client.close()
    assert status == 200 and answer["releases"] == {"r1": ["alert.firing issue:1"]}
    assert slack_events.status in {404, 405}, "Socket Mode serves no Slack endpoint"


async def test_the_export_tells_what_the_alerts_did(client: TestClient, alert_runtime: Runtime) -> None:
    from bot.report import describe

    await post(client, delivery(FIRING))
    await post(client, delivery({**FIRING, "status": "resolved", "endsAt": (NOW + timedelta(minutes=2)).isoformat()}))
    async with alert_runtime.service.sessions() as session:
        timeline = await repo.get_timeline(session=session, release_id="r1")
    release = await alert_runtime.service.get("r1")
    told = [describe(e, release) for e in timeline if e.kind.startswith("alert.")]
    assert told == ["alert HighErrorRate fired and opened issue #1", "alert HighErrorRate of issue #1 was resolved"]
