"""Delivery side by side: channels are delivered in parallel, each still in order and paced, one slow channel
holds back no other, and timers falling due together fire once each (in one transaction, by one of the
processes), on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

import pytest

from bot.app import Runtime, build_runtime
from bot.domain import Event, Outcome, Post, Release, SetTimer
from bot.plan import Plan, parse_plan
from bot.service import LoadedPlan
from bot.timers import timer_rule
from storage import repo
from tests.conftest import FAST_PACE, Clock, make_settings, plan_text
from tests.fake_slack import FakeSlack


@timer_rule("test.noted")
def noted(release: Release, plan: Plan, now: datetime, data: dict[str, Any]) -> Outcome:
    """A timer rule for these tests: notes on the timeline that it ran."""
    return Outcome(release, (Event("test.noted", now, subject=str(data["n"])),))


@timer_rule("test.broken")
def broken(release: Release, plan: Plan, now: datetime, data: dict[str, Any]) -> Outcome:
    """A timer rule with a bug."""
    raise RuntimeError("this rule is broken")


def release_text(n: int) -> str:
    return plan_text().replace("id: r1", f"id: r{n}", 1)


async def runtime(fake: FakeSlack, url: str, clock: Clock, releases: int = 1) -> Runtime:
    rt = await build_runtime(make_settings(fake, url), clock=clock, pace=FAST_PACE)
    for n in range(1, releases + 1):
        source = release_text(n)
        await rt.service.load(LoadedPlan(parse_plan(source, f"r{n}.yml"), source, f"r{n}.yml"))
    await rt.settle()
    return rt


def key_of(args: dict[str, Any]) -> str:
    return str(((args.get("metadata") or {}).get("event_payload") or {}).get("key"))


def posted(fake: FakeSlack, prefix: str) -> list[tuple[str, str]]:
    """(channel, key) of each post whose key starts with `prefix`, in the order Slack took them."""
    calls = [c.args for c in fake.calls if c.method == "chat.postMessage"]
    return [(str(a["channel"]), key_of(a)) for a in calls if key_of(a).startswith(prefix)]


def posts_to(channels: int, each: int) -> tuple[Post, ...]:
    """`each` posts to each of `channels` channels, all due at once; keys sort in the order they are due."""
    return tuple(
        Post(f"C{c:03d}", "inline", {"inline": f"Post {k} to channel {c}"}, key=f"par:{c:03d}:{k:02d}")
        for k in range(each)
        for c in range(channels)
    )


async def test_channels_are_delivered_side_by_side_each_once_and_in_order(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    rt = await runtime(fake_slack, database_url, clock)
    try:
        posts = posts_to(channels=12, each=5)  # beyond the burst of 3: each channel is paced as well
        await rt.service.run("r1", lambda r, p, now: Outcome(r, effects=posts))
        for _ in range(20):
            if len(posted(fake_slack, "par:")) == len(posts):
                break
            await rt.dispatcher.run_due()
            await asyncio.sleep(FAST_PACE.interval)

        sent = posted(fake_slack, "par:")
        assert sorted(k for _, k in sent) == sorted(p.key or "" for p in posts), "every message exactly once"
        for c in range(12):
            in_channel = [k for ch, k in sent if ch == f"C{c:03d}"]
            assert in_channel == [f"par:{c:03d}:{k:02d}" for k in range(5)], "a channel's messages in order"
        channels_first_five = {ch for ch, _ in sent[:12]}
        assert len(channels_first_five) > 1, "channels are not delivered one after another"
    finally:
        await rt.close()


async def test_a_slow_channel_does_not_hold_back_the_others(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    rt = await runtime(fake_slack, database_url, clock)
    try:
        slow = tuple(Post("C0SLOW", "inline", {"inline": f"Slow {k}"}, key=f"slow:{k}") for k in range(3))
        quick = tuple(Post(f"C0Q{c}", "inline", {"inline": f"Quick {c}"}, key=f"quick:{c}") for c in range(3))
        await rt.service.run("r1", lambda r, p, now: Outcome(r, effects=slow + quick))
        fake_slack.hold, fake_slack.held_channels = asyncio.Event(), frozenset({"C0SLOW"})
        delivering = asyncio.create_task(rt.dispatcher.run_due())

        await fake_slack.wait_until(lambda: len(posted(fake_slack, "quick:")) == 3 and bool(fake_slack.waiting))
        assert not posted(fake_slack, "slow:"), "the slow channel's first post is still with Slack"
        assert not delivering.done()

        fake_slack.hold.set()
        await asyncio.wait_for(delivering, 10)
        assert [k for _, k in posted(fake_slack, "slow:")] == ["slow:0", "slow:1", "slow:2"]
        assert sorted(k for _, k in posted(fake_slack, "quick:")) == ["quick:0", "quick:1", "quick:2"]
        async with rt.service.sessions() as session:
            items = [i for i in await repo.outbox(session=session, release_id="r1") if i.key.startswith("slow:")]
        assert {i.status for i in items} == {"sent"}
    finally:
        fake_slack.hold = None
        await rt.close()


async def test_two_dispatchers_with_small_batches_post_each_message_once(
    fake_slack: FakeSlack, any_database: str, clock: Clock
) -> None:
    one = await runtime(fake_slack, any_database, clock)
    two = await runtime(fake_slack, any_database, clock)
    one.dispatcher.claim_batch = two.dispatcher.claim_batch = 7  # their passes interleave
    try:
        posts = posts_to(channels=10, each=3)
        await one.service.run("r1", lambda r, p, now: Outcome(r, effects=posts))
        for _ in range(10):
            await asyncio.gather(one.dispatcher.run_due(), two.dispatcher.run_due())
        keys = [k for _, k in posted(fake_slack, "par:")]
        assert sorted(keys) == sorted(p.key or "" for p in posts), "every message exactly once"
    finally:
        await one.close()
        await two.close()


async def set_timers(rt: Runtime, releases: int, at: datetime, rule: str = "test.noted") -> None:
    for n in range(1, releases + 1):
        timers = (SetTimer(f"test:{n}", at, rule, {"n": n}),)
        await rt.service.run(f"r{n}", lambda r, p, now, t=timers: Outcome(r, effects=t))


async def notes(rt: Runtime, releases: int) -> list[str]:
    found = []
    async with rt.service.sessions() as session:
        for n in range(1, releases + 1):
            events = await repo.get_timeline(session=session, release_id=f"r{n}")
            found += [f"r{n}:{e.subject}" for e in events if e.kind == "test.noted"]
    return found


async def test_timers_due_together_fire_once_each_with_two_dispatchers(
    fake_slack: FakeSlack, any_database: str, clock: Clock
) -> None:
    one = await runtime(fake_slack, any_database, clock, releases=6)
    two = await runtime(fake_slack, any_database, clock, releases=6)
    one.dispatcher.timer_batch = two.dispatcher.timer_batch = 4  # batches that overlap
    try:
        await set_timers(one, 6, clock() + timedelta(minutes=1))
        clock.advance(minutes=2)
        await asyncio.gather(one.dispatcher.run_due(), two.dispatcher.run_due(), one.dispatcher.run_due())
        assert sorted(await notes(one, 6)) == [f"r{n}:{n}" for n in range(1, 7)], "each timer's rule ran once"
        async with one.service.sessions() as session:
            assert await repo.due_timers(session=session, now=clock()) == []
    finally:
        await one.close()
        await two.close()


async def test_a_broken_timer_rule_does_not_keep_the_others_due_with_it_from_firing(
    fake_slack: FakeSlack, database_url: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    rt = await runtime(fake_slack, database_url, clock, releases=3)
    try:
        at = clock() + timedelta(minutes=1)
        await set_timers(rt, 3, at)
        broken_one = (SetTimer("test:broken", at, "test.broken"),)
        await rt.service.run("r2", lambda r, p, now: Outcome(r, effects=broken_one))
        clock.advance(minutes=2)
        with caplog.at_level(logging.ERROR):
            await rt.dispatcher.run_due()
        assert sorted(await notes(rt, 3)) == ["r1:1", "r2:2", "r3:3"]
        assert any("test:broken" in r.getMessage() for r in caplog.records), "the failure is logged"
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            await rt.dispatcher.run_due()
        assert not any("test:broken" in r.getMessage() for r in caplog.records), "and not retried at every pass"
    finally:
        await rt.close()


async def test_messages_due_at_one_time_share_one_wake_up(
    fake_slack: FakeSlack, database_url: str, clock: Clock
) -> None:
    rt = await runtime(fake_slack, database_url, clock)
    try:
        at = (clock() + timedelta(minutes=10)).replace(microsecond=0)
        later = tuple(
            Post(f"C{c:03d}", "inline", {"inline": f"Later {c}"}, key=f"later:{c}", due_at=at) for c in range(30)
        )
        await rt.service.run("r1", lambda r, p, now: Outcome(r, effects=later))
        await rt.settle()
        await rt.timekeeper.rebuild()
        wake_ups = [j for j in rt.timekeeper.scheduler.get_jobs() if getattr(j.trigger, "run_date", None) == at]
        assert len(wake_ups) == 1, "one job wakes the pass that delivers all thirty"

        clock.set(at)
        await wake_ups[0].func()
        await rt.timekeeper.finish()
        assert sorted(k for _, k in posted(fake_slack, "later:")) == sorted(p.key or "" for p in later)
    finally:
        await rt.close()
