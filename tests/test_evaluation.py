"""A critical issue during the deployment asks the release manager: continue or roll back, within 5 minutes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bot.domain import (
    Actor,
    CancelTimer,
    Conflict,
    NotAllowed,
    Post,
    Refresh,
    Release,
    ReleaseStatus,
    SetTimer,
    Severity,
)
from bot.evaluation import DECIDE_WITHIN, AnswerEvaluation, answer, overdue
from bot.issues import ReportIssue, ResolveIssue, report_issue, resolve_issue
from bot.lifecycle import PointChoice, complete, pending_evaluations, rollback, start
from bot.paging import on_page_timeout, room_key, timer_key
from bot.plan import Plan
from bot.rules import release_from_plan
from messages import blocks as bk
from messages.render import compose
from tests.conftest import T0, SlackDriver
from tests.fake_slack import FakeSlack
from tests.test_issues import click

NOW = T0 + timedelta(minutes=40)
RM = Actor("U0RM", frozenset({"release_manager"}))
VP = Actor("U0VP", frozenset({"vp_engineering"}))
DEV = Actor("U0DEV", frozenset({"devops_lead"}))
OUTSIDER = Actor("U0NOBODY")
CRITICAL = ReportIssue(Severity.CRITICAL, "api", "payments failing for all users", "region1")


def in_progress(plan: Plan) -> Release:
    return start(release_from_plan(plan), plan, VP, T0, force_reason="test").release


def reported(plan: Plan, command: ReportIssue = CRITICAL, release: Release | None = None) -> Any:
    return report_issue(release or in_progress(plan), plan, DEV, command, NOW)


def test_a_critical_issue_during_the_deployment_asks_for_a_rollback_decision(plan: Plan) -> None:
    outcome = reported(plan)
    assert Post("war_room", "rollback_evaluation", {"issue": 1}, key="rollback:evaluation:1") in outcome.effects
    assert SetTimer("rollback:evaluation:1", NOW + DECIDE_WITHIN, "rollback.evaluation_overdue", {"issue": 1}) in (
        outcome.effects
    )
    assert pending_evaluations(outcome.release) == (1,)
    assert "continue or roll back?" in outcome.reply
    assert "rollback.evaluation_asked" in [e.kind for e in outcome.events]


@pytest.mark.parametrize(
    ("severity", "started"),
    [(Severity.HIGH, True), (Severity.CRITICAL, False)],  # not critical; not yet deploying
)
def test_no_rollback_question_for_other_issues_or_before_the_start(
    plan: Plan, severity: Severity, started: bool
) -> None:
    release = in_progress(plan) if started else release_from_plan(plan)
    outcome = reported(plan, ReportIssue(severity, "api", "slow"), release)
    assert not [e for e in outcome.effects if isinstance(e, Post) and e.template == "rollback_evaluation"]
    assert pending_evaluations(outcome.release) == ()


def test_continue_is_recorded_once_and_closes_the_prompt(plan: Plan) -> None:
    asked = reported(plan).release
    outcome = answer(asked, plan, RM, AnswerEvaluation(1, PointChoice.CONTINUE), NOW + timedelta(minutes=2))
    assert outcome.release.status is ReleaseStatus.IN_PROGRESS
    assert Refresh("rollback:evaluation:1") in outcome.effects and CancelTimer("rollback:evaluation:1") in (
        outcome.effects
    )
    [event] = outcome.events
    assert event.kind == "rollback.continued" and event.data["reason"] == "Continue after critical issue #1"
    assert pending_evaluations(outcome.release) == ()
    with pytest.raises(Conflict, match="already decided: continue"):
        answer(outcome.release, plan, VP, AnswerEvaluation(1, PointChoice.ROLLBACK), NOW + timedelta(minutes=3))


def test_roll_back_starts_the_rollback_with_the_issue_as_reason(plan: Plan) -> None:
    asked = reported(plan).release
    outcome = answer(asked, plan, VP, AnswerEvaluation(1, PointChoice.ROLLBACK), NOW + timedelta(minutes=1))
    assert outcome.release.status is ReleaseStatus.ROLLING_BACK
    [notice] = [e for e in outcome.effects if isinstance(e, Post) and e.key == "release:rollback:announcements"]
    assert notice.data["reason"] == "Critical issue #1: payments failing for all users"
    assert CancelTimer("rollback:evaluation:1") in outcome.effects
    assert outcome.effects.count(Refresh("rollback:evaluation:1")) == 1


@pytest.mark.parametrize("who", [DEV, OUTSIDER])
def test_only_the_release_manager_or_final_authority_may_answer(plan: Plan, who: Actor) -> None:
    asked = reported(plan).release
    with pytest.raises(NotAllowed):
        answer(asked, plan, who, AnswerEvaluation(1, PointChoice.ROLLBACK), NOW)


def test_an_issue_that_was_never_asked_about_cannot_be_answered(plan: Plan) -> None:
    release = reported(plan, ReportIssue(Severity.HIGH, "api", "slow")).release
    with pytest.raises(Conflict, match="not put up for a rollback decision"):
        answer(release, plan, RM, AnswerEvaluation(1, PointChoice.CONTINUE), NOW)


def test_five_minutes_without_an_answer_pages_the_deciders(plan: Plan) -> None:
    asked = reported(plan).release
    outcome = overdue(asked, plan, NOW + DECIDE_WITHIN, {"issue": 1})
    [page] = outcome.release.pages[len(asked.pages) :]
    assert set(page.targets) == {"U0RM", "U0VP"} and page.issue_number == 1
    assert "No rollback decision 5 minutes after critical issue #1" in page.reason
    assert "rollback.evaluation_overdue" in [e.kind for e in outcome.events]


def test_nothing_is_paged_once_answered_or_resolved(plan: Plan) -> None:
    asked = reported(plan).release
    answered = answer(asked, plan, RM, AnswerEvaluation(1, PointChoice.CONTINUE), NOW).release
    assert overdue(answered, plan, NOW + DECIDE_WITHIN, {"issue": 1}).release is answered
    resolved = resolve_issue(asked, plan, DEV, ResolveIssue(1, "failover done"), NOW).release
    assert overdue(resolved, plan, NOW + DECIDE_WITHIN, {"issue": 1}).release is resolved


def test_a_rollback_by_command_closes_the_open_prompts(plan: Plan) -> None:
    asked = reported(plan).release
    outcome = rollback(asked, plan, RM, NOW, "error rate 3%")
    assert Refresh("rollback:evaluation:1") in outcome.effects


def test_the_prompt_is_valid_block_kit_in_every_state(plan: Plan) -> None:
    asked = reported(plan).release
    message = compose(plan, "rollback_evaluation", asked, NOW, {"issue": 1})
    bk.validate(message.blocks)
    assert message.text.startswith("Critical issue #1: continue or roll back?")
    buttons = [b for block in message.blocks if block["type"] == "actions" for b in block["elements"]]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("rollback_evaluation_continue", "r1:1"),
        ("rollback_evaluation_execute", "r1:1"),
    ]
    states = {
        "answered": answer(asked, plan, RM, AnswerEvaluation(1, PointChoice.CONTINUE), NOW).release,
        "resolved": resolve_issue(asked, plan, DEV, ResolveIssue(1, "ok"), NOW).release,
        "rolled back": rollback(asked, plan, RM, NOW, "bad").release,
    }
    for name, release in states.items():
        blocks = compose(plan, "rollback_evaluation", release, NOW, {"issue": 1}).blocks
        bk.validate(blocks)
        has_buttons = any(block["type"] == "actions" for block in blocks)
        assert has_buttons is (name == "resolved"), name  # a resolved issue may still be answered


async def test_continue_button_through_slack(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    await slack.command("/release", "start --force vendor confirmed by phone", user="U0VP")
    reply = await slack.command("/issue", "critical api region1 payments failing", user="U0DEV")
    assert "continue or roll back?" in reply["text"]
    prompt = [p for p in fake_slack.posts("C0WAR") if p["text"].startswith("Critical issue #1: continue")]
    assert len(prompt) == 1
    bk.validate(prompt[0]["blocks"])
    answered = await click(slack, fake_slack, "rollback_evaluation_continue", "r1:1", "U0RM")
    assert answered["text"].startswith("Recorded: continue after issue #1")
    assert any("Answered: Continue" in str(u.get("blocks")) for u in fake_slack.of("chat.update"))
    refused = await click(slack, fake_slack, "rollback_evaluation_execute", "r1:1", "U0RM")
    assert "already decided" in refused["text"]
    assert (await slack.runtime.service.get("r1")).status is ReleaseStatus.IN_PROGRESS


@pytest.mark.parametrize("choice", [PointChoice.CONTINUE, PointChoice.ROLLBACK])
def test_answering_after_the_overdue_page_stops_that_page(plan: Plan, choice: PointChoice) -> None:
    asked = reported(plan).release
    paged = overdue(asked, plan, NOW + DECIDE_WITHIN, {"issue": 1}).release
    [page] = paged.pages[len(asked.pages) :]
    outcome = answer(paged, plan, RM, AnswerEvaluation(1, choice), NOW + DECIDE_WITHIN + timedelta(minutes=1))
    assert CancelTimer(timer_key(page.number)) in outcome.effects
    stopped = outcome.release.page(page.number)
    assert stopped is not None and stopped.escalate_at is None
    assert "page.stopped" in [e.kind for e in outcome.events]
    later = on_page_timeout(outcome.release, plan, NOW + timedelta(minutes=30), {"page": page.number})
    assert not [e for e in later.effects if isinstance(e, Post)], "nobody is paged again about a decided question"
    level_one = outcome.release.page(1)
    assert level_one is not None and level_one.escalate_at is not None, "the issue's own ladder keeps climbing"


def test_the_status_card_shows_an_unanswered_rollback_question(plan: Plan) -> None:
    asked = reported(plan).release
    card = compose(plan, "status_card", asked, NOW, {})
    bk.validate(card.blocks)
    assert "Rollback decision pending:* critical issue #1" in str(card.blocks)
    answered = answer(asked, plan, RM, AnswerEvaluation(1, PointChoice.CONTINUE), NOW).release
    assert "Rollback decision pending" not in str(compose(plan, "status_card", answered, NOW, {}).blocks)


def test_no_pending_rollback_question_once_the_release_moved_on(plan: Plan) -> None:
    asked = reported(plan).release
    done = complete(rollback(asked, plan, RM, NOW, "manual rollback").release, plan, RM, NOW).release
    assert "Rollback decision pending" not in str(compose(plan, "status_card", done, NOW, {}).blocks)


def test_a_stopped_page_refreshes_its_notice_and_the_issue_card(plan: Plan) -> None:
    asked = reported(plan).release
    paged = overdue(asked, plan, NOW + DECIDE_WITHIN, {"issue": 1}).release
    page = paged.pages[-1]
    out = answer(paged, plan, RM, AnswerEvaluation(1, PointChoice.CONTINUE), NOW + DECIDE_WITHIN)
    assert {Refresh("issue:1"), Refresh(room_key(page.number, "direct"))} <= set(out.effects)
    card = compose(plan, "issue_card", out.release, NOW + DECIDE_WITHIN, {"number": 1})
    assert f"Page #{page.number}" in str(card.blocks) and "stopped" in str(card.blocks)
