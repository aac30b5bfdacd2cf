"""Delivery in batches: a pass claims many messages, what a channel's pace holds back goes back to the outbox in
one write, due at the channel's pace, and every message is still posted once, in order, with two processes
delivering side by side."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from bot.app import Runtime, build_runtime
from bot.core.pacing import Pace
from bot.domain import Outcome, Post
from bot.plan import parse_plan
from bot.service import LoadedPlan
from storage import repo
from storage.models import OutboxRow
from tests.conftest import Clock, make_settings, plan_text
from tests.fake_slack import FakeSlack

# a burst of 3 per channel, then one post every 300 ms; a pass never waits for a channel (hold 0)
PACED = Pace(interval=0.3, burst=3, hold=0.0)


def key_of(args: dict[str, Any]) -> str:
    return str(((args.get("metadata") or {}).get("event_payload") or {}).get("key"))


def posted(fake: FakeSlack) -> list[str]:
    return [key_of(c.args) for c in fake.calls if c.method == "chat.postMessage"]


async def runtime(fake: FakeSlack, url: str, clock: Clock, pace: Pace) -> Runtime:
    rt = await build_runtime(make_settings(fake, url), clock=clock, pace=pace)
    await rt.service.load(LoadedPlan(parse_plan(plan_text(), "test.yml"), plan_text(), "test.yml"))
    return rt


async def news_items(rt: Runtime) -> dict[str, repo.OutboxItem]:
    async with rt.service.sessions() as session:
        return {i.key: i for i in await repo.outbox(session=session, release_id="r1") if i.key.startswith("news:")}


async def test_what_a_channel_holds_back_goes_back_together_and_is_posted_once_in_order_by_two_processes(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    one = await runtime(fake_slack, database_url, clock, PACED)
    two = await runtime(fake_slack, database_url, clock, PACED)
    try:
        news = tuple(Post("announcements", "inline", {"inline": f"News {n}"}, key=f"news:{n}") for n in range(12))
        direct = (Post("U0OC1", "inline", {"inline": "For you"}, key="direct:U0OC1"),)
        await one.service.run("r1", lambda r, p, now: Outcome(r, effects=(*news, *direct)))

        await asyncio.gather(one.dispatcher.run_due(), two.dispatcher.run_due())
        first = posted(fake_slack)
        assert "direct:U0OC1" in first, "another channel does not wait for the paced one"
        assert [k for k in first if k.startswith("news:")] == ["news:0", "news:1", "news:2"], "the burst, in order"
        held = [i for i in (await news_items(one)).values() if i.status == "pending"]
        assert len(held) == 9, "the rest of the channel's lane went back to the outbox"
        assert all(i.claimed_at is None and i.attempts == 0 for i in held), "held back is no attempt"
        async with one.service.sessions() as session:
            due_again = (
                await session.execute(
                    select(OutboxRow.next_attempt_at)
                    .where(OutboxRow.id.in_([i.id for i in held]))
                    .order_by(OutboxRow.due_at, OutboxRow.id)
                )
            ).scalars()
            times = list(due_again)
        assert times == sorted(set(times)), "due one after another at the channel's pace, in order"

        for _ in range(40):  # a few seconds of the channel's pace at most
            if len([k for k in posted(fake_slack) if k.startswith("news:")]) == 12:
                break
            await asyncio.sleep(PACED.interval)
            clock.advance(seconds=1)
            await asyncio.gather(one.dispatcher.run_due(), two.dispatcher.run_due())

        keys = [k for k in posted(fake_slack) if k.startswith("news:")]
        assert keys == [f"news:{n}" for n in range(12)], "every one once, in the order they were due"
        items = await news_items(one)
        assert {i.status for i in items.values()} == {"sent"}
        assert {i.attempts for i in items.values()} == {1}, "each posted on its only counted attempt"
    finally:
        await one.close()
        await two.close()
