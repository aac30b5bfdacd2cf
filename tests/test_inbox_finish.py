"""A request's finish waits for the next request's record (one transaction for both), but not for long,
and a stop writes whatever finish is still waiting: a finish not written would repeat its reply."""

from __future__ import annotations

import asyncio

import pytest

from bot import inbox
from bot.app import build_runtime
from storage import repo
from tests.conftest import Clock, make_settings, sign
from tests.fake_slack import FakeSlack
from tests.test_acks_first import phase_list, replied
from tests.test_inbox import group_runtime


async def unfinished(fake: FakeSlack, database_url: str) -> list[repo.InboundRequest]:
    runtime = await build_runtime(make_settings(fake, database_url))
    try:
        async with runtime.inbox.inbox_sessions() as session:
            return await repo.unfinished_requests(session=session)
    finally:
        await runtime.close()


async def test_a_finish_is_written_by_the_next_record_and_a_stop_writes_the_last_one(
    fake_slack: FakeSlack, database_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox, "FINISH_WRITE_WITHIN", 600.0)  # only a record or the stop writes it
    async with group_runtime(fake_slack, database_url, clock) as (runtime, client):
        for who in ("one", "two"):
            body = phase_list(fake_slack, who)
            assert (await client.post("/slack/events", data=body, headers=sign(body))).status == 200
            await fake_slack.wait_until(lambda who=who: replied(fake_slack, who), 10)
        async with runtime.inbox.inbox_sessions() as session:
            waiting = [r.payload["trigger_id"] for r in await repo.unfinished_requests(session=session)]
        assert waiting == ["two.phase.trigger"], "the first finish went with the second record"
    assert await unfinished(fake_slack, database_url) == [], "the stop wrote the last finish"


async def test_a_finish_with_no_record_after_it_is_written_within_the_bound(
    fake_slack: FakeSlack, database_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inbox, "FINISH_WRITE_WITHIN", 0.05)
    async with group_runtime(fake_slack, database_url, clock) as (runtime, client):
        body = phase_list(fake_slack, "alone")
        assert (await client.post("/slack/events", data=body, headers=sign(body))).status == 200
        await fake_slack.wait_until(lambda: replied(fake_slack, "alone"), 10)

        async def left() -> list[repo.InboundRequest]:
            async with runtime.inbox.inbox_sessions() as session:
                return await repo.unfinished_requests(session=session)

        for _ in range(100):  # up to 5 s; written after 0.05 s
            if not await left():
                break
            await asyncio.sleep(0.05)
        assert await left() == [], "the finish was written with no record to go with"
