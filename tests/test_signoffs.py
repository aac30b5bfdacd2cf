"""Sign-offs, the day-team handoff, on-call after the handoff and follow-ups: the pure rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from bot.core.handoff import (
    accept_handoff,
    follow_up_due,
    handoff_due,
    level_roles,
    oncall_roles,
    plan_timer_keys,
    post_handoff,
)
from bot.core.signoffs import (
    Refuse,
    RequestSignOffs,
    Sign,
    ask_for_signoffs,
    decide_signoff,
    missing,
    parse_signoff,
)
from bot.domain import (
    SYSTEM,
    Actor,
    Conflict,
    NotAllowed,
    NotFound,
    Post,
    Refresh,
    Release,
    ReleaseStatus,
    Severity,
    SignOffStatus,
    UsageError,
)
from bot.lifecycle import complete, rollback
from bot.paging import CreatePage, TargetKind, create_page
from bot.plan import Plan, parse_plan
from bot.rules import release_from_plan
from tests.conftest import T0, plan_text

EXTRA = """
signoffs:
  - {role: release_manager, criterion: All deployment steps complete}
  - {role: qa_lead, criterion: All tests passing}
success_criteria: ["Error rate < 0.1%"]
handoff: {at: +3h, to: day_lead, oncall: [oncall_day], watch: [Error rate in region2]}
links: [{name: Grafana, url: "https://grafana.example.com/d/deploy?a=1&b=2"}]
follow_ups:
  - {at: +1d, owner: [release_manager, qa_lead], task: 24-hour metrics review}
  - {at: +7d, owner: [release_manager], task: Post-mortem meeting, channel: announcements}
