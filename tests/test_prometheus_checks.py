"""The plan's checks read from a real Prometheus scraping an exporter the test controls: values, failures,
unreadable checks, and the readings on the vote, the status update, `/release checks` and the rollback
question a failing trigger raises."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any, cast

import pytest
from aiohttp import web

from bot.app import Runtime, build_runtime
from bot.core.checks import check_prompt_key
from bot.domain import Outcome, ReleaseStatus
from bot.integrations.prometheus import PrometheusChecks
from bot.plan import Plan, parse_plan
from bot.service import LoadedPlan
from messages.blocks import validate
from storage import repo
from tests.conftest import FAST_PACE, T0, Clock, SlackDriver, make_settings, plan_text
from tests.fake_slack import FakeSlack
from tests.prometheus import Prometheus, free_port
from tests.prometheus import prometheus as prometheus

OPEN_AT = T0 - timedelta(minutes=30)
ERROR_RATIO = 'sum(rate(http_requests_total{code=~"5.."}[5s])) / sum(rate(http_requests_total[5s]))'
"""The reference's error rate, over a window short enough for a test (a plan would use [5m])."""
TOKEN = "prom-secret-token-123"


def checks_yaml(url: str, *, trigger_for: str = "2m") -> str:
    return f"""
integrations:
  prometheus: {{url: "{url}"}}
checks:
  - name: Error rate
    query: '{ERROR_RATIO}'
    below: 0.001
    unit: ratio
    for: {trigger_for}
    rollback_trigger: "Error rate > 1% for 5+ minutes"
  - {{name: API p95, query: app_p95_seconds, below: 0.2, unit: seconds}}
  - {{name: DB latency, query: app_db_latency_seconds, below: 0.05, unit: seconds}}
"""


def checks_plan(url: str, **kwargs: Any) -> tuple[Plan, str]:
    text = plan_text() + checks_yaml(url, **kwargs)
    return parse_plan(text, "checks.yml"), text


def healthy(prom: Prometheus) -> None:
    """No errors, p95 120ms, DB 12ms — and wait until Prometheus has scraped it."""
    prom.exporter.errors_per_scrape = 0
    prom.exporter.set("app_p95_seconds", 0.12)
    prom.exporter.set("app_db_latency_seconds", 0.012)
    prom.wait_for("app_p95_seconds", lambda v: v == 0.12)
    prom.wait_for("app_db_latency_seconds", lambda v: v == 0.012)
    prom.wait_for(ERROR_RATIO, lambda v: v == 0)


def errors(prom: Prometheus) -> None:
    """5% of requests fail from now on (the rate ratio is over 0.1% after the next scrape)."""
    prom.exporter.errors_per_scrape = 50
    prom.wait_for(ERROR_RATIO, lambda v: v > 0.001)


def reader(url_plan: Plan, **kwargs: Any) -> PrometheusChecks:
    return PrometheusChecks(cast(Any, None), **kwargs)


# --- the client against the real server ----------------------------------------------------------------------


async def test_checks_read_real_values_and_pass(prometheus: Prometheus) -> None:
    healthy(prometheus)
    plan, _ = checks_plan(prometheus.url)
    answers = await reader(plan).read(plan)
    assert answers["API p95"].value == 0.12 and answers["DB latency"].value == 0.012
    assert answers["Error rate"].value == 0.0 and all(not a.error for a in answers.values())


async def test_a_failing_check_reads_the_real_error_ratio(prometheus: Prometheus) -> None:
    errors(prometheus)
    try:
        plan, _ = checks_plan(prometheus.url)
        answer = (await reader(plan).read(plan))["Error rate"]
        assert answer.value is not None and answer.value > 0.001
    finally:
        prometheus.exporter.errors_per_scrape = 0


async def test_bad_promql_and_several_series_and_no_data_cannot_be_read(prometheus: Prometheus) -> None:
    text = plan_text() + (
        f'integrations: {{prometheus: {{url: "{prometheus.url}"}}}}\n'
        "checks:\n"
        "  - {name: Broken, query: 'sum(rate(', below: 1}\n"
        "  - {name: Many, query: http_requests_total, below: 1}\n"
        "  - {name: Nothing, query: no_such_metric_here, below: 1}\n"
        "  - {name: Range, query: 'app_p95_seconds[1m]', below: 1}\n"
    )
    plan = parse_plan(text, "checks.yml")
    answers = await reader(plan).read(plan)
    assert answers["Broken"].value is None and answers["Broken"].error.startswith("Prometheus said bad_data: ")
    assert "parse error" in answers["Broken"].error
    assert answers["Many"].error.startswith("the query returned 2 series")
    assert answers["Nothing"].error == "no data: the query matched no series"
    assert "range vector" in answers["Range"].error


