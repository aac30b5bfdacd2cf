"""What the bot tells people is true: completion, out-of-date messages, facts from the plan, who is
mentioned, and nothing shortened without saying so. Through signed requests against the real app."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from bot.domain import ReleaseStatus
from bot.plan import parse_plan
from bot.service import LoadedPlan
from messages.blocks import validate
from storage import repo
from tests.conftest import T0, Clock, SlackDriver, plan_text


async def timeline(slack: SlackDriver) -> list[Any]:
    async with slack.runtime.service.sessions() as session:
        return list(await repo.get_timeline(session=session, release_id="r1"))


def posted(slack: SlackDriver, channel: str, needle: str) -> list[dict[str, Any]]:
    return [p for p in slack.fake.posts(channel) if needle in p["text"]]


async def started(slack: SlackDriver, clock: Clock) -> None:
    clock.set(T0 - timedelta(minutes=20))
    await slack.command("/release", "start --force vendor window closes early", user="U0VP")
    clock.set(T0 + timedelta(minutes=50))


# --- completion ---------------------------------------------------------------------------------------------


async def test_complete_with_unfinished_phases_asks_first_and_changes_nothing(slack: SlackDriver, clock: Clock) -> None:
    await started(slack, clock)
    await slack.command("/phase", "done pre-deployment", user="U0RM")
    reply = await slack.command("/release", "complete", user="U0RM")
    assert reply["response_type"] == "ephemeral"
    assert "3 of 4 phases are not finished" in reply["text"]
    assert "Database Migration" in reply["text"] and "Deploy Region 2" in reply["text"]
    assert "/release complete --force REASON" in reply["text"]
    assert (await slack.runtime.service.get("r1")).status is ReleaseStatus.IN_PROGRESS
    assert not posted(slack, "C0ANN", "COMPLETED")


async def test_forced_completion_says_what_was_done_and_what_was_left(slack: SlackDriver, clock: Clock) -> None:
    await started(slack, clock)
    await slack.command("/phase", "done pre-deployment", user="U0RM")
    await slack.command("/phase", "skip deploy-region2 region2 stays on the old version", user="U0DEV")
    await slack.command("/phase", "fail deploy-region1 health checks red", user="U0DEV")
    refused = await slack.command("/release", "complete --force", user="U0RM")
    assert "needs a reason" in refused["text"]
    not_allowed = await slack.command("/release", "complete --force good enough", user="U0DBA")
    assert "Only the release manager or vp engineering" in not_allowed["text"]
    assert (await slack.runtime.service.get("r1")).status is ReleaseStatus.IN_PROGRESS
    reply = await slack.command("/release", "complete --force region1 moves to next week", user="U0RM")
    assert "completed" in reply["text"]
    [notice] = posted(slack, "C0ANN", "COMPLETED")
    validate(notice["blocks"])
    body = notice["text"] + json.dumps(notice["blocks"])
    assert "SUCCESSFULLY" not in body and "All phases finished" not in body
    assert "COMPLETED — 1 of 4 phases done" in notice["text"]
    assert "Left unfinished: Database Migration" in body
    assert "Failed: Deploy Region 1" in body and "Skipped: Deploy Region 2" in body
    assert "region1 moves to next week" in body
    [event] = [e for e in await timeline(slack) if e.kind == "release.completed"]
    assert event.data["forced"] == "region1 moves to next week"
    assert event.data["unfinished"] == ["db-migration"] and event.data["failed"] == ["deploy-region1"]


async def test_completion_with_every_phase_done_is_a_success(slack: SlackDriver, clock: Clock) -> None:
    await started(slack, clock)
    for phase in ("pre-deployment", "db-migration", "deploy-region1", "deploy-region2"):
        await slack.command("/phase", f"done {phase}", user="U0RM")
    reply = await slack.command("/release", "complete", user="U0RM")
    assert "completed" in reply["text"]
    [notice] = posted(slack, "C0ANN", "COMPLETED")
    validate(notice["blocks"])
    assert notice["text"].startswith("Production deployment v1.2.3 COMPLETED SUCCESSFULLY")
    assert "All 4 phases done" in json.dumps(notice["blocks"])


# --- nothing out of date goes out ---------------------------------------------------------------------------


async def with_final_notice(slack: SlackDriver) -> None:
    """The test plan plus a final notice at T-1h."""
    text = plan_text().replace(
        "rollback:\n", "  - {id: final, at: -1h, channel: announcements, template: final_notice}\nrollback:\n"
    )
    await slack.runtime.service.load(LoadedPlan(parse_plan(text, "test.yml"), text, "test.yml"))
    await slack.runtime.settle()


async def skipped(slack: SlackDriver) -> dict[str, str]:
    return {e.subject: e.data["reason"] for e in await timeline(slack) if e.kind == "message.skipped"}


async def test_after_an_early_completion_the_start_notice_is_not_posted_at_t0(slack: SlackDriver, clock: Clock) -> None:
    clock.set(T0 - timedelta(hours=2, minutes=30))
    await slack.command("/release", "start --force vendor moved the window earlier", user="U0VP")
    for phase in ("pre-deployment", "db-migration", "deploy-region1", "deploy-region2"):
        await slack.command("/phase", f"done {phase}", user="U0RM")
    clock.set(T0 - timedelta(hours=2, minutes=20))
    await slack.command("/release", "complete", user="U0RM")
    for moment in (T0 - timedelta(hours=2), T0, T0 + timedelta(minutes=15)):
        clock.set(moment)
        await slack.runtime.dispatcher.run_due()
        await slack.runtime.settle()
    assert not posted(slack, "C0ANN", "has started") and not posted(slack, "C0WAR", "team assembly")
    reasons = await skipped(slack)
    assert reasons["announcement:start"].startswith("the release completed at 2026-12-05 19:40 UTC")
    assert "no team to assemble" in reasons["announcement:assembly"]


async def test_a_final_notice_due_after_an_early_start_is_skipped_with_a_reason(
    slack: SlackDriver, clock: Clock
) -> None:
    await with_final_notice(slack)
    clock.set(T0 - timedelta(hours=1, minutes=30))
    await slack.command("/release", "start --force all green, starting early", user="U0VP")
    clock.set(T0 - timedelta(hours=1))
    await slack.runtime.dispatcher.run_due()
    await slack.runtime.settle()
    assert not posted(slack, "C0ANN", "Final notice") and not posted(slack, "C0ANN", "tomorrow")
    assert (await skipped(slack))["announcement:final"] == (
        "the release started at 2026-12-05 20:30 UTC; this notice was for before the start"
    )
    clock.set(T0)
    await slack.runtime.dispatcher.run_due()
    await slack.runtime.settle()
    assert posted(slack, "C0ANN", "has started")  # still true at T0: the release is under way