"""


def signoff_plan_text() -> str:
    people = "  cto: [U0CTO]\n"
    text = plan_text().replace(people, people + "  day_lead: [U0DAY]\n  oncall_day: [U0DOC1, U0DOC2]\n")
    return text + EXTRA


@pytest.fixture
def plan() -> Plan:
    return parse_plan(signoff_plan_text(), "signoffs.yml")


RM = Actor("U0RM", frozenset({"release_manager"}))
QA = Actor("U0QA", frozenset({"qa_lead", "in_plan"}))
DBA = Actor("U0DBA", frozenset({"dba"}))
DAY = Actor("U0DAY", frozenset({"day_lead"}))
NOW = T0 + timedelta(hours=3)


def finished(plan: Plan, status: ReleaseStatus = ReleaseStatus.COMPLETED) -> Release:
    """A release that ran and ended with `status`, its sign-offs asked for."""
    fresh = release_from_plan(plan)
    ran = replace(fresh, status=status, started_at=T0, ended_at=NOW - timedelta(minutes=5))
    return ask_for_signoffs(ran, plan, NOW - timedelta(minutes=5)).release


# --- parsing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("signoff", RequestSignOffs()),
        ("SIGNOFF  ", RequestSignOffs()),
        ("signoff qa_lead", Sign("qa_lead")),
        ("signoff qa_lead all 412 tests green", Sign("qa_lead", "all 412 tests green")),
        ("signoff refuse qa_lead smoke tests failing in EU", Refuse("qa_lead", "smoke tests failing in EU")),
    ],
)
def test_signoff_text_forms(text: str, expected: object) -> None:
    assert parse_signoff(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [("signoff refuse", "Which role refuses?"), ("signoff refuse qa_lead", "needs a reason")],
)
def test_signoff_text_mistakes_say_how(text: str, says: str) -> None:
    with pytest.raises(UsageError) as error:
        parse_signoff(text)
    assert says in str(error.value) and "/release signoff refuse ROLE REASON" in str(error.value)


# --- sign-offs -------------------------------------------------------------------------------------------


def test_completion_asks_for_signoffs_once(plan: Plan) -> None:
    running = replace(release_from_plan(plan), status=ReleaseStatus.ROLLING_BACK, started_at=T0)
    done = complete(running, plan, RM, NOW)
    assert done.release.status is ReleaseStatus.ROLLED_BACK and done.release.signoffs_requested_at == NOW
    assert Post("war_room", "signoffs", {}, key="signoffs") in done.effects
    [asked] = [e for e in done.events if e.kind == "signoffs.requested"]
    assert asked.data == {"roles": ["release_manager", "qa_lead"]}
    assert "sign-off table" in done.reply
    again = ask_for_signoffs(done.release, plan, NOW)
    assert again.effects == () and again.release is done.release


def test_a_plan_without_signoffs_asks_for_none(plan: Plan) -> None:
    bare = plan.model_copy(update={"signoffs": []})
    running = replace(release_from_plan(bare), status=ReleaseStatus.IN_PROGRESS, started_at=T0)
    done = complete(running, bare, RM, NOW, force_reason="skipping")
    assert done.release.signoffs_requested_at is None
    assert not [e for e in done.effects if isinstance(e, Post) and e.template == "signoffs"]


def test_each_role_signs_and_the_last_signature_approves_with_the_outcome(plan: Plan) -> None:
    release = finished(plan)
    first = decide_signoff(release, plan, RM, Sign("release_manager", "all steps done"), NOW)
    assert first.release.approved_at is None and missing(first.release, plan) == ["qa_lead"]
    assert first.effects == (Refresh("signoffs"),)
    [signed] = first.events
    assert (signed.kind, signed.subject, signed.actor) == ("signoff.signed", "release_manager", "U0RM")
    assert signed.data == {"criterion": "All deployment steps complete", "comment": "all steps done"}
    later = NOW + timedelta(minutes=7)
    last = decide_signoff(first.release, plan, QA, Sign("QA_LEAD"), later)
    assert last.release.approved_at == later
    approved = [e for e in last.events if e.kind == "release.approved"]
    assert approved and approved[0].data == {"outcome": "success", "last_signed_by": QA.user_id}
    assert approved[0].actor == "warroom", "the approval follows from the last signature; nobody typed it"
    posts = [e for e in last.effects if isinstance(e, Post)]
    assert {(p.channel, p.template) for p in posts} == {
        ("war_room", "signoffs_approved"),
        ("announcements", "signoffs_approved"),
    }
    assert "approved (success)" in last.reply


def test_after_a_rollback_the_approval_records_rollback(plan: Plan) -> None:
    release = finished(plan, ReleaseStatus.ROLLED_BACK)
    release = decide_signoff(release, plan, RM, Sign("release_manager"), NOW).release
    last = decide_signoff(release, plan, QA, Sign("qa_lead"), NOW)
    assert last.release.approved_at == NOW
    approved = [e.data for e in last.events if e.kind == "release.approved"]
    assert approved == [{"outcome": "rollback", "last_signed_by": QA.user_id}]


def test_only_the_roles_people_sign_and_nothing_changes_otherwise(plan: Plan) -> None:
    release = finished(plan)
    for actor in (DBA, RM, Actor("U0STRANGER")):
        with pytest.raises(NotAllowed) as error:
            decide_signoff(release, plan, actor, Sign("qa_lead"), NOW)
        assert "Only the qa lead may sign off as qa lead" in str(error.value)
    with pytest.raises(NotAllowed):
        decide_signoff(release, plan, DBA, Refuse("qa_lead", "no"), NOW)
    with pytest.raises(NotFound) as unknown:
        decide_signoff(release, plan, DBA, Sign("dba"), NOW)
    assert "`release_manager`, `qa_lead`" in str(unknown.value)


def test_a_refusal_needs_a_reason_stays_on_the_timeline_and_may_be_followed_by_a_signature(plan: Plan) -> None:
    release = finished(plan)
    with pytest.raises(UsageError):
        decide_signoff(release, plan, QA, Refuse("qa_lead", "  "), NOW)
    refused = decide_signoff(release, plan, QA, Refuse("qa_lead", "EU smoke tests red"), NOW)
    given = refused.release.signoff("qa_lead")
    assert given is not None and given.status is SignOffStatus.REFUSED and given.comment == "EU smoke tests red"
    [event] = refused.events
    assert (event.kind, event.data) == (
        "signoff.refused",
        {"criterion": "All tests passing", "reason": "EU smoke tests red"},
    )
    assert missing(refused.release, plan) == ["release_manager", "qa_lead"]
    signed = decide_signoff(refused.release, plan, QA, Sign("qa_lead", "re-run green"), NOW + timedelta(minutes=9))
    again = signed.release.signoff("qa_lead")
    assert again is not None and again.status is SignOffStatus.SIGNED
    with pytest.raises(Conflict) as twice:
        decide_signoff(signed.release, plan, QA, Sign("qa_lead"), NOW)
    assert "already given by <@U0QA>" in str(twice.value)
    with pytest.raises(Conflict):
        decide_signoff(signed.release, plan, QA, Refuse("qa_lead", "changed my mind"), NOW)


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (ReleaseStatus.IN_PROGRESS, "once the release is over; it is in progress"),
        (ReleaseStatus.SCHEDULED, "it is scheduled"),
        (ReleaseStatus.ABORTED, "nothing was deployed"),
    ],
)
def test_signoffs_wait_for_the_end_of_the_release(plan: Plan, status: ReleaseStatus, says: str) -> None:
    release = replace(release_from_plan(plan), status=status)
    for command in (RequestSignOffs(), Sign("qa_lead")):
        actor = RM if isinstance(command, RequestSignOffs) else QA
        with pytest.raises(Conflict) as error:
            decide_signoff(release, plan, actor, command, NOW)
        assert says in str(error.value)


def test_only_the_release_manager_posts_the_table_and_a_second_time_refreshes_it(plan: Plan) -> None:
    release = replace(release_from_plan(plan), status=ReleaseStatus.COMPLETED, started_at=T0, ended_at=NOW)
    with pytest.raises(NotAllowed):
        decide_signoff(release, plan, QA, RequestSignOffs(), NOW)
    posted = decide_signoff(release, plan, RM, RequestSignOffs(), NOW)
    assert posted.effects == (Post("war_room", "signoffs", {}, key="signoffs"),)
    assert [(e.kind, e.actor) for e in posted.events] == [("signoffs.requested", "U0RM")]
    again = decide_signoff(posted.release, plan, RM, RequestSignOffs(), NOW)
    assert again.effects == (Refresh("signoffs"),) and again.events == () and "already" in again.reply
    with pytest.raises(Conflict) as none:
        decide_signoff(release, plan.model_copy(update={"signoffs": []}), RM, RequestSignOffs(), NOW)
    assert "add `signoffs:`" in str(none.value)


def test_signing_before_the_table_is_posted_says_how_to_open_it(plan: Plan) -> None:
    release = replace(release_from_plan(plan), status=ReleaseStatus.COMPLETED)
    with pytest.raises(Conflict) as error:
        decide_signoff(release, plan, QA, Sign("qa_lead"), NOW)
    assert "/release signoff" in str(error.value)


# --- the handoff -----------------------------------------------------------------------------------------


def running(plan: Plan) -> Release:
    return replace(release_from_plan(plan), status=ReleaseStatus.IN_PROGRESS, started_at=T0)


def test_handoff_at_its_time_posts_the_summary_once(plan: Plan) -> None:
    release = running(plan)
    posted = handoff_due(release, plan, NOW, {})
    assert posted.release.handoff_posted_at == NOW
    assert posted.effects == (Post("war_room", "handoff", {}, key="handoff"),)
    [event] = posted.events
    assert (event.kind, event.actor, event.data) == (
        "handoff.posted",
        SYSTEM.user_id,
        {"to": "day_lead", "open_issues": [], "open_pages": []},
    )
    assert handoff_due(posted.release, plan, NOW, {}).effects == ()


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (ReleaseStatus.SCHEDULED, "the release is scheduled and never started"),
        (ReleaseStatus.POSTPONED, "the release is postponed and never started"),
        (ReleaseStatus.ABORTED, "the release was aborted"),
    ],
)
def test_handoff_of_a_release_that_never_went_ahead_is_not_posted_and_says_why(
    plan: Plan, status: ReleaseStatus, reason: str
) -> None:
    release = replace(release_from_plan(plan), status=status)
    outcome = handoff_due(release, plan, NOW, {})
    assert outcome.effects == () and outcome.release is release
    assert [(e.kind, e.data) for e in outcome.events] == [("handoff.skipped", {"reason": reason})]
    with pytest.raises(Conflict) as error:
        post_handoff(release, plan, RM, NOW)
    assert reason in str(error.value)


def test_handoff_command_is_the_release_managers_and_a_repeat_refreshes(plan: Plan) -> None:
    release = running(plan)
    with pytest.raises(NotAllowed):
        post_handoff(release, plan, QA, NOW)
    posted = post_handoff(release, plan, RM, NOW)
    assert posted.events[0].actor == "U0RM"
    again = post_handoff(posted.release, plan, RM, NOW)
    assert again.effects == (Refresh("handoff"),) and again.events == ()
    with pytest.raises(Conflict) as none:
        post_handoff(release, plan.model_copy(update={"handoff": None}), RM, NOW)
    assert "add `handoff:" in str(none.value)


def test_acceptance_by_the_receiving_role_moves_level_one(plan: Plan) -> None:
    posted = post_handoff(running(plan), plan, RM, NOW).release
    [level1, level2, _] = plan.escalation
    assert level_roles(plan, posted, level1) == ["oncall"]
    with pytest.raises(NotAllowed) as error:
        accept_handoff(posted, plan, RM, NOW)
    assert "Only the day lead" in str(error.value)
    later = NOW + timedelta(minutes=10)
    accepted = accept_handoff(posted, plan, DAY, later)
    assert (accepted.release.handoff_accepted_by, accepted.release.handoff_accepted_at) == ("U0DAY", later)
    [event] = accepted.events
    assert (event.kind, event.subject, event.data) == ("handoff.accepted", "day_lead", {"oncall": ["oncall_day"]})
    assert Refresh("handoff") in accepted.effects
    assert level_roles(plan, accepted.release, level1) == ["oncall_day"]
    assert level_roles(plan, accepted.release, level2) == ["devops_lead", "dba"]
    with pytest.raises(Conflict) as twice:
        accept_handoff(accepted.release, plan, DAY, later)
    assert "already accepted by <@U0DAY>" in str(twice.value)
    paged = create_page(accepted.release, plan, DBA, CreatePage(TargetKind.LEVEL, "1", "db slow"), later)
    assert paged.release.pages[-1].targets == ("U0DOC1", "U0DOC2")
    assert "oncall day" in paged.reply


def test_accepting_needs_the_handoff_posted(plan: Plan) -> None:
    with pytest.raises(Conflict) as error:
        accept_handoff(running(plan), plan, DAY, NOW)
    assert "not posted yet" in str(error.value)


def test_oncall_defaults_to_the_receiving_role(plan: Plan) -> None:
    assert plan.handoff is not None
    assert oncall_roles(plan.handoff) == ["oncall_day"]
    assert oncall_roles(plan.handoff.model_copy(update={"oncall": None})) == ["day_lead"]


def test_a_critical_issue_after_the_handoff_pages_the_day_team(plan: Plan) -> None:
    from bot.issues import ReportIssue, report_issue

    accepted = accept_handoff(post_handoff(running(plan), plan, RM, NOW).release, plan, DAY, NOW).release
    reported = report_issue(
        accepted, plan, DBA, ReportIssue(severity=Severity.CRITICAL, component="api", impact="500s everywhere"), NOW
    )
    assert reported.release.pages[-1].targets == ("U0DOC1", "U0DOC2")


# --- follow-ups ------------------------------------------------------------------------------------------


def test_follow_up_reminds_its_owners_when_the_release_went_ahead(plan: Plan) -> None:
    release = finished(plan)
    outcome = follow_up_due(release, plan, T0 + timedelta(days=7), {"number": 2})
    assert outcome.effects == (Post("announcements", "follow_up", {"number": 2}, key="follow_up:2"),)
    [event] = outcome.events
    assert (event.kind, event.subject, event.data) == (
        "follow_up.reminded",
        "Post-mortem meeting",
        {"owner": ["release_manager"]},
    )


@pytest.mark.parametrize("status", [ReleaseStatus.ABORTED, ReleaseStatus.POSTPONED, ReleaseStatus.SCHEDULED])
def test_follow_up_of_a_release_that_did_not_go_ahead_is_not_sent(plan: Plan, status: ReleaseStatus) -> None:
    outcome = follow_up_due(replace(release_from_plan(plan), status=status), plan, NOW, {"number": 1})
    assert outcome.effects == ()
    assert [e.kind for e in outcome.events] == ["follow_up.skipped"]


def test_a_follow_up_the_plan_no_longer_lists_does_nothing(plan: Plan) -> None:
    assert follow_up_due(finished(plan), plan, NOW, {"number": 3}).events == ()


def test_the_timer_keys_of_a_plan(plan: Plan) -> None:
    assert plan_timer_keys(plan) == ("handoff", "follow_up:1", "follow_up:2")


def test_a_rollback_then_completion_opens_the_signoffs(plan: Plan) -> None:
    rolled = rollback(running(plan), plan, RM, NOW, "error rate")
    done = complete(rolled.release, plan, RM, NOW)
    assert done.release.status is ReleaseStatus.ROLLED_BACK and done.release.signoffs_requested_at == NOW
