"""Delivery through Slack's faults: lost answers, permanent refusals, per-channel pacing and Retry-After."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.app import Runtime, build_runtime
from bot.core.pacing import Pace
from bot.domain import Outcome, Post, Refresh
from bot.plan import parse_plan, utcnow
from bot.service import LoadedPlan
from messages import blocks as bk
from storage import repo
from tests.conftest import FAST_PACE, T0, Clock, SlackDriver, make_settings, plan_text
from tests.fake_slack import Conversation, FakeSlack, RateLimit


def key_of(args: dict[str, Any]) -> str | None:
    return ((args.get("metadata") or {}).get("event_payload") or {}).get("key")


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


async def timeline(slack: SlackDriver) -> list[Any]:
    async with slack.runtime.service.sessions() as session:
        return await repo.get_timeline(session=session, release_id="r1")


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


def notices(fake: FakeSlack, channel: str = "C0WAR") -> list[str]:
    return [p["text"] for p in fake.posts(channel) if p["text"].startswith("⚠️ Warroom could not post")]


async def test_an_archived_channel_fails_the_message_at_once_and_the_war_room_is_told_once(
    slack: SlackDriver, fake_slack: FakeSlack, clock: Clock
) -> None:
    fake_slack.conversations["C0ANN"] = Conversation(archived=True)
    clock.set(T0)
    await slack.runtime.dispatcher.run_due()
    item = (await items(slack))["announcement:start"]
    assert item.status == "failed" and item.error.startswith("is_archived")
    [notice] = notices(fake_slack)
    assert "announcement:start" in notice and "<#C0ANN>" in notice and "Unarchive" in notice
    failed = [e for e in await timeline(slack) if e.kind == "message.failed"]
    assert [(e.subject, e.data["error"]) for e in failed] == [("announcement:start", "is_archived")]

    later = Post("announcements", "inline", {"inline": "Later news"}, key="custom:later")
    await slack.runtime.service.run("r1", lambda r, p, now: Outcome(r, effects=(later,)))
    await slack.runtime.settle()
    assert (await items(slack))["custom:later"].status == "failed"
    assert len(notices(fake_slack)) == 1, "one notice per channel and reason; the timeline has each failure"
    await advance(slack, clock, 3600)
    tries = [c for c in fake_slack.calls if c.method == "chat.postMessage" and c.args["channel"] == "C0ANN"]
    assert [key_of(c.args) for c in tries].count("announcement:start") == 1, "never retried"


async def test_when_the_war_room_refuses_the_release_manager_is_told_privately(
    slack: SlackDriver, fake_slack: FakeSlack, clock: Clock
) -> None:
    fake_slack.conversations["C0WAR"] = None  # deleted, or private without @warroom
    clock.set(T0 - timedelta(hours=2))
    await slack.runtime.dispatcher.run_due()
    assert (await items(slack))["announcement:assembly"].status == "failed"
    [dm] = notices(fake_slack, "U0RM")  # a post to a user lands in the bot's DM with them
    assert "announcement:assembly" in dm and "/invite @warroom" in dm
    assert "privately" in str(fake_slack.posts("U0RM")[0]["blocks"])
    assert fake_slack.messages[FakeSlack.im_of("U0RM")]


async def test_a_public_channel_the_bot_is_not_in_is_joined_and_posted_to(
    slack: SlackDriver, fake_slack: FakeSlack, clock: Clock
) -> None:
    fake_slack.scopes = fake_slack.scopes - {"chat:write.public"}
    fake_slack.conversations["C0ANN"] = Conversation(member=False)
    clock.set(T0)
    await slack.runtime.dispatcher.run_due()
    assert fake_slack.of("conversations.join") == [{"channel": "C0ANN"}]
    assert len(with_key(fake_slack, "announcement:start")) == 1
    assert (await items(slack))["announcement:start"].status == "sent"
    assert not notices(fake_slack)


async def test_a_private_channel_the_bot_is_not_in_fails_and_people_are_told_to_invite_it(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    fake_slack.conversations["C0INC"] = Conversation(private=True, member=False)
    await slack.command("/issue", "critical api down", user="U0DEV")
    [incident] = [i for k, i in (await items(slack)).items() if i.channel == "incidents"]
    assert incident.status == "failed" and incident.error.startswith("not_in_channel")
    [notice] = notices(fake_slack)
    assert "<#C0INC>" in notice and "/invite @warroom" in notice
    bk.validate(fake_slack.posts("C0WAR")[-1]["blocks"])


async def test_a_message_slack_refuses_as_too_long_is_failed_with_a_notice_not_retried(
    slack: SlackDriver, fake_slack: FakeSlack, clock: Clock
) -> None:
    fake_slack.refuse["C0ANN"] = "msg_blocks_too_long"
    clock.set(T0)
    await slack.runtime.dispatcher.run_due()
    assert (await items(slack))["announcement:start"].status == "failed"
    [notice] = notices(fake_slack)
    assert "msg_blocks_too_long" in notice
    await advance(slack, clock, 3600)
    assert not with_key(fake_slack, "announcement:start")


@asynccontextmanager
async def live_runtime(fake: FakeSlack, tmp_path: Path, pace: Pace) -> AsyncIterator[Runtime]:
    """The runtime on the real clock with its timer running, as `warroom run` has it (T0 in 3 hours)."""
    rt = await build_runtime(make_settings(fake, f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"), pace=pace)
    text = plan_text(start=utcnow().replace(microsecond=0) + timedelta(hours=3))
    await rt.service.load(LoadedPlan(parse_plan(text, "test.yml"), text, "test.yml"))
    await rt.timekeeper.start()
    try:
        yield rt
    finally:
        await rt.close()


def burst(announcements: int, *others: str) -> tuple[Post, ...]:
    news = [Post("announcements", "inline", {"inline": f"News {n}"}, key=f"news:{n}") for n in range(announcements)]
    direct = [Post(to, "inline", {"inline": f"For {to}"}, key=f"direct:{to}") for to in others]
    return (*news, *direct)


def posted_in_order(fake: FakeSlack) -> list[str]:
    return [str(key_of(c.args)) for c in fake.calls if c.method == "chat.postMessage"]


async def test_a_burst_to_one_channel_is_paced_while_other_channels_and_dms_go_at_once(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    pace = Pace(interval=0.25, burst=2, hold=0.3)
    async with live_runtime(fake_slack, tmp_path, pace) as rt:
        posts = burst(8, "U0OC1", "war_room")
        await rt.service.run("r1", lambda r, p, now: Outcome(r, effects=posts))
        await rt.settle()
        await fake_slack.wait_until(lambda: len(set(posted_in_order(fake_slack)) & {p.key for p in posts}) == 10, 15)
    order = posted_in_order(fake_slack)
    news = [c.at for c in fake_slack.calls if c.method == "chat.postMessage" and c.args["channel"] == "C0ANN"]
    assert [k for k in order if k.startswith("news:")] == [f"news:{n}" for n in range(8)], "in order, once each"
    assert news[-1] - news[0] >= (8 - pace.burst) * pace.interval * 0.9, "spread out at the channel's pace"
    third = order.index("news:2")
    assert order.index("direct:U0OC1") < third and order.index("direct:war_room") < third, "others do not wait"


async def test_a_retry_after_for_one_channel_holds_back_only_that_channel(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    fake_slack.rate_limits["chat.postMessage"] = RateLimit(per_second=0.5, burst=1, per_channel=True)
    async with live_runtime(fake_slack, tmp_path, FAST_PACE) as rt:
        posts = burst(3, "U0OC1", "U0OC2", "war_room")
        await rt.service.run("r1", lambda r, p, now: Outcome(r, effects=posts))
        await rt.settle()
        await fake_slack.wait_until(lambda: len(set(posted_in_order(fake_slack)) & {p.key for p in posts}) == 6, 15)
        assert rt.dispatcher.client.retry_handlers, "resets and 5xx of look-ups are still retried"
    refused = [c for c in fake_slack.calls if c.method == "chat.postMessage:429"]
    assert refused and {c.args["channel"] for c in refused} == {"C0ANN"}
    order = [k for k in posted_in_order(fake_slack) if k != "None"]
    assert order.index("direct:U0OC1") < order.index("news:1") and order.index("direct:U0OC2") < order.index("news:1")
    assert order.index("direct:war_room") < order.index("news:1"), "a page never waits behind an announcement"
    assert [k for k in order if k.startswith("news:")] == ["news:0", "news:1", "news:2"]
    retried_after = [c.at for c in fake_slack.calls if c.method == "chat.postMessage" and key_of(c.args) == "news:1"]
    first_refusal = next(c.at for c in refused if key_of(c.args) == "news:1")
    assert retried_after[0] - first_refusal >= 1.0, "the refused post waits out Retry-After"


async def test_a_method_wide_retry_after_holds_back_only_that_method(fake_slack: FakeSlack, tmp_path: Path) -> None:
    async with live_runtime(fake_slack, tmp_path, FAST_PACE) as rt:
        cards = tuple(Post("war_room", "inline", {"inline": f"Card {n}"}, key=f"card:{n}") for n in range(3))
        await rt.service.run("r1", lambda r, p, now: Outcome(r, effects=cards))
        await rt.settle()
        await fake_slack.wait_until(lambda: {"card:0", "card:1", "card:2"} <= set(posted_in_order(fake_slack)), 10)
        fake_slack.rate_limits["chat.update"] = RateLimit(per_second=0.5, burst=1)  # Tier 3, per method
        changes = (*(Refresh(f"card:{n}") for n in range(3)), *burst(1, "U0OC1"))
        await rt.service.run("r1", lambda r, p, now: Outcome(r, effects=changes))
        await rt.settle()
        await fake_slack.wait_until(lambda: len(fake_slack.of("chat.update")) == 3, 15)
    refused = [c for c in fake_slack.calls if c.method.endswith(":429")]
    assert refused and {c.method for c in refused} == {"chat.update:429"}
    updated = sorted(c.at for c in fake_slack.calls if c.method == "chat.update")
    posted = {key_of(c.args): c.at for c in fake_slack.calls if c.method == "chat.postMessage"}
    assert posted["news:0"] < updated[1] and posted["direct:U0OC1"] < updated[1], (
        "posts do not wait for chat.update's Retry-After"
    )
    assert sorted(c["ts"] for c in fake_slack.of("chat.update")) == sorted(
        m["ts"] for m in fake_slack.messages["C0WAR"] if str(m["text"]).startswith("Card")
    ), "each card updated once, after the wait"
