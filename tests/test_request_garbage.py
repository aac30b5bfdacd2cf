"""A request's objects are freed as soon as it is done, by reference counting alone, and a burst of commands
keeps no copy of the release per command while their deliveries catch up.

A reference cycle through a request's Bolt context would keep the whole request (its body, its clients, its
reply) until Python's cyclic collector reaches the oldest generation. During a burst, requests wait long
enough to be promoted there, so the memory of thousands of finished requests piled up between full
collections, and each of those collections stopped the event loop for a few hundred milliseconds."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from slack_bolt.context.async_context import AsyncBoltContext

from bot.domain import Outcome
from storage import repo
from storage.repo import InboundRequest
from tests.conftest import SlackDriver
from tests.fake_slack import FakeSlack


@contextmanager
def cycles_kept() -> Iterator[list[object]]:
    """Within: no cyclic collection. After: what only the cyclic collector would have freed, in the list."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    found: list[object] = []
    try:
        yield found
    finally:
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            found += gc.garbage
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            if was_enabled:
                gc.enable()


async def test_a_finished_command_leaves_no_reference_cycle(slack: SlackDriver) -> None:
    runtime = slack.runtime
    with cycles_kept() as garbage:
        for _ in range(3):
            reply = await slack.command("/phase", "list")
            assert "db-migration" in reply["text"], reply  # it ran: the listing came back
        for _ in range(200):  # the last finish is written with the next record, or within 0.1 s
            async with runtime.inbox.inbox_sessions() as session:
                if not await repo.unfinished_requests(session=session):
                    break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the commands were not finished")
        del reply
    kept = [type(o).__name__ for o in garbage if isinstance(o, AsyncBoltContext | InboundRequest)]
    assert kept == [], f"{len(kept)} request objects were only freed by the cyclic collector"


async def test_commands_while_a_delivery_waits_on_slack_keep_no_copy_of_the_release_each(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    """Each command's change asks for a delivery pass; while one is under way (here, a post Slack is slow to
    answer) the later ones fold into it. What they asked with, a whole release each (its issues a tuple
    that grows with every command), must not wait with them: 3,000 `/issue` in a burst held 3,000 copies."""

    def outcomes() -> int:
        gc.collect()
        return sum(isinstance(o, Outcome) for o in gc.get_objects())

    before = outcomes()  # whatever else in this process keeps one (the plan's load, another test)
    fake_slack.hold = asyncio.Event()
    fake_slack.held = frozenset({"chat.postMessage"})
    try:
        for n in range(6):
            await slack.command("/issue", f"low api slow delivery {n}", user="U0DEV", settle=False)
        await fake_slack.wait_until(lambda: "chat.postMessage" in fake_slack.waiting, 10)
        kept = outcomes() - before
        assert kept <= 2, f"{kept} outcomes (a release each) wait for the delivery pass"
    finally:
        fake_slack.hold.set()  # else the held post keeps the runtime's close waiting for its timeout
    await slack.runtime.settle()
    cards = [p for p in fake_slack.posts() if "slow delivery" in str(p.get("blocks"))]
    assert len(cards) == 6, "every card went out once Slack answered"


async def test_a_delivery_pass_that_fails_after_a_change_is_logged_at_once(
    slack: SlackDriver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing awaits the pass a change asks for: its failure (later jobs never re-timed) must not wait for
    the next change, which after the day's last command may never come, to be seen."""

    async def broken() -> None:
        raise RuntimeError("the database went away mid-pass")

    monkeypatch.setattr(slack.runtime.timekeeper, "rebuild", broken)
    with caplog.at_level(logging.ERROR):
        await slack.command("/issue", "low api the last command of the day", user="U0DEV", settle=False)
        for _ in range(100):  # a log record wakes nothing: look every 50 ms, 5 s at most
            if any(r.exc_info for r in caplog.records):
                break
            await asyncio.sleep(0.05)
    failed = [r for r in caplog.records if r.exc_info and "went away" in str(r.exc_info[1])]
    assert failed, [r.getMessage() for r in caplog.records]
    assert "delivery pass" in failed[0].getMessage()
