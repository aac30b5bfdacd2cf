"""The fake Slack behaves like Slack where the product depends on it (threads, channels, limits, faults)."""

from __future__ import annotations

import time
from collections.abc import Awaitable

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fake_slack import Conversation, FakeSlack, RateLimit


def bare_client(fake: FakeSlack) -> AsyncWebClient:
    """A client without retry handlers, so each fault shows as the caller would first see it."""
    return AsyncWebClient(token="xoxb-test", base_url=fake.url, retry_handlers=[], timeout=5)


async def error_of(call: object) -> str:
    with pytest.raises(SlackApiError) as caught:
        await call  # type: ignore[misc]
    return str(caught.value.response["error"])


async def test_history_lists_thread_parents_and_replies_come_from_the_thread(fake_slack: FakeSlack) -> None:
    client = bare_client(fake_slack)
    parent = await client.chat_postMessage(channel="C0WAR", text="card")
    reply = await client.chat_postMessage(channel="C0WAR", text="resolved", thread_ts=parent["ts"])
    history = await client.conversations_history(channel="C0WAR")
    assert [m["text"] for m in history["messages"]] == ["card"]
    assert history["messages"][0]["reply_count"] == 1 and history["messages"][0]["latest_reply"] == reply["ts"]
    thread = await client.conversations_replies(channel="C0WAR", ts=parent["ts"])
    assert [m["text"] for m in thread["messages"]] == ["card", "resolved"]
    assert await error_of(client.conversations_replies(channel="C0WAR", ts="1.000001")) == "thread_not_found"


async def test_posts_to_channels_slack_refuses_answer_with_slacks_errors(fake_slack: FakeSlack) -> None:
    client = bare_client(fake_slack)
    fake_slack.conversations.update(
        {
            "C0OLD": Conversation(archived=True),
            "C0GONE": None,
            "G0PRIV": Conversation(private=True, member=False),
            "C0PUB": Conversation(member=False),
        }
    )
    assert await error_of(client.chat_postMessage(channel="C0OLD", text="x")) == "is_archived"
    assert await error_of(client.chat_postMessage(channel="C0GONE", text="x")) == "channel_not_found"
    assert await error_of(client.chat_postMessage(channel="#nowhere", text="x")) == "channel_not_found"
    assert await error_of(client.chat_postMessage(channel="G0PRIV", text="x")) == "not_in_channel"
    assert await error_of(client.conversations_join(channel="G0PRIV")) == "method_not_supported_for_channel_type"
    await client.chat_postMessage(channel="C0PUB", text="x")  # chat:write.public: posting needs no membership
    assert await error_of(client.conversations_history(channel="C0PUB")) == "not_in_channel"
    await client.conversations_join(channel="C0PUB")
    assert (await client.conversations_history(channel="C0PUB"))["messages"]
    fake_slack.scopes = fake_slack.scopes - {"chat:write.public"}
    fake_slack.conversations["C0PUB2"] = Conversation(member=False)
    assert await error_of(client.chat_postMessage(channel="C0PUB2", text="x")) == "not_in_channel"


async def test_messages_over_slacks_limits_are_refused(fake_slack: FakeSlack) -> None:
    client = bare_client(fake_slack)
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x"}}
    assert await error_of(client.chat_postMessage(channel="C0WAR", text="x", blocks=[section] * 51)) == "invalid_blocks"
    long = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    assert await error_of(client.chat_postMessage(channel="C0WAR", text="x", blocks=[long])) == "invalid_blocks"
    assert await error_of(client.chat_postMessage(channel="C0WAR", text="x" * 40001)) == "msg_too_long"
    with pytest.warns(UserWarning, match="text"):
        assert await error_of(client.chat_postMessage(channel="C0WAR")) == "no_text"
    assert not fake_slack.messages.get("C0WAR")


async def test_rate_limits_apply_per_channel_with_retry_after(fake_slack: FakeSlack) -> None:
    client = bare_client(fake_slack)
    fake_slack.rate_limits["chat.postMessage"] = RateLimit(per_second=1, burst=2, per_channel=True)
    for _ in range(2):
        await client.chat_postMessage(channel="C0ANN", text="burst")
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel="C0ANN", text="one too many")
    assert caught.value.response.status_code == 429 and caught.value.response.headers["Retry-After"] == "1"
    await client.chat_postMessage(channel="C0WAR", text="another channel is not held back")
    fake_slack.rate_limits["conversations.history"] = RateLimit(per_second=0.5)
    await client.conversations_history(channel="C0WAR")
    assert await error_of(client.conversations_history(channel="C0ANN")) == "ratelimited"  # per method