async def test_prometheus_down_is_connection_refused_not_a_pass() -> None:
    plan, _ = checks_plan(f"http://127.0.0.1:{free_port()}")
    answers = await reader(plan).read(plan)
    assert {a.value for a in answers.values()} == {None}
    assert all("cannot connect to Prometheus at http://127.0.0.1:" in a.error for a in answers.values())
    assert all("connect call failed" in a.error or "refused" in a.error for a in answers.values())


# --- an HTTP fake where the real one cannot show it: the bearer token, a slow answer, a refusal --------------


async def fake_prometheus(
    handler: Any,
) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/api/v1/query", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_the_bearer_token_is_sent_and_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        form = await request.post()
        seen.append({"auth": request.headers.get("Authorization", ""), **{k: str(v) for k, v in form.items()}})
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"status": "error", "errorType": "unauthorized", "error": "no"}, status=401)
        result = {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "0.01"]}]}
        return web.json_response({"status": "success", "data": result})

    caplog.set_level(logging.DEBUG)
    async for url in fake_prometheus(handler):
        plan, _ = checks_plan(url)
        answers = await reader(plan, token=TOKEN, query_time=lambda: 1700000000.5).read(plan)
        assert answers["DB latency"].value == 0.01
        assert {s["auth"] for s in seen} == {f"Bearer {TOKEN}"}
        assert {s["time"] for s in seen} == {"1700000000.500"}  # one evaluation time for every check
        assert "app_db_latency_seconds" in {s["query"] for s in seen}
        refused = await reader(plan).read(plan)
        assert refused["DB latency"].error == ("Prometheus said unauthorized: no (set WARROOM_PROMETHEUS_TOKEN)")
    assert TOKEN not in caplog.text


async def test_a_slow_prometheus_is_unreadable_within_the_timeout() -> None:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"status": "success", "data": {"resultType": "scalar", "result": [1, "1"]}})

    async for url in fake_prometheus(handler):
        plan, _ = checks_plan(url)
        answers = await reader(plan, timeout=0.3).read(plan)
        assert answers["API p95"].error == "Prometheus did not answer within 0.3s"


async def test_an_answer_that_comes_in_pieces_is_read_to_its_end() -> None:
    body = json.dumps({"status": "success", "data": {"resultType": "scalar", "result": [1, "0.01"]}}).encode()

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(body[:20])  # as a proxy or a slow link hands it over
        await asyncio.sleep(0.05)
        await response.write(body[20:])
        await response.write_eof()
        return response

    async for url in fake_prometheus(handler):
        plan, _ = checks_plan(url)
        answers = await reader(plan).read(plan)
        assert answers["API p95"].value == 0.01, answers["API p95"]


async def test_a_proxy_error_page_is_unreadable() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>Bad Gateway</html>", content_type="text/html")

    async for url in fake_prometheus(handler):
        plan, _ = checks_plan(url)
        answers = await reader(plan).read(plan)
        assert answers["API p95"].error == "Prometheus answered HTTP 502"


# --- the bot: the vote, status updates, /release checks, the rollback question ------------------------------


@pytest.fixture
async def runtime(
    fake_slack: FakeSlack, database_url: str, clock: Clock, prometheus: Prometheus
) -> AsyncIterator[Runtime]:
    """The real app with a plan whose checks point at the real Prometheus."""
    healthy(prometheus)
    plan, text = checks_plan(prometheus.url)
    rt = await build_runtime(make_settings(fake_slack, database_url), clock=clock, pace=FAST_PACE)
    await rt.service.load(LoadedPlan(plan, text, "checks.yml"))
    await rt.settle()
    yield rt
    await rt.close()
    prometheus.exporter.errors_per_scrape = 0


