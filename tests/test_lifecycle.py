"""Release lifecycle rules: start (and forced start), complete, abort, rollback, T0, the decision point."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from bot.commands import ReleaseCommand, ReleaseVerb, parse_release
from bot.domain import (
    Actor,
    CancelPosts,
    CancelTimer,
    Conflict,
    NotAllowed,
    PhaseStatus,
    Post,
    Refresh,
    Release,
    ReleaseStatus,
    UsageError,
    Vote,
)
from bot.lifecycle import (
    DEFAULT_POINT_REASON,
    AnswerDecisionPoint,
    PointChoice,
    answer_decision_point,
    at_decision_point,
    change_release,
    start_at_t0,
)
from bot.plan import Plan, parse_plan
from bot.rules import Colour, release_from_plan, status_colour
from bot.votes import DecideVote, decide
from messages.render import compose
from tests.conftest import T0, plan_text

BEFORE = T0 - timedelta(minutes=10)
POINT = T0 + timedelta(hours=1)


def actor(plan: Plan, user: str) -> Actor:
    return Actor(user, plan.role_of_person.get(user, frozenset()))


def run(release: Release, plan: Plan, user: str, text: str, now=BEFORE):  # type: ignore[no-untyped-def]
    return change_release(release, plan, actor(plan, user), parse_release(text), now)


def decided(plan: Plan, outcome: Vote) -> Release:
    return decide(release_from_plan(plan), plan, actor(plan, "U0VP"), DecideVote(outcome, "checked"), BEFORE).release


def in_progress(plan: Plan) -> Release:
    return replace(release_from_plan(plan), status=ReleaseStatus.IN_PROGRESS, started_at=T0)


# --- start --------------------------------------------------------------------------------------------------


def test_start_is_refused_before_a_go_decision(plan: Plan) -> None:
    with pytest.raises(Conflict, match=r"no Go decision yet.*--force"):
        run(release_from_plan(plan), plan, "U0RM", "start")


def test_start_after_go_before_t0_tells_the_war_room(plan: Plan) -> None:
    outcome = run(decided(plan, Vote.GO), plan, "U0RM", "start")
    assert outcome.release.status is ReleaseStatus.IN_PROGRESS and outcome.release.started_at == BEFORE
    assert [(e.channel, e.template) for e in outcome.effects if isinstance(e, Post)] == [
        ("war_room", "deployment_start")
    ]
    assert outcome.events[0].kind == "release.started"


def test_only_the_final_authority_may_force_a_start(plan: Plan) -> None:
    with pytest.raises(NotAllowed, match="vp engineering"):
        run(release_from_plan(plan), plan, "U0RM", "start --force we are ready")
    outcome = run(release_from_plan(plan), plan, "U0VP", "start --force vendor window closes at 23:00")
    assert outcome.release.status is ReleaseStatus.IN_PROGRESS
    assert outcome.events[0].data == {"forced": "vendor window closes at 23:00"}
    forced = outcome.release.decision("forced_start")
    assert forced is not None and forced.overrode_tally and forced.decided_by == "U0VP"
    assert CancelTimer("gonogo:deadline") in outcome.effects  # the vote can no longer postpone it


def test_forced_start_after_no_go_brings_back_the_schedule(plan: Plan) -> None:
    release = decided(plan, Vote.NO_GO)
    assert release.status is ReleaseStatus.POSTPONED
    outcome = run(release, plan, "U0VP", "start --force fixed the backup", now=T0 + timedelta(minutes=3))
    keys = {e.key for e in outcome.effects if isinstance(e, Post)}
    assert "status:20261205T221500Z" in keys  # status updates after now come back
    assert "status:20261205T220000Z" not in keys  # … but not the ones already past
    started = [e for e in outcome.effects if isinstance(e, Post) and e.key == "release:started"]
    assert started[0].channel == "announcements"


@pytest.mark.parametrize(
    ("text", "user", "allowed"),
    [
        ("complete --force region2 moves to Monday", "U0RM", True),
        ("complete --force region2 moves to Monday", "U0VP", True),
        ("complete --force region2 moves to Monday", "U0DBA", False),
        ("rollback error rate 3%", "U0RM", True),
        ("rollback error rate 3%", "U0DEV", False),
        ("abort vendor outage", "U0VP", True),
        ("abort vendor outage", "U0QA", False),
    ],
)
def test_lifecycle_authorization(plan: Plan, text: str, user: str, allowed: bool) -> None:
    if allowed:
        assert run(in_progress(plan), plan, user, text).events
    else:
        with pytest.raises(NotAllowed, match="release manager or vp engineering"):
            run(in_progress(plan), plan, user, text)


# --- complete, abort, rollback ------------------------------------------------------------------------------


def test_complete_stops_status_updates_and_announces(plan: Plan) -> None:
    outcome = run(in_progress(plan), plan, "U0RM", "complete --force checked", now=T0 + timedelta(hours=2))
    assert outcome.release.status is ReleaseStatus.COMPLETED
    assert CancelPosts(after=T0 + timedelta(hours=2), reason="release completed", prefix="status:") in outcome.effects
    assert any(isinstance(e, Post) and e.template == "deployment_complete" for e in outcome.effects)
    with pytest.raises(Conflict):
        run(outcome.release, plan, "U0RM", "complete")


@pytest.mark.parametrize(
    ("done", "expected"),
    [(3, "1 of 4 phases is not finished: .*Finish it "), (2, "2 of 4 phases are not finished: .*Finish them ")],
)
def test_completing_with_phases_open_counts_them_in_plain_english(plan: Plan, done: int, expected: str) -> None:
    release = in_progress(plan)
    finished = tuple(replace(p, status=PhaseStatus.DONE) if i < done else p for i, p in enumerate(release.phases))
    with pytest.raises(Conflict, match=expected):
        run(replace(release, phases=finished), plan, "U0RM", "complete")


def test_completing_a_rollback_ends_rolled_back(plan: Plan) -> None:
    rolling = replace(in_progress(plan), status=ReleaseStatus.ROLLING_BACK)
    outcome = run(rolling, plan, "U0RM", "complete")
    assert outcome.release.status is ReleaseStatus.ROLLED_BACK
    assert any(isinstance(e, Post) and e.template == "final_status" for e in outcome.effects)


def test_rollback_posts_the_triggers_and_turns_red(plan: Plan) -> None:
    now = T0 + timedelta(minutes=40)
    outcome = run(in_progress(plan), plan, "U0RM", "rollback error rate 3% for 6 minutes", now=now)
    assert outcome.release.status is ReleaseStatus.ROLLING_BACK
    assert status_colour(outcome.release, now)[0] is Colour.RED
    posts = [e for e in outcome.effects if isinstance(e, Post)]
    assert {(p.channel, p.template) for p in posts} == {
        ("war_room", "rollback_started"),
        ("announcements", "rollback_started"),
    }
    text = str(compose(plan, "rollback_started", outcome.release, now, posts[0].data).blocks)
    assert "Error rate &gt; 1% for 5+ minutes" in text and "error rate 3% for 6 minutes" in text
    decision = outcome.release.decision("rollback")
    assert decision is not None and decision.rationale == "error rate 3% for 6 minutes"


def test_rollback_of_a_release_not_started_points_to_abort(plan: Plan) -> None:
    with pytest.raises(Conflict, match="abort"):
        run(release_from_plan(plan), plan, "U0RM", "rollback oops")


def test_abort_cancels_everything_and_posts_the_postponed_notice(plan: Plan) -> None:
    outcome = run(release_from_plan(plan), plan, "U0RM", "abort payments vendor outage")
    assert outcome.release.status is ReleaseStatus.ABORTED
    first = outcome.effects[0]
    assert isinstance(first, CancelPosts) and first.after.year == 1  # before T0 too
    assert any(
        isinstance(e, Post) and (e.channel, e.template) == ("announcements", "postponed") for e in outcome.effects
    )
    assert CancelTimer("release:t0") in outcome.effects


@pytest.mark.parametrize("verb", [ReleaseVerb.ABORT, ReleaseVerb.ROLLBACK])
def test_abort_and_rollback_need_a_reason_even_past_the_parser(plan: Plan, verb: ReleaseVerb) -> None:
    with pytest.raises(UsageError, match="Say why"):
        change_release(in_progress(plan), plan, actor(plan, "U0RM"), ReleaseCommand(verb, "  "), T0)


# --- T0 -----------------------------------------------------------------------------------------------------


def test_t0_starts_after_go_and_not_without(plan: Plan) -> None:
    assert start_at_t0(decided(plan, Vote.GO), plan, T0, {}).release.status is ReleaseStatus.IN_PROGRESS
    idle = start_at_t0(release_from_plan(plan), plan, T0, {})
    assert idle.release.status is ReleaseStatus.SCHEDULED and idle.events[0].kind == "release.not_started"


def test_t0_starts_a_plan_without_a_vote_and_announces_when_the_plan_does_not() -> None:
    text = plan_text()
    text = text[: text.index("go_no_go:")] + text[text.index("escalation:") :]
    text = text.replace("  - {id: start, at: 0, channel: announcements, template: deployment_start}\n", "")
    plan = parse_plan(text, "novote.yml")
    outcome = start_at_t0(release_from_plan(plan), plan, T0, {})
    assert outcome.release.status is ReleaseStatus.IN_PROGRESS
    assert [(e.channel, e.template) for e in outcome.effects if isinstance(e, Post)] == [
        ("announcements", "deployment_start")
    ]


# --- the rollback decision point ----------------------------------------------------------------------------


def test_decision_point_prompts_the_war_room_only_while_in_progress(plan: Plan) -> None:
    outcome = at_decision_point(in_progress(plan), plan, POINT, {})
    assert Post("war_room", "rollback_prompt", {}, key="rollback:prompt") in outcome.effects
    assert outcome.events[0].data["triggers"] == ["Error rate > 1% for 5+ minutes"]
    idle = at_decision_point(release_from_plan(plan), plan, POINT, {})
    assert not idle.effects and not idle.events


def test_continue_at_the_decision_point_is_recorded(plan: Plan) -> None:
    outcome = answer_decision_point(
        in_progress(plan), plan, actor(plan, "U0RM"), AnswerDecisionPoint(PointChoice.CONTINUE), POINT
    )
    assert outcome.release.status is ReleaseStatus.IN_PROGRESS
    assert outcome.events[0].kind == "rollback.continued"
    assert Refresh("rollback:prompt") in outcome.effects
    with pytest.raises(Conflict, match="already answered"):
        answer_decision_point(
            outcome.release, plan, actor(plan, "U0RM"), AnswerDecisionPoint(PointChoice.ROLLBACK), POINT
        )


def test_roll_back_at_the_decision_point_uses_the_default_reason(plan: Plan) -> None:
    outcome = answer_decision_point(
        in_progress(plan), plan, actor(plan, "U0RM"), AnswerDecisionPoint(PointChoice.ROLLBACK), POINT
    )
    assert outcome.release.status is ReleaseStatus.ROLLING_BACK
    assert outcome.events[0].data["reason"] == DEFAULT_POINT_REASON
    assert [e for e in outcome.effects if isinstance(e, Refresh)] == [Refresh("rollback:prompt")]
    message = compose(plan, "rollback_prompt", outcome.release, POINT, {})
    assert not [b for b in message.blocks if b["type"] == "actions"]


def test_only_the_release_manager_or_final_authority_answers_the_prompt(plan: Plan) -> None:
    with pytest.raises(NotAllowed):
        answer_decision_point(
            in_progress(plan), plan, actor(plan, "U0DBA"), AnswerDecisionPoint(PointChoice.ROLLBACK), POINT
        )
