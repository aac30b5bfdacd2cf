"""Delivery through Slack's faults: lost answers, permanent refusals, per-channel pacing and Retry-After."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.domain import Outcome, Post
from messages import blocks as bk
from storage import repo
from tests.conftest import T0, Clock, SlackDriver
from tests.fake_slack import Conversation, FakeSlack


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
    fake_slack.fail["chat.postMessage"] = [(200, {"ok": False, "error": "msg_blocks_too_long"})]
    clock.set(T0)
    await slack.runtime.dispatcher.run_due()
    assert (await items(slack))["announcement:start"].status == "failed"
    [notice] = notices(fake_slack)
    assert "msg_blocks_too_long" in notice
    await advance(slack, clock, 3600)
    assert not with_key(fake_slack, "announcement:start")