async def deliver(rt: Runtime) -> None:
    """Fire what is due, then wait for the background reads and the deliveries they start."""
    for _ in range(4):
        await rt.dispatcher.run_due()
        await rt.settle()


def vote_posts(fake: FakeSlack) -> list[dict[str, Any]]:
    return [p for p in fake.posts("C0WAR") if str(p.get("text", "")).startswith("Go/No-Go vote")]


def text_of(blocks: list[dict[str, Any]]) -> str:
    out = []
    for block in blocks:
        if "text" in block and isinstance(block["text"], dict):
            out.append(block["text"]["text"])
        for element in block.get("elements", []):
            if isinstance(element, dict) and element.get("type") == "mrkdwn":
                out.append(element["text"])
    return "\n".join(out)


async def timeline(rt: Runtime) -> list[Any]:
    async with rt.service.sessions() as session:
        return await repo.get_timeline(session=session, release_id="r1")


async def test_the_vote_shows_live_readings_and_refreshes_them(
    slack: SlackDriver, clock: Clock, prometheus: Prometheus
) -> None:
    prometheus.exporter.set("app_p95_seconds", 0.34)
    prometheus.wait_for("app_p95_seconds", lambda v: v == 0.34)
    clock.set(OPEN_AT - timedelta(minutes=5))
    await slack.command("/gonogo", "open", user="U0RM")
    await deliver(slack.runtime)
    [post] = vote_posts(slack.fake)
    validate(post["blocks"])
    card = text_of(post["blocks"])
    print("\n--- vote card as posted (chat.postMessage blocks) ---\n" + card)
    assert "*Checks from Prometheus*" in card
    assert "✅ *Error rate* 0% (&lt; 0.1%) · read <!date^" in card
    assert "❌ *API p95* 340ms (&lt; 200ms) · read <!date^" in card and "failing since <!date^" in card
    assert "✅ *DB latency* 12ms (&lt; 50ms)" in card
    assert "1 of 3 checks failing: Warroom recommends No-Go. Warroom recommends; the voters decide." in card
    [read] = [e for e in await timeline(slack.runtime) if e.kind == "checks.read"]
    assert read.data["shown_on"] == "gonogo_vote"
    assert {r["name"]: r["ok"] for r in read.data["readings"]} == {
        "Error rate": True,
        "API p95": False,
        "DB latency": True,
    }

    # a minute later the timer reads again and the card is updated in place with the new value
    prometheus.exporter.set("app_p95_seconds", 0.15)
    prometheus.wait_for("app_p95_seconds", lambda v: v == 0.15)
    updates_before = len(slack.fake.of("chat.update"))
    clock.advance(minutes=1, seconds=1)
    await deliver(slack.runtime)
    updates = slack.fake.of("chat.update")[updates_before:]
    assert updates, "the vote card was not refreshed"
    card = text_of(updates[-1]["blocks"])
    assert "✅ *API p95* 150ms (&lt; 200ms)" in card and "All 3 checks pass" in card
    changed = [e for e in await timeline(slack.runtime) if e.kind == "checks.read"][-1]
    assert changed.data["shown_on"] == "timer"


async def test_an_unreadable_check_says_so_on_the_vote(slack: SlackDriver, clock: Clock, fake_slack: FakeSlack) -> None:
    plan, text = checks_plan(f"http://127.0.0.1:{free_port()}")
    await slack.runtime.service.load(LoadedPlan(plan, text, "checks.yml"))
    clock.set(OPEN_AT - timedelta(minutes=5))
    await slack.command("/gonogo", "open", user="U0RM")
    await deliver(slack.runtime)
    card = text_of(vote_posts(fake_slack)[-1]["blocks"])
    assert "⚠️ *Error rate* (&lt; 0.1%) — could not be read: cannot connect to Prometheus at" in card
    assert "✅" not in card.split("*Checks from Prometheus*")[1].split("Warroom recommends")[0]
    assert "3 of 3 checks could not be read" in card


