"""Text people type is data: it never becomes layout, a broadcast or a live group mention (SPEC §8).

Every attack goes in from the outside (a signed slash command, a button and its modal) and is checked on
what the fake Slack received.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.app import Runtime
from bot.plan import parse_plan
from bot.service import LoadedPlan
from messages import blocks as bk
from tests.conftest import Clock, SlackDriver, plan_text
from tests.fake_slack import FakeSlack
from tests.test_gonogo_handlers import click, open_vote, settle, submission

FORGED = "ok\n# ✅ RELEASE COMPLETE\n---\n~ approved by the CTO"


def forged_layout(posts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The blocks a person's text turned into structure: a forged header, divider or context line."""
    found = []
    for post in posts:
        blocks = post.get("blocks") or []
        for i, block in enumerate(blocks):
            text = json.dumps(block)
            header = block["type"] == "header" and "RELEASE COMPLETE" in text
            context = block["type"] == "context" and "approved by the CTO" in text
            divider = block["type"] == "divider" and i > 0 and "RELEASE COMPLETE" in json.dumps(blocks[i - 1])
            if header or context or divider:
                found.append(block)
    return found


def shown_as_text(posts: list[dict[str, Any]]) -> bool:
    """The forged lines arrived, as text inside a section."""
    return any(
        b["type"] == "section" and "RELEASE COMPLETE" in b.get("text", {}).get("text", "") and "approved" in str(b)
        for p in posts
        for b in p.get("blocks") or []
    )


async def start_release(slack: SlackDriver) -> None:
    reply = await slack.command("/release", "start --force testing the war room", user="U0VP")
    assert "in progress" in reply["text"], reply["text"]


def assert_no_forgery(fake: FakeSlack, channel: str, before: int) -> None:
    posts = fake.posts(channel)[before:]
    assert posts, f"nothing was posted to {channel}"
    assert forged_layout(posts) == []
    assert shown_as_text(posts)
    for post in posts:
        bk.validate(post["blocks"])


# --- no layout forgery -------------------------------------------------------------------------------------


async def test_a_phase_failure_reason_cannot_forge_a_header_divider_or_context(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    before = len(fake_slack.posts("C0WAR"))
    reply = await slack.command("/phase", f"fail db-migration {FORGED}", user="U0DBA")
    assert "failed" in reply["text"], reply["text"]
    assert_no_forgery(fake_slack, "C0WAR", before)


async def test_a_rollback_reason_cannot_forge_layout_in_the_war_room_or_announcements(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    await start_release(slack)
    war, ann = len(fake_slack.posts("C0WAR")), len(fake_slack.posts("C0ANN"))
    reply = await slack.command("/release", f"rollback {FORGED}", user="U0RM")
    assert "Rollback started" in reply["text"], reply["text"]
    assert_no_forgery(fake_slack, "C0WAR", war)
    assert_no_forgery(fake_slack, "C0ANN", ann)


async def test_an_abort_reason_cannot_forge_layout(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    war, ann = len(fake_slack.posts("C0WAR")), len(fake_slack.posts("C0ANN"))
    reply = await slack.command("/release", f"abort {FORGED}", user="U0RM")
    assert "abort" in reply["text"].lower(), reply["text"]
    assert_no_forgery(fake_slack, "C0WAR", war)
    assert_no_forgery(fake_slack, "C0ANN", ann)


async def test_an_issue_impact_and_error_cannot_forge_layout(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    before = len(fake_slack.posts("C0WAR"))
    reply = await slack.command("/issue", f"high api {FORGED} | {FORGED}", user="U0DEV")
    assert "Issue #1" in reply["text"], reply["text"]
    assert_no_forgery(fake_slack, "C0WAR", before)


async def test_a_no_go_reason_cannot_forge_layout_in_the_vote(slack: SlackDriver, clock: Clock) -> None:
    await open_vote(slack, clock)
    await slack.action(click(slack.fake, "vote_no_go", "U0QA"))
    [opened] = await slack.fake.wait_for("views.open", 1)
    await slack.action(submission(opened["view"], "U0QA", {"reason": {"type": "plain_text_input", "value": FORGED}}))
    await settle(slack, "chat.postEphemeral", 1)
    update = slack.fake.of("chat.update")[-1]
    assert forged_layout([update]) == []
    assert shown_as_text([update])
    bk.validate(update["blocks"])


async def test_a_custom_template_that_interpolates_a_reason_keeps_it_data(
    tmp_path: Path, runtime: Runtime, slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "rollback_started.j2").write_text(
        "# Rollback: {{ data.reason }}\n{{ data.reason }}\n\n~ {{ data.reason }}\n"
    )
    text = plan_text() + f"templates_dir: {templates}\n"
    await runtime.service.load(LoadedPlan(parse_plan(text, str(tmp_path / "plan.yml")), text, "plan.yml"))
    await start_release(slack)
    before = len(fake_slack.posts("C0WAR"))
    await slack.command("/release", f"rollback {FORGED}", user="U0RM")
    posts = fake_slack.posts("C0WAR")[before:]
    [notice] = [p for p in posts if p["blocks"][0]["type"] == "header" and "Rollback" in str(p["blocks"][0])]
    kinds = [b["type"] for b in notice["blocks"]]
    assert kinds == ["header", "section", "context"], kinds  # exactly the template's own layout
    bk.validate(notice["blocks"])
