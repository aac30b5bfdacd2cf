"""`/release report`: the report and its chart reach the war room through Slack's external upload flow."""

from __future__ import annotations

import io
import json
from typing import Any

from PIL import Image

from bot.chart import chart_size
from bot.plan import parse_plan
from bot.report import report, to_markdown
from storage import repo
from tests.conftest import Clock, SlackDriver, plan_text
from tests.fake_slack import Conversation, FakeSlack


async def _state(slack: SlackDriver) -> tuple[Any, list[Any], list[Any]]:
    async with slack.runtime.service.sessions() as session:
        release = await repo.get_release(session=session, release_id="r1")
        timeline = await repo.get_timeline(session=session, release_id="r1")
        outbox = await repo.outbox(session=session, release_id="r1")
    return release, timeline, outbox


async def _upload_item(slack: SlackDriver) -> repo.OutboxItem:
    _, _, outbox = await _state(slack)
    [item] = [i for i in outbox if i.kind == "upload"]
    return item


def _dm_texts(fake: FakeSlack, user: str) -> list[str]:
    return [str(p.get("text")) for p in fake.posts(user)]


async def test_release_report_uploads_the_markdown_and_the_chart_to_the_war_room_with_a_summary(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    await slack.command("/issue", "high api region1 5xx on /login", user="U0DEV")
    reply = await slack.command("/release", "report", user="U0QA")  # anyone in the plan, not only the manager
    assert "on their way to the war room" in reply["text"], reply

    asked = fake_slack.of("files.getUploadURLExternal")
    assert [a["filename"] for a in asked] == ["r1-post-mortem.md", "r1-post-mortem.png"]
    shared = fake_slack.shared_files("C0WAR")
    assert [f.filename for f in shared] == ["r1-post-mortem.md", "r1-post-mortem.png"]
    markdown, chart = (f.content or b"" for f in shared)
    assert [int(a["length"]) for a in asked] == [len(markdown), len(chart)]

    # the Markdown is the export of the release as it was when it went (before its own "uploaded" entry)
    release, timeline, outbox = await _state(slack)
    before = [e for e in timeline if e.kind != "report.uploaded"]
    expected = to_markdown(report(release, before, parse_plan(plan_text(), "test.yml"), outbox))
    assert markdown.decode() == expected
    assert "| 1 | high | api | region1 | 5xx on /login | open |" in markdown.decode()

    image = Image.open(io.BytesIO(chart))
    assert image.format == "PNG"
    assert image.size == chart_size(report(release, before))

    [complete] = fake_slack.of("files.completeUploadExternal")
    assert complete["channel_id"] == "C0WAR"
    assert [f["id"] for f in json.loads(complete["files"])] == [f.id for f in shared]
    comment = complete["initial_comment"]
    assert comment.startswith(":clipboard: Post-mortem report: *Test Platform v1.2.3* — scheduled.")
    assert "issues: 1 (1 still open)" in comment

    item = await _upload_item(slack)
    assert item.status == "sent" and item.channel_id == "C0WAR"
    uploaded = [e for e in timeline if e.kind == "report.uploaded"]
    assert [e.data["files"] for e in uploaded] == [[f.id for f in shared]]
    assert [e.actor for e in timeline if e.kind == "report.requested"] == ["U0QA"]


async def test_someone_outside_the_plan_cannot_ask_for_the_report_and_nothing_is_uploaded(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    reply = await slack.command("/release", "report", user="U0STRANGER")
    assert "Only people listed in the plan may upload the post-mortem report" in reply["text"], reply
    assert not fake_slack.of("files.getUploadURLExternal")
    _, _, outbox = await _state(slack)
    assert not [i for i in outbox if i.kind == "upload"]


async def test_release_report_takes_no_arguments(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    reply = await slack.command("/release", "report now please", user="U0RM")
    assert "`/release report` takes no arguments." in reply["text"], reply
    assert not fake_slack.of("files.getUploadURLExternal")


async def test_a_war_room_the_bot_cannot_join_fails_the_upload_for_good_and_says_so(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    fake_slack.conversations["C0WAR"] = Conversation(private=True, member=False)  # private, never invited
    await slack.command("/release", "report", user="U0QA")
    assert fake_slack.of("files.getUploadURLExternal"), "the upload was tried"
    assert not fake_slack.shared_files(), "Slack shares nothing in a channel the bot is not in"
    assert fake_slack.of("conversations.join") == [{"channel": "C0WAR"}]

    item = await _upload_item(slack)
    assert item.status == "failed" and item.error.startswith("not_in_channel")
    _, timeline, _ = await _state(slack)
    [failed] = [e for e in timeline if e.kind == "message.failed"]
    assert failed.subject == item.key and failed.data["error"] == "not_in_channel"
    # the one who asked, and the release manager (the war room itself refuses), are told privately
    [asked] = _dm_texts(fake_slack, "U0QA")
    assert "Your post-mortem report could not be uploaded to <#C0WAR>" in asked and "/invite @warroom" in asked
    assert "not retried" in asked
    assert any(item.key in text for text in _dm_texts(fake_slack, "U0RM"))


async def test_a_slack_outage_during_the_upload_is_retried_and_the_one_who_asked_is_told(
    slack: SlackDriver, fake_slack: FakeSlack, clock: Clock
) -> None:
    # Slack unwell while completing the upload: `internal_error`, "likely due to a transient issue" (an HTTP
    # 500 is the same to the dispatcher, after the client's own retries, which wait seconds between them)
    fake_slack.fail["files.completeUploadExternal"] = [(200, {"ok": False, "error": "internal_error"})]
    await slack.command("/release", "report", user="U0RM")
    item = await _upload_item(slack)
    assert item.status == "pending" and item.attempts == 1, item
    assert not fake_slack.shared_files()
    [told] = _dm_texts(fake_slack, "U0RM")
    assert "could not be uploaded" in told and "retries it by itself" in told

    clock.advance(seconds=31)  # the first retry is 30 s later
    await slack.runtime.dispatcher.run_due()
    await slack.runtime.settle()
    item = await _upload_item(slack)
    assert item.status == "sent", item
    assert [f.filename for f in fake_slack.shared_files("C0WAR")] == ["r1-post-mortem.md", "r1-post-mortem.png"]
    assert len(_dm_texts(fake_slack, "U0RM")) == 1, "told once, not at every attempt"