async def test_status_updates_show_the_readings(slack: SlackDriver, clock: Clock, prometheus: Prometheus) -> None:
    clock.set(T0 - timedelta(minutes=1))
    reply = await slack.command("/release", "start --force checks test", user="U0VP")
    assert "in progress" in reply["text"]
    clock.set(T0 + timedelta(seconds=5))
    await deliver(slack.runtime)
    statuses = [p for p in slack.fake.posts("C0WAR") if "DEPLOYMENT STATUS UPDATE" in str(p.get("blocks"))]
    assert statuses
    body = text_of(statuses[0]["blocks"])
    assert "*Checks from Prometheus* (Warroom recommends; people decide):" in body
    assert "• ✅ *DB latency* 12ms (&lt; 50ms) · read <!date^" in body
    assert any(e.kind == "checks.read" and e.data["shown_on"] == "status_update" for e in await timeline(slack.runtime))


async def test_release_checks_replies_with_fresh_readings(slack: SlackDriver, clock: Clock) -> None:
    reply = await slack.command("/release", "checks", user="U0QA")
    assert reply["response_type"] == "ephemeral"
    validate(reply["blocks"])
    body = text_of(reply["blocks"])
    assert "✅ *API p95* 120ms (&lt; 200ms)" in body and "All 3 checks pass" in body
    assert reply["text"] == "Checks for Test Platform v1.2.3: 3 passing, 0 failing, 0 unreadable"
    [read] = [e for e in await timeline(slack.runtime) if e.kind == "checks.read"]
    assert read.data["shown_on"] == "command" and read.actor == "U0QA"
    wrong = await slack.command("/release", "checks now please", user="U0QA")
    assert "`/release checks` takes no arguments" in wrong["text"]


async def test_a_failing_rollback_trigger_asks_once_after_its_for(
    slack: SlackDriver, clock: Clock, prometheus: Prometheus
) -> None:
    rt = slack.runtime
    clock.set(T0 - timedelta(minutes=1))
    await slack.command("/release", "start --force checks test", user="U0VP")
    await deliver(rt)
    errors(prometheus)
    clock.advance(minutes=1, seconds=1)
    await deliver(rt)
    state = (await rt.service.get("r1")).check("Error rate")
    assert state is not None and state.ok is False and state.failing_since is not None
    since = state.failing_since

    def questions() -> list[dict[str, Any]]:
        return [p for p in slack.fake.posts("C0WAR") if str(p.get("text", "")).startswith("Rollback trigger:")]

    clock.advance(minutes=1, seconds=1)  # failing for 1m: `for: 2m` not reached
    await deliver(rt)
    assert questions() == []
    clock.advance(minutes=1, seconds=1)
    await deliver(rt)
    [question] = questions()
    validate(question["blocks"])
    body = text_of(question["blocks"])
    print("\n--- rollback question from a check ---\n" + body)
    assert "<@U0RM>, <@U0VP>: the rollback trigger *Error rate &gt; 1% for 5+ minutes* holds" in body
    assert f"failing since <!date^{int(since.timestamp())}^" in body and "(for at least 2m)" in body
    actions = next(b for b in question["blocks"] if b["type"] == "actions")
    assert [e["action_id"] for e in actions["elements"]] == ["rollback_check_continue", "rollback_check_execute"]

    # still failing: not asked again for the same stretch, also after a restart reads the state back
    clock.advance(minutes=1, seconds=1)
    await deliver(rt)
    assert len(questions()) == 1
    after = (await rt.service.get("r1")).check("Error rate")
    assert after is not None and after.failing_since == since and after.asked_at is not None

    from tests.test_gonogo_handlers import click

    value = actions["elements"][0]["value"]
    await slack.action(click(slack.fake, "rollback_check_continue", "U0DBA", value=value))
    await slack.action(click(slack.fake, "rollback_check_continue", "U0RM", value=value))
    await deliver(rt)
    events = await timeline(rt)
    asked = [e for e in events if e.kind == "rollback.check_asked"]
    continued = [e for e in events if e.kind == "rollback.continued"]
    assert len(asked) == 1 and asked[0].data["since"] == since.isoformat()
    assert [e.actor for e in continued] == ["U0RM"]
    release = await rt.service.get("r1")
    assert release.status is ReleaseStatus.IN_PROGRESS
    updated = [u for u in slack.fake.of("chat.update") if str(u.get("text", "")).startswith("Rollback trigger:")]
    assert "*Answered: Continue* by <@U0RM>" in text_of(updated[-1]["blocks"])
    assert check_prompt_key("Error rate", 1) in {i.key for i in await outbox(rt)}


