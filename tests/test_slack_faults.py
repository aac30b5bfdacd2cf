"""Delivery through Slack's faults: lost answers, permanent refusals, per-channel pacing and Retry-After."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from storage import repo
from tests.conftest import T0, Clock, SlackDriver
from tests.fake_slack import FakeSlack


def with_key(fake: FakeSlack, key: str) -> list[dict[str, Any]]:
    """Messages Slack holds (replies included) whose metadata names `key`."""
    return [
        m
        for messages in fake.messages.values()
        for m in messages
        if ((m.get("metadata") or {}).get("event_payload") or {}).get("key") == key
    ]


async def items(slack: SlackDriver) -> dict[str, repo.OutboxItem]:
    async with slack.runtime.service.sessions() as session:
        return {i.key: i for i in await repo.outbox(session=session, release_id="r1")}


async def advance(slack: SlackDriver, clock: Clock, seconds: float) -> None:
    clock.advance(seconds=seconds)
    await slack.runtime.dispatcher.run_due()
    await slack.runtime.settle()


async def test_a_thread_reply_whose_answer_was_lost_is_found_in_the_thread_and_posted_once(
    slack: SlackDriver, fake_slack: FakeSlack, clock: Clock
) -> None:
    await slack.command("/issue", "high api down", user="U0DEV")
    for how in ("reset", "500"):
        number = 1 if how == "reset" else 2
        if number == 2:
            await slack.command("/issue", "high web slow", user="U0DEV")
        fake_slack.lose_answer("chat.postMessage", how)
        await slack.command("/issue", f"resolve {number} pool resized", user="U0DEV")
        key = f"issue:{number}:resolved"
        [posted] = with_key(fake_slack, key)
        assert posted.get("thread_ts"), "the resolution is a reply in the card's thread"
        assert (await items(slack))[key].status == "pending"  # the answer never came: not known to be sent
        await advance(slack, clock, 120)  # the retry looks in the thread before sending again
        assert len(with_key(fake_slack, key)) == 1, f"posted twice after a lost answer ({how})"
        assert (await items(slack))[key].status == "sent"
        assert (await items(slack))[key].ts == posted["ts"]


async def test_an_announcement_whose_answer_was_lost_is_not_posted_again_by_the_client_or_the_retry(
    slack: SlackDriver, fake_slack: FakeSlack, clock: Clock
) -> None:
    for how, key, at in (
        ("reset", "announcement:assembly", T0 - timedelta(hours=2)),
        ("500", "announcement:start", T0),
    ):
        fake_slack.lose_answer("chat.postMessage", how)
        clock.set(at)
        await slack.runtime.dispatcher.run_due()
        assert len(with_key(fake_slack, key)) == 1, f"the client repeated a post whose answer was lost ({how})"
        await advance(slack, clock, 120)
        assert len(with_key(fake_slack, key)) == 1
        assert (await items(slack))[key].status == "sent"
