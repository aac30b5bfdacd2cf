"""A burst far larger than the work can keep up with: past a few dozen, acknowledged requests wait in the inbox
(where they are recorded anyway) instead of in memory, and are still applied once each, in turn."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest

from bot import inbox
from bot.app import build_runtime
from bot.inbox import WORKING
from storage import repo
from tests.conftest import Clock, make_settings, sign
from tests.fake_slack import FakeSlack
from tests.test_inbox import group_runtime, issue_form, until_finished

BURST = 60
WAITING = 4


async def test_a_burst_waits_in_the_inbox_not_in_memory_and_is_applied_once_each_in_turn(
    fake_slack: FakeSlack, any_database: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox, "WAITING", WAITING)
    fake_slack.groups["S0ONCALL"] = ["U0OC1", "U0OC2"]
    async with group_runtime(fake_slack, any_database, clock) as (runtime, client):
        idle = len(asyncio.all_tasks())
        fake_slack.hold, fake_slack.held = asyncio.Event(), frozenset({"usergroups.users.list"})
        try:
            for n in range(BURST):  # one after another: the order they were received is known
                body = issue_form(fake_slack, n)
                response = await client.post("/slack/events", data=body, headers=sign(body))
                assert response.status == 200
            await fake_slack.wait_until(lambda: len(fake_slack.waiting) >= WORKING)
            held_in_memory = len(asyncio.all_tasks()) - idle
            async with runtime.inbox.inbox_sessions() as session:
                recorded = await inbox.repo.unfinished_requests(session=session)
        finally:
            fake_slack.hold.set()
        await fake_slack.wait_for("respond", BURST, within=30)
        await runtime.settle()
        release = await runtime.service.get("r1")
        await until_finished(runtime)  # each finish is written within FINISH_WRITE_WITHIN: none is left

    assert len(recorded) == BURST, "every acknowledged request is recorded while it waits"
    # those at work (each with its held Slack call, both ends in this process) and those waiting in memory;
    # without the inbox to wait in it is one task and more for each of the BURST requests
    assert held_in_memory <= 3 * WORKING + WAITING + 8, f"{held_in_memory} tasks for {BURST} requests waiting"
    replies = [r["text"] for r in fake_slack.responses()]
    reported = [r for r in replies if re.fullmatch(r"Issue #\d+ \(high\) is posted in the war room\.", r)]
    assert len(reported) == BURST, "each person had their reply, once"
    by_number = [i.impact for i in sorted(release.issues, key=lambda i: i.number)]
    assert sorted(by_number) == sorted(f"impact number {n}" for n in range(BURST)), "applied once each"
    # turns are given in the order received; the WORKING at work at once may finish in any order. On SQLite
    # their writes queue for its one connection in turn, so issue numbers follow the turns; PostgreSQL's pool
    # lets one of the WORKING take the release's lock after later ones, so there only "once each" holds
    if any_database.startswith("sqlite"):
        places = [int(impact.split()[-1]) for impact in by_number]
        assert all(abs(place - n) < WORKING for n, place in enumerate(places)), places


async def test_a_request_left_in_the_inbox_is_taken_up_once_and_not_after_another_process_claimed_it(
    fake_slack: FakeSlack, any_database: str, clock: Clock
) -> None:
    runtime = await build_runtime(make_settings(fake_slack, any_database), clock=clock)
    try:
        recorded_at = clock()
        requests = [
            repo.InboundRequest(f"sig:{n}", "command", "/issue", {"n": n}, "U0QA", "C0WAR", recorded_at, recorded_at, 1)
            for n in range(3)
        ]
        async with runtime.inbox.inbox_sessions() as session, session.begin():
            assert await repo.record_requests(session=session, requests=requests) == {"sig:0", "sig:1", "sig:2"}
        later = recorded_at + timedelta(seconds=2)

        async def take_up(key: str) -> repo.InboundRequest | None:
            async with runtime.inbox.inbox_sessions() as session, session.begin():
                return await repo.take_up_request(session=session, key=key, claimed_at=recorded_at, now=later)

        taken = await take_up("sig:0")
        assert taken is not None and (taken.payload, taken.attempts, taken.claimed_at) == ({"n": 0}, 2, later)
        assert await take_up("sig:0") is None, "claimed since it was recorded: taken up once"
        async with runtime.inbox.inbox_sessions() as session, session.begin():  # another process's sweep
            assert await repo.claim_request(session=session, request=requests[1], now=later)
            await repo.finish_requests(session=session, keys=["sig:2"], now=later)
        assert await take_up("sig:1") is None, "another process claimed it: not taken up here too"
        assert await take_up("sig:2") is None, "finished meanwhile"
        assert await take_up("sig:9") is None, "never recorded"
    finally:
        await runtime.close()