@pytest.mark.parametrize("kind", ["500", "reset", "429", "hang"])
async def test_an_outage_fails_every_call_for_its_period_then_ends(fake_slack: FakeSlack, kind: str) -> None:
    client = bare_client(fake_slack)
    fake_slack.outage(kind, 0.5, methods={"chat.postMessage"})
    started = time.monotonic()
    with pytest.raises((SlackApiError, aiohttp.ClientError)):
        await client.chat_postMessage(channel="C0WAR", text="during")
    if kind == "hang":
        assert time.monotonic() - started >= 0.4, "a hung call is not answered before the outage ends"
    await client.auth_test()  # other methods answer
    assert not fake_slack.messages.get("C0WAR")
    fake_slack.outages.clear()  # the period is over
    await client.chat_postMessage(channel="C0WAR", text="after")
    assert [m["text"] for m in fake_slack.messages["C0WAR"]] == ["after"]


@pytest.mark.parametrize("how", ["reset", "500"])
async def test_a_lost_answer_still_posts_the_message(fake_slack: FakeSlack, how: str) -> None:
    client = bare_client(fake_slack)
    fake_slack.lose_answer("chat.postMessage", how)
    with pytest.raises((SlackApiError, aiohttp.ClientError)):
        await client.chat_postMessage(channel="C0WAR", text="posted all the same")
    assert [m["text"] for m in fake_slack.messages["C0WAR"]] == ["posted all the same"]


async def test_slow_methods_answer_late(fake_slack: FakeSlack) -> None:
    client = bare_client(fake_slack)
    fake_slack.slow["chat.postMessage"] = 0.3
    started = time.monotonic()
    await client.chat_postMessage(channel="C0WAR", text="slow")
    assert time.monotonic() - started >= 0.3


async def test_the_external_upload_flow_refuses_what_slack_refuses() -> None:
    """files.getUploadURLExternal → the bytes → files.completeUploadExternal, as Slack documents them: a file
    never asked for, not uploaded yet or already completed is `file_not_found`; sharing needs membership."""
    fake = await FakeSlack().start()
    client = AsyncWebClient(token="xoxb-test", base_url=fake.url)

    async def error(call: Awaitable[object]) -> str:
        try:
            await call
        except SlackApiError as exc:
            return str(exc.response["error"])
        raise AssertionError("Slack took it")

    try:
        ticket = await client.files_getUploadURLExternal(filename="a.md", length=3)
        file_id = str(ticket["file_id"])
        assert await error(client.files_completeUploadExternal(files=[{"id": "F0NOSUCH"}])) == "file_not_found"
        assert await error(client.files_completeUploadExternal(files=[{"id": file_id}])) == "file_not_found"
        async with aiohttp.ClientSession() as http:
            async with http.post(str(ticket["upload_url"]), data=b"toolong") as wrong:
                assert wrong.status == 400
            async with http.post(str(ticket["upload_url"]), data=b"abc") as right:
                assert right.status == 200 and (await right.text()) == "OK - 3"
        fake.conversations["C0PRIV"] = Conversation(private=True, member=False)
        refused = client.files_completeUploadExternal(files=[{"id": file_id}], channel_id="C0PRIV")
        assert await error(refused) == "not_in_channel"
        done = await client.files_completeUploadExternal(files=[{"id": file_id, "title": "A"}], channel_id="C0WAR")
        assert done["files"] == [{"id": file_id, "title": "A"}]
        assert [(f.content, f.shared_in) for f in fake.shared_files()] == [(b"abc", "C0WAR")]
        assert await error(client.files_completeUploadExternal(files=[{"id": file_id}])) == "file_not_found"
        fake.scopes = fake.scopes - {"files:write"}
        assert await error(client.files_getUploadURLExternal(filename="b.md", length=1)) == "missing_scope"
    finally:
        await fake.stop()
