"""What the bot tells people is true: completion, out-of-date messages, facts from the plan, who is
mentioned, and nothing shortened without saying so. Through signed requests against the real app."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from bot.domain import Issue, Outcome, Release, ReleaseStatus, Severity
from bot.plan import Plan, PlanError, parse_plan
from bot.service import LoadedPlan
from messages.blocks import validate
from storage import repo
from tests.conftest import ROOT, T0, Clock, SlackDriver, plan_text, sign
from tests.fake_slack import FakeSlack


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


# --- the stakeholders' facts come from the plan -------------------------------------------------------------

STREAMS = """status_updates:
  - {every: 15m, channel: announcements, template: progress_update}
  - {every: 30m, channel: war_room}
"""


def stakeholder_plan(impact: bool = True) -> str:
    text = (
        plan_text()
        .replace("status_updates: {every: 15m, channel: war_room, from: 0, until: end}\n", STREAMS)
        .replace(
            "rollback:\n",
            "  - {id: notice, at: -170m, channel: announcements, template: advance_notice}\n"
            "  - {id: remind, at: -160m, channel: announcements, template: reminder}\n"
            "  - {id: final, at: -150m, channel: announcements, template: final_notice}\n"
            "rollback:\n",
        )
    )
    if impact:
        text = text.replace(
            "  timezone: UTC\n", "  timezone: UTC\n  impact: Video visits cannot be booked for 30 minutes\n"
        )
    return text


async def load(slack: SlackDriver, text: str) -> None:
    await slack.runtime.service.load(LoadedPlan(parse_plan(text, "test.yml"), text, "test.yml"))
    await slack.runtime.settle()


async def deliver_at(slack: SlackDriver, clock: Clock, *moments: Any) -> None:
    for moment in moments:
        clock.set(moment)
        await slack.runtime.dispatcher.run_due()
        await slack.runtime.settle()


async def test_notices_state_the_plans_impact_where_updates_go_and_the_windows_end(
    slack: SlackDriver, clock: Clock
) -> None:
    await load(slack, stakeholder_plan())
    await deliver_at(
        slack, clock, T0 - timedelta(minutes=170), T0 - timedelta(minutes=160), T0 - timedelta(minutes=150)
    )
    [advance] = posted(slack, "C0ANN", "Upcoming production deployment")
    [reminder] = posted(slack, "C0ANN", "Reminder")
    [final] = posted(slack, "C0ANN", "Final notice")
    for message in (advance, reminder, final):
        validate(message["blocks"])
    advance_text = json.dumps(advance["blocks"])
    assert "*Expected impact:* Video visits cannot be booked for 30 minutes" in advance_text
    assert "downtime" not in advance_text
    window_end = int((T0 + timedelta(hours=4)).timestamp())
    reminder_text = json.dumps(reminder["blocks"])
    assert f"expected completion <!date^{window_end}^" in reminder_text  # the window's end, not the last phase's
    assert "Status updates: every 15m in <#C0ANN>, every 30m in <#C0WAR>" in reminder_text
    assert "every 15m in <#C0ANN>, every 30m in <#C0WAR>" in json.dumps(final["blocks"])


async def test_without_an_impact_in_the_plan_the_notice_claims_none(slack: SlackDriver, clock: Clock) -> None:
    await load(slack, stakeholder_plan(impact=False))
    await deliver_at(slack, clock, T0 - timedelta(minutes=170))
    [advance] = posted(slack, "C0ANN", "Upcoming production deployment")
    assert "impact" not in json.dumps(advance["blocks"]).lower() and "downtime" not in advance["text"]


async def test_status_updates_go_to_each_channel_with_its_own_template(slack: SlackDriver, clock: Clock) -> None:
    await load(slack, stakeholder_plan())
    await started(slack, clock)
    await deliver_at(slack, clock, T0, T0 + timedelta(minutes=15), T0 + timedelta(minutes=30))
    stakeholders = posted(slack, "C0ANN", "Deployment update")
    war_room = posted(slack, "C0WAR", "DEPLOYMENT STATUS UPDATE")
    assert len(stakeholders) == 3 and len(war_room) == 2
    for message in stakeholders + war_room:
        validate(message["blocks"])
    assert "Next milestone" in json.dumps(stakeholders[-1]["blocks"])
    assert "*Completed:*" in json.dumps(war_room[-1]["blocks"])
    [start] = posted(slack, "C0ANN", "has started")
    assert "every 15m in <#C0ANN>, every 30m in <#C0WAR>" in json.dumps(start["blocks"])
    assert f"Expected completion: <!date^{int((T0 + timedelta(hours=4)).timestamp())}^" in json.dumps(start["blocks"])


def test_the_interactive_preview_tells_stakeholders_the_lockout_in_new_york_time() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "preview", "examples/interactive-examples.yml"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    body = [line for line in result.stdout.splitlines() if not line.startswith("=== ")]
    text = "\n".join(body)
    assert "no user-facing downtime" not in text
    assert "*Expected impact:* Users will not be able to access interactive examples" in text
    assert "expected completion Fri 25 Jul 2025 23:30 EDT" in text  # the window's end
    assert "Status updates: every 30m in #interactive-examples-deploy" in text
    assert not [line for line in body if "UTC" in line]  # one zone: the plan's


def test_a_plan_may_have_no_status_updates() -> None:
    for empty in ("status_updates:\n", "status_updates: []\n"):
        plan = parse_plan(
            plan_text().replace("status_updates: {every: 15m, channel: war_room, from: 0, until: end}\n", empty)
        )
        assert plan.status_updates == [] and plan.status_update_times() == []


def test_status_update_streams_are_checked_like_the_single_form() -> None:
    single = plan_text().replace("{every: 15m, channel: war_room,", "{every: 10s, channel: war_room,")
    with pytest.raises(PlanError) as caught:
        parse_plan(single, "plan.yml")
    [problem] = caught.value.problems
    assert str(problem).startswith("plan.yml:33: status_updates.every: ") and "at least 1m" in problem.message
    twice = stakeholder_plan().replace(
        "  - {every: 30m, channel: war_room}\n",
        "  - {every: 30m, channel: war_room}\n  - {every: 1h, channel: war_room, template: nope}\n",
    )
    with pytest.raises(PlanError) as caught:
        parse_plan(twice, "plan.yml")
    messages = [str(p) for p in caught.value.problems]
    assert "plan.yml:37: status updates to 'war_room' are listed twice: give each channel one entry" in messages
    assert any(m.startswith("plan.yml:37: template 'nope' is neither built in") for m in messages)


# --- mentions fit the audience ------------------------------------------------------------------------------


def mentioned(message: dict[str, Any]) -> set[str]:
    return set(re.findall(r"<@(U[A-Z0-9]+)>", json.dumps(message["blocks"]) + message["text"]))


async def test_the_assembly_call_mentions_the_deployment_team_not_everyone(slack: SlackDriver, clock: Clock) -> None:
    await deliver_at(slack, clock, T0 - timedelta(hours=2))
    [call] = posted(slack, "C0WAR", "team assembly")
    validate(call["blocks"])
    # phase owners, voters and the first escalation level; not the VP or the CTO
    assert mentioned(call) == {"U0RM", "U0DBA", "U0DEV", "U0QA", "U0OC1", "U0OC2"}


async def test_a_plan_names_its_deployment_team(slack: SlackDriver, clock: Clock) -> None:
    await load(slack, plan_text().replace("components:", "team: [dba, qa_lead]\ncomponents:"))
    await deliver_at(slack, clock, T0 - timedelta(hours=2))
    [call] = posted(slack, "C0WAR", "team assembly")
    assert mentioned(call) == {"U0DBA", "U0QA"}


def test_a_team_role_must_exist() -> None:
    with pytest.raises(PlanError, match=r"plan.yml:\d+: team role 'dbas' is not a role in people"):
        parse_plan(plan_text().replace("components:", "team: [dba, dbas]\ncomponents:"), "plan.yml")


# --- nothing is cut silently --------------------------------------------------------------------------------


def dump(blocks: Any) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def many_issues(count: int, severity: Severity, start: int = 1, impact_length: int = 400) -> tuple[Issue, ...]:
    impact = ("Appointments API answers 502 for some patients " * 20)[:impact_length]
    return tuple(
        Issue(n, severity, "api", f"{impact} ({n})", "U0DEV", T0 - timedelta(minutes=40))
        for n in range(start, start + count)
    )


async def add_issues(slack: SlackDriver, issues: tuple[Issue, ...]) -> None:
    def decide(release: Release, plan: Plan, now: Any) -> Outcome:
        return Outcome(replace(release, issues=(*release.issues, *issues), revision=release.revision + 1))

    await slack.runtime.service.run("r1", decide)


async def test_a_status_update_with_fifty_open_issues_says_how_many_it_leaves_out(
    slack: SlackDriver, clock: Clock
) -> None:
    await started(slack, clock)
    await add_issues(slack, many_issues(50, Severity.HIGH))
    await deliver_at(slack, clock, T0 + timedelta(minutes=60))
    [update] = posted(slack, "C0WAR", "DEPLOYMENT STATUS UPDATE")[-1:]
    validate(update["blocks"])
    text = dump(update["blocks"])
    assert "*Issues:* 50 open" in text
    assert len(re.findall(r"• #\d+ high api", text)) == 10
    assert "… and 40 more open issues — `/issue list`" in text


async def test_the_vote_lists_every_open_critical_issue_or_says_how_many_more(slack: SlackDriver, clock: Clock) -> None:
    await add_issues(slack, many_issues(8, Severity.CRITICAL))
    clock.set(T0 - timedelta(minutes=30))
    await slack.command("/gonogo", "open", user="U0RM")
    await slack.runtime.dispatcher.run_due()
    vote = [p for p in slack.fake.posts("C0WAR") if p["text"].startswith("Go/No-Go vote")][-1]
    validate(vote["blocks"])
    assert sorted(int(n) for n in re.findall(r"🔴 #(\d+)", dump(vote["blocks"]))) == list(range(1, 9))
    await add_issues(slack, many_issues(7, Severity.CRITICAL, start=9))
    await slack.command("/gonogo", "go", user="U0QA")
    await slack.runtime.dispatcher.run_due()
    updated = slack.fake.of("chat.update")[-1]
    validate(updated["blocks"])
    shown = re.findall(r"🔴 #(\d+)", dump(updated["blocks"]))
    assert len(shown) == 10 and "… and 5 more open critical issues — `/issue list`" in dump(updated["blocks"])


async def test_issue_list_says_how_many_it_leaves_out_and_where_to_see_them(slack: SlackDriver) -> None:
    await add_issues(slack, many_issues(3, Severity.CRITICAL) + many_issues(57, Severity.LOW, start=4))
    reply = await slack.command("/issue", "list")
    validate(reply["blocks"])
    text = dump(reply["blocks"])
    shown = re.findall(r"\*#(\d+)\*", text)
    assert {"1", "2", "3"} <= set(shown)  # most severe first
    assert f"… and {60 - len(shown)} more open issues (low) not shown — `/release report` lists them all" in text
    assert "block(s) not shown" not in text


async def test_app_home_uses_its_hundred_blocks_and_names_what_it_leaves_out(
    slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    for n in range(2, 21):
        text = plan_text().replace("id: r1", f"id: r{n}")
        await slack.runtime.service.load(LoadedPlan(parse_plan(text, "test.yml"), text, "test.yml"))
    event = {
        "token": "t",
        "team_id": "T111",
        "api_app_id": "A111",
        "type": "event_callback",
        "event_id": "Ev1",
        "event_time": 1,
        "event": {"type": "app_home_opened", "user": "U0RM", "channel": "D1", "tab": "home"},
    }
    body = json.dumps(event)
    response = await slack.client.post(
        "/slack/events", data=body, headers={**sign(body), "Content-Type": "application/json"}
    )
    assert response.status == 200
    view = (await fake_slack.wait_for("views.publish"))[-1]["view"]
    blocks = view["blocks"]
    assert 50 < len(blocks) <= 100
    for block in blocks:
        assert Block.parse(block) is not None
        Block.parse(block).validate_json()  # type: ignore[union-attr]
    text = dump(blocks)
    shown = [b for b in blocks if b["type"] == "header" and b["text"]["text"].startswith("Test Platform")]
    assert "block(s) not shown" not in text
    left = 20 - len(shown)
    assert left > 0 and f"… and {left} more releases not shown — `/release status --release ID`:" in text


async def test_the_schedule_counts_each_stream_of_status_updates_in_its_channel(slack: SlackDriver) -> None:
    await load(slack, stakeholder_plan())
    reply = await slack.command("/release", "schedule")
    validate(reply["blocks"])
    text = str(reply["blocks"])
    assert "Status update, then 16 more → <#C0ANN>" in text  # every 15m from T0 to the window's end
    assert "Status update, then 8 more → <#C0WAR>" in text  # every 30m