async def outbox(rt: Runtime) -> list[Any]:
    async with rt.service.sessions() as session:
        return await repo.outbox(session=session, release_id="r1")


async def test_two_replicas_reading_at_once_ask_once_and_a_restart_keeps_the_stretch(
    runtime: Runtime, fake_slack: FakeSlack, database_url: str, clock: Clock, prometheus: Prometheus
) -> None:
    plan, text = checks_plan(prometheus.url)  # the plan the first replica runs: `for: 2m`
    clock.set(T0 + timedelta(seconds=1))
    second = await build_runtime(make_settings(fake_slack, database_url), clock=clock, pace=FAST_PACE)
    await second.service.load(LoadedPlan(plan, text, "checks.yml"))
    replicas = [runtime, second]
    try:
        await runtime.service.run("r1", lambda r, p, now: Outcome(started(r, now)))
        errors(prometheus)
        assert runtime.checks is not None and second.checks is not None
        await runtime.checks.refresh("r1")
        since = (await runtime.service.get("r1")).check("Error rate").failing_since  # type: ignore[union-attr]
        clock.advance(minutes=2, seconds=5)
        await asyncio.gather(*(rt.checks.refresh("r1") for rt in replicas if rt.checks is not None))
        for rt in replicas:
            await deliver(rt)
        events = await timeline(runtime)
        assert len([e for e in events if e.kind == "rollback.check_asked"]) == 1
        questions = [p for p in fake_slack.posts("C0WAR") if str(p.get("text", "")).startswith("Rollback trigger:")]
        assert len(questions) == 1
    finally:
        await second.close()
    # a restart: a new process on the same database reads the stretch back and does not ask again
    restarted = await build_runtime(make_settings(fake_slack, database_url), clock=clock, pace=FAST_PACE)
    try:
        await restarted.service.load(LoadedPlan(plan, text, "checks.yml"))
        clock.advance(minutes=1)
        assert restarted.checks is not None
        await restarted.checks.refresh("r1")
        await deliver(restarted)
        state = (await restarted.service.get("r1")).check("Error rate")
        assert state is not None and state.failing_since == since and state.asked_at is not None
        asked = [e for e in await timeline(restarted) if e.kind == "rollback.check_asked"]
        assert len(asked) == 1
    finally:
        await restarted.close()


def started(release: Any, now: Any) -> Any:
    return replace(release, status=ReleaseStatus.IN_PROGRESS, started_at=now, revision=release.revision + 1)


async def test_the_decision_point_prompt_shows_readings_taken_as_it_is_posted(
    slack: SlackDriver, clock: Clock, prometheus: Prometheus
) -> None:
    rt = slack.runtime
    clock.set(T0 - timedelta(minutes=1))
    await slack.command("/release", "start --force checks test", user="U0VP")
    await deliver(rt)
    prometheus.exporter.set("app_db_latency_seconds", 0.081)
    prometheus.wait_for("app_db_latency_seconds", lambda v: v == 0.081)
    clock.set(T0 + timedelta(hours=1, seconds=1))  # the plan's rollback.decision_point: +1h
    await deliver(rt)
    [prompt] = [p for p in slack.fake.posts("C0WAR") if str(p.get("text", "")).startswith("Rollback decision point")]
    validate(prompt["blocks"])
    body = text_of(prompt["blocks"])
    assert "❌ *DB latency* 81ms (&lt; 50ms) · read <!date^" in body
    assert (
        "1 of 3 checks failing: Warroom recommends rolling back. Warroom recommends; the release manager decides."
        in body
    )
    shown = [e.data["shown_on"] for e in await timeline(rt) if e.kind == "checks.read"]
    assert "rollback_prompt" in shown


def test_the_prometheus_token_is_a_secret_and_a_malformed_one_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.settings import Settings, SettingsError, load_settings

    settings = Settings(WARROOM_PROMETHEUS_TOKEN=TOKEN)  # type: ignore[call-arg]
    assert TOKEN in [s.get_secret_value() for s in settings.secrets()]
    assert TOKEN not in repr(settings)
    monkeypatch.setenv("WARROOM_PROMETHEUS_TOKEN", f" {TOKEN}\n")
    with pytest.raises(SettingsError, match=r"^WARROOM_PROMETHEUS_TOKEN is invalid: has spaces or a line break"):
        load_settings()
