"""A burst far larger than the work can keep up with: past a few dozen, acknowledged requests wait in the inbox
(where they are recorded anyway) instead of in memory, and are still applied once each, in turn."""

from __future__ import annotations

import asyncio
import re

import pytest

from bot import inbox
from bot.inbox import WORKING
from tests.conftest import Clock, sign
from tests.fake_slack import FakeSlack
from tests.test_inbox import group_runtime, issue_form

BURST = 60
WAITING = 4


async def test_a_burst_waits_in_the_inbox_not_in_memory_and_is_applied_once_each_in_turn(
    fake_slack: FakeSlack, database_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox, "WAITING", WAITING)
    fake_slack.groups["S0ONCALL"] = ["U0OC1", "U0OC2"]
    async with group_runtime(fake_slack, database_url, clock) as (runtime, client):
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
        async with runtime.inbox.inbox_sessions() as session:
            left = await inbox.repo.unfinished_requests(session=session)

    assert len(recorded) == BURST, "every acknowledged request is recorded while it waits"
    # those at work (each with its held Slack call, both ends in this process) and those waiting in memory;
    # without the inbox to wait in it is one task and more for each of the BURST requests
    assert held_in_memory <= 3 * WORKING + WAITING + 8, f"{held_in_memory} tasks for {BURST} requests waiting"
    replies = [r["text"] for r in fake_slack.responses()]
    reported = [r for r in replies if re.fullmatch(r"Issue #\d+ \(high\) is posted in the war room\.", r)]
    assert len(reported) == BURST, "each person had their reply, once"
    by_number = [i.impact for i in sorted(release.issues, key=lambda i: i.number)]
    assert sorted(by_number) == sorted(f"impact number {n}" for n in range(BURST)), "applied once each"
    # turns are given in the order received; the WORKING at work at once may finish in any order
    places = [int(impact.split()[-1]) for impact in by_number]
    assert all(abs(place - n) < WORKING for n, place in enumerate(places)), places
    assert not left, "nothing left unfinished"
