"""Acked means kept: a command or click Slack got its acknowledgement for survives a crash, and is applied once.

The real program is killed (SIGKILL) while acknowledged requests are still being processed: the fake Slack
holds the user-group look-up that every command and click makes before its transaction, so all of them are
acknowledged and none is saved at the moment of the kill. After the restart each one must have taken effect
exactly once, and each person must have had their reply.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text as sql_text

from bot.app import Runtime, build_runtime, web_app
from bot.ids import ActionId
from bot.inbox import WORKING
from bot.plan import parse_plan
from bot.service import LoadedPlan
from storage import repo
from tests.bot_process import running_bot
from tests.conftest import T0, Clock, SlackDriver, make_settings, plan_text, sign
from tests.fake_slack import FakeSlack
from tests.test_gonogo_handlers import click

ISSUES = 8
VOTERS = ("U0RM", "U0DEV", "U0DBA")


def group_plan(start: datetime) -> str:
    """The test plan with its on-call people as a user group: every command looks the group up first."""
    return plan_text(start).replace("oncall: [U0OC1, U0OC2]", "oncall: [S0ONCALL]")


def issue_form(fake: FakeSlack, n: int, user: str = "U0QA") -> str:
    form = {
        "token": "verification_token", "team_id": "T111", "team_domain": "test-domain", "channel_id": "C0WAR",
        "channel_name": "deployment-war-room", "user_id": user, "user_name": user.lower(), "command": "/issue",
        "text": f"high api impact number {n}", "api_app_id": "A111", "response_url": fake.webhook_url,
        "trigger_id": f"{n}.issue.trigger",
    }  # fmt: skip
    return urlencode(form)


def vote_form(fake: FakeSlack, user: str) -> str:
    return urlencode({"payload": json.dumps(click(fake, ActionId.VOTE_GO, user))})


async def post(session: aiohttp.ClientSession, base: str, body: str) -> int:
    async with session.post(f"{base}/slack/events", data=body, headers=sign(body)) as response:
        await response.read()
        return response.status


async def test_requests_acked_before_a_kill_take_effect_once_after_the_restart(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    # T0 ten minutes ahead: the vote opened twenty minutes ago, so it is open from the start
    plan = tmp_path / "plan.yml"
    plan.write_text(group_plan(datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)))
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'warroom.db'}"
    fake_slack.groups["S0ONCALL"] = ["U0OC1", "U0OC2"]
    async with aiohttp.ClientSession() as session:
        bot_cm = running_bot(fake_slack, plan, database_url, tmp_path / "first.log")
        bot = await bot_cm.__aenter__()
        await fake_slack.wait_until(lambda: any("Go/No-Go vote" in str(p.get("text")) for p in fake_slack.posts()), 15)
        fake_slack.hold, fake_slack.held = asyncio.Event(), frozenset({"usergroups.users.list"})
        bodies = [issue_form(fake_slack, n) for n in range(ISSUES)] + [vote_form(fake_slack, u) for u in VOTERS]
        statuses = await asyncio.gather(*(post(session, bot.base, body) for body in bodies))
        assert statuses == [200] * len(bodies)  # every request was acknowledged
        # as many as may work at once are waiting on Slack, the rest for their turn: none is saved yet
        await fake_slack.wait_until(lambda: len(fake_slack.waiting) >= min(len(bodies), WORKING), 10)
        bot.process.kill()  # SIGKILL: nothing is cleaned up
        await bot.process.wait()
        with pytest.raises(AssertionError):  # running_bot insists on a clean exit; this one was killed
            await bot_cm.__aexit__(None, None, None)
        fake_slack.hold.set()
        assert fake_slack.responses() == [], "a reply went out before the kill: the test did not catch them in flight"

        async with running_bot(fake_slack, plan, database_url, tmp_path / "second.log") as again:
            try:
                await fake_slack.wait_for("respond", len(bodies), within=20)
            except TimeoutError:
                pytest.fail(f"replies after the restart: {fake_slack.responses()}\n{again.output()}")
            await asyncio.sleep(0.5)  # anything duplicated would arrive now

    replies = [r["text"] for r in fake_slack.responses()]
    assert len(replies) == len(bodies), replies
    assert sum(1 for r in replies if re.match(r"Issue #\d+ \(high\) is posted", r)) == ISSUES
    assert sum(1 for r in replies if r.startswith("Your vote: Go")) == len(VOTERS)
    db = await build_runtime(make_settings(fake_slack, database_url))
    try:
        async with db.service.sessions() as s:
            stored = await repo.get_release(session=s, release_id="r1")
    finally:
        await db.close()
    assert stored is not None
    impacts = Counter(i.impact for i in stored.issues)
    assert impacts == Counter(f"impact number {n}" for n in range(ISSUES)), impacts
    assert sorted(b.voter for b in stored.ballots) == sorted(VOTERS)


async def test_requests_acked_before_a_sigterm_take_effect_once_after_the_restart(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    # Slack holds the look-up each command makes before its change: at the stop, some are at work, the rest
    # wait their turn; none may be taken for finished, whatever the stop cut short
    plan = tmp_path / "plan.yml"
    plan.write_text(group_plan(datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)))
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'warroom.db'}"
    fake_slack.groups["S0ONCALL"] = ["U0OC1", "U0OC2"]
    bodies = [issue_form(fake_slack, n) for n in range(WORKING + 4)]
    async with aiohttp.ClientSession() as session:
        async with running_bot(fake_slack, plan, database_url, tmp_path / "first.log") as bot:
            fake_slack.hold, fake_slack.held = asyncio.Event(), frozenset({"usergroups.users.list"})
            statuses = await asyncio.gather(*(post(session, bot.base, body) for body in bodies))
            assert statuses == [200] * len(bodies)
            await fake_slack.wait_until(lambda: len(fake_slack.waiting) >= WORKING, 10)
        fake_slack.hold.set()  # running_bot stopped it with SIGTERM and saw it exit 0
        stopped = bot.output()
        assert "Traceback" not in stopped, stopped
        assert fake_slack.responses() == [], "a reply went out before the stop: the test did not catch them in flight"

        async with running_bot(fake_slack, plan, database_url, tmp_path / "second.log") as again:
            try:
                await fake_slack.wait_for("respond", len(bodies), within=20)
            except TimeoutError:
                pytest.fail(f"replies after the restart: {fake_slack.responses()}\n{stopped}\n{again.output()}")
            await asyncio.sleep(0.5)  # anything duplicated would arrive now

    replies = [r["text"] for r in fake_slack.responses()]
    assert len(replies) == len(bodies), replies
    assert all(re.match(r"Issue #\d+ \(high\) is posted", r) for r in replies), replies
    db = await build_runtime(make_settings(fake_slack, database_url))
    try:
        stored = await db.service.get("r1")
    finally:
        await db.close()
    impacts = Counter(i.impact for i in stored.issues)
    assert impacts == Counter(f"impact number {n}" for n in range(len(bodies))), impacts


# --- in one process: recovery racing the first processing, replies after a crash, housekeeping ---------------


@asynccontextmanager
async def group_runtime(fake: FakeSlack, database_url: str, clock: Clock) -> AsyncIterator[tuple[Runtime, TestClient]]:
    """A runtime (not yet serving timers) on the group plan, with a client for its HTTP endpoint."""
    runtime = await build_runtime(make_settings(fake, database_url), clock=clock)
    text = group_plan(T0)
    await runtime.service.load(LoadedPlan(parse_plan(text, "test.yml"), text, "test.yml"))
    await runtime.settle()
    client = TestClient(TestServer(web_app(runtime, serve_slack=True)))
    await client.start_server()
    try:
        yield runtime, client
    finally:
        await client.close()
        await runtime.close()


async def inbox_rows(runtime: Runtime) -> list[Any]:
    from storage.repo import unfinished_requests

    async with runtime.inbox.inbox_sessions() as session:
        return await unfinished_requests(session=session)


async def test_a_request_recovered_while_its_first_processing_still_runs_is_applied_once(
    fake_slack: FakeSlack, database_url: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    await recovery_races_the_first_processing(fake_slack, database_url, clock, caplog)


async def test_two_replicas_on_postgresql_processing_one_request_apply_it_once(
    fake_slack: FakeSlack,
    postgres_database: str,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await recovery_races_the_first_processing(fake_slack, postgres_database, clock, caplog)


async def recovery_races_the_first_processing(
    fake_slack: FakeSlack, database_url: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """One replica is stuck on Slack with a request while another (starting, or sweeping) takes it over."""
    caplog.set_level(logging.INFO, logger="handlers.errors")
    fake_slack.groups["S0ONCALL"] = ["U0OC1", "U0OC2"]
    async with (
        group_runtime(fake_slack, database_url, clock) as (first, client),
        group_runtime(fake_slack, database_url, clock) as (second, _),
    ):
        await second.directory.group_members("S0ONCALL")  # cached: only the first process waits for Slack
        fake_slack.hold, fake_slack.held = asyncio.Event(), frozenset({"usergroups.users.list"})
        body = issue_form(fake_slack, 1)
        response = await client.post("/slack/events", data=body, headers=sign(body))
        assert response.status == 200
        await fake_slack.wait_until(lambda: len(fake_slack.waiting) == 1)

        clock.advance(seconds=1)  # a replica starting now finds the request recorded and not finished
        assert await second.inbox.recover(received_before=clock()) == 1
        await second.settle()
        fake_slack.hold.set()  # the first process goes on with the same request
        async with asyncio.timeout(5):  # the first process's listener ends with nothing further to do
            while "already handled elsewhere" not in caplog.text:  # noqa: ASYNC110 - a log line, nothing to await
                await asyncio.sleep(0.05)
        await first.settle()
        release = await first.service.get("r1")

    assert [i.impact for i in release.issues] == ["impact number 1"]
    assert [r["text"] for r in fake_slack.responses()] == ["Issue #1 (high) is posted in the war room."]
    assert len([p for p in fake_slack.posts("C0WAR") if "impact number 1" in str(p.get("blocks"))]) == 1


async def test_a_change_saved_before_a_crash_gets_its_stored_reply_once_and_is_not_applied_again(
    runtime: Runtime, slack: SlackDriver, fake_slack: FakeSlack, clock: Clock
) -> None:
    from storage.repo import InboundRequest

    # what a crash right after the commit leaves: the change and its reply saved, the listener unfinished
    await slack.command("/issue", "high api saved before the crash")
    await until_finished(runtime)
    body = dict(parse_qsl(issue_form(fake_slack, 2)))
    left = InboundRequest("sig:v0=left-by-a-crash", "command", "/issue", body, "U0QA", "C0WAR", clock(), clock(), 1)
    async with runtime.inbox.inbox_sessions() as session, session.begin():
        await repo.record_requests(session=session, requests=[left])
    async with runtime.service.sessions() as session, session.begin():
        await repo.mark_handled(session=session, key=left.key, reply="Issue #7 (high) is posted.", now=clock())
    before = len(fake_slack.responses())

    assert await runtime.inbox.recover(received_before=clock() + timedelta(seconds=1)) == 1

    assert [r["text"] for r in fake_slack.responses()[before:]] == ["Issue #7 (high) is posted."]
    assert [i.impact for i in (await runtime.service.get("r1")).issues] == ["saved before the crash"]
    assert await inbox_rows(runtime) == []


async def test_a_request_recovered_after_its_response_url_expired_is_answered_privately(
    runtime: Runtime, fake_slack: FakeSlack, clock: Clock
) -> None:
    from storage.repo import InboundRequest

    body = dict(parse_qsl(issue_form(fake_slack, 3)))
    received = clock()
    left = InboundRequest("sig:v0=forty-minutes-old", "command", "/issue", body, "U0QA", "C0WAR", received, received, 1)
    async with runtime.inbox.inbox_sessions() as session, session.begin():
        await repo.record_requests(session=session, requests=[left])
    clock.advance(minutes=40)  # the bot was down for 40 minutes: Slack no longer takes replies at the response_url

    assert await runtime.inbox.recover(received_before=clock()) == 1
    await runtime.settle()

    assert [i.impact for i in (await runtime.service.get("r1")).issues] == ["impact number 3"]
    assert fake_slack.responses() == []
    [private] = fake_slack.of("chat.postEphemeral")
    assert (private["channel"], private["user"]) == ("C0WAR", "U0QA")
    assert private["text"] == "Issue #1 (high) is posted in the war room."
    assert await inbox_rows(runtime) == []


async def test_a_recovered_command_whose_form_can_no_longer_open_tells_the_person_to_run_it_again(
    runtime: Runtime, fake_slack: FakeSlack, clock: Clock
) -> None:
    from storage.repo import InboundRequest

    body = {**dict(parse_qsl(issue_form(fake_slack, 5))), "text": ""}  # `/issue` alone opens the form
    fake_slack.expired_triggers.add(body["trigger_id"])  # long expired by the time the bot is back
    left = InboundRequest("sig:v0=form-command", "command", "/issue", body, "U0QA", "C0WAR", clock(), clock(), 1)
    async with runtime.inbox.inbox_sessions() as session, session.begin():
        await repo.record_requests(session=session, requests=[left])

    assert await runtime.inbox.recover(received_before=clock() + timedelta(seconds=1)) == 1

    [reply] = fake_slack.responses()
    assert "could not be opened" in reply["text"] and "again" in reply["text"]
    assert "Something went wrong" not in reply["text"]


async def test_finished_requests_are_forgotten_after_the_replay_window_and_unfinished_ones_kept(
    runtime: Runtime, slack: SlackDriver, clock: Clock
) -> None:
    from storage.repo import InboundRequest

    await slack.command("/phase", "list")
    await until_finished(runtime)
    form = InboundRequest("body:unfinished", "view", "issue_modal", {}, "U0QA", "", clock(), clock(), 1)
    async with runtime.inbox.inbox_sessions() as session, session.begin():
        await repo.record_requests(session=session, requests=[form])
    clock.advance(minutes=10)
    await runtime.inbox.sweep()
    assert await count_rows(runtime) == 2  # inside the window (and its margin) both are kept

    clock.advance(minutes=6)
    await runtime.inbox.sweep()  # the form was never acknowledged: finished without applying it
    await runtime.inbox.sweep()
    assert await count_rows(runtime) == 0


async def until_finished(runtime: Runtime) -> None:
    """Wait for the listeners still running to mark their requests finished (they do after their reply)."""
    async with asyncio.timeout(5):
        while await inbox_rows(runtime):  # noqa: ASYNC110 - a database row, nothing to await
            await asyncio.sleep(0.02)


async def count_rows(runtime: Runtime) -> int:
    async with runtime.inbox.inbox_sessions() as session:
        return int((await session.execute(sql_text("SELECT count(*) FROM inbox"))).scalar_one())


async def test_socket_mode_requests_are_recorded_by_trigger_id_and_a_redelivery_is_not_applied_again(
    runtime: Runtime, fake_slack: FakeSlack
) -> None:
    from slack_bolt.request.async_request import AsyncBoltRequest

    body = dict(parse_qsl(issue_form(fake_slack, 4)))
    for _ in range(2):  # Socket Mode: Bolt dispatches the envelope's payload, already parsed, with no signature
        response = await runtime.app.async_dispatch(AsyncBoltRequest(body=dict(body), mode="socket_mode"))
        assert response.status == 200
    await fake_slack.wait_for("respond", 1)
    await runtime.settle()
    assert [i.impact for i in (await runtime.service.get("r1")).issues] == ["impact number 4"]
    assert len(fake_slack.responses()) == 1


VERIFICATION_TOKEN = "gIkuvaNzQIHg97ATvDxqgjtO"
"""What Slack puts in every request's `token` field: the app's (deprecated) verification token."""


async def stored_payloads(runtime: Runtime) -> list[str]:
    async with runtime.inbox.inbox_sessions() as session:
        return [str(p) for p in (await session.execute(sql_text("SELECT payload FROM inbox"))).scalars()]


async def test_the_inbox_keeps_no_verification_token_and_forgets_the_response_url_once_answered(
    runtime: Runtime, slack: SlackDriver, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    form = dict(parse_qsl(issue_form(fake_slack, 5)), token=VERIFICATION_TOKEN)
    body = urlencode(form)
    headers = sign(body)  # a replay is the same bytes under the same signature (its second may have passed)
    response = await slack.client.post("/slack/events", data=body, headers=headers)
    assert response.status == 200
    await fake_slack.wait_for("respond", 1)
    await until_finished(runtime)
    assert [i.impact for i in (await runtime.service.get("r1")).issues] == ["impact number 5"]
    [payload] = await stored_payloads(runtime)  # kept for the replay window: the key is what counts
    assert VERIFICATION_TOKEN not in payload and fake_slack.webhook_url not in payload, payload
    assert "impact number 5" not in payload, "what was typed is in the release's own records, not here"
    assert [r for r in caplog.records if r.levelno == logging.DEBUG], "DEBUG was on"
    assert VERIFICATION_TOKEN not in caplog.text, "the token reached a log line"
    replay = await slack.client.post("/slack/events", data=body, headers=headers)
    assert replay.status == 200 and await replay.text() == ""
    await runtime.settle()
    assert len((await runtime.service.get("r1")).issues) == 1, "a replay is still recognised"


BURST = 200


async def test_a_burst_of_acked_commands_is_worked_off_a_few_at_a_time_and_every_one_is_applied(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    # Every command waits on Slack (the user-group look-up) after its ack: unbounded, each would hold a
    # database connection or SQLite's lock meanwhile, and the pool runs dry after its 30 s timeout.
    fake_slack.groups["S0ONCALL"] = ["U0OC1", "U0OC2"]
    async with group_runtime(fake_slack, database_url, clock) as (runtime, client):
        fake_slack.hold, fake_slack.held = asyncio.Event(), frozenset({"usergroups.users.list"})
        bodies = [issue_form(fake_slack, n) for n in range(BURST)]
        try:
            responses = await asyncio.gather(*(client.post("/slack/events", data=b, headers=sign(b)) for b in bodies))
            assert [r.status for r in responses] == [200] * BURST  # all acknowledged while Slack holds the look-ups
            await fake_slack.wait_until(lambda: len(fake_slack.waiting) >= WORKING)
            await asyncio.sleep(0.5)  # the rest, if they were let through, would be waiting on Slack by now
            assert len(fake_slack.waiting) == WORKING
        finally:
            fake_slack.hold.set()
        await fake_slack.wait_for("respond", BURST, within=12)
        await runtime.settle()
        release = await runtime.service.get("r1")

    replies = [r["text"] for r in fake_slack.responses()]
    assert sum(1 for r in replies if re.fullmatch(r"Issue #\d+ \(high\) is posted in the war room\.", r)) == BURST
    assert Counter(i.impact for i in release.issues) == Counter(f"impact number {n}" for n in range(BURST))
