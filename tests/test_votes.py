"""Go/No-Go rules as pure tables, the deadline on a controlled clock, and 20 simultaneous votes."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from slack_sdk.models.views import View

from bot.domain import (
    SYSTEM,
    Actor,
    CancelPosts,
    CancelTimer,
    Conflict,
    NotAllowed,
    Outcome,
    PhaseStatus,
    Post,
    Refresh,
    Release,
    ReleaseStatus,
    SetTimer,
    UsageError,
    Vote,
)
from bot.gonogo_commands import parse_gonogo
from bot.plan import Plan, parse_plan
from bot.report import report, to_markdown
from bot.rules import ChangePhase, PhaseVerb, change_phase, load_plan_into, release_from_plan
from bot.service import LoadedPlan, Service
from bot.votes import (
    AUTO_NO_GO_GRACE,
    CastVote,
    DecideVote,
    OpenVote,
    ShowVote,
    at_deadline,
    auto_no_go,
    cast_vote,
    decide,
    go_decision,
    open_at_time,
    open_vote,
    parse_vote_ref,
    tally_votes,
    vote_ref,
    vote_state,
)
from messages.blocks import validate
from messages.render import compose
from messages.vote_cards import decide_modal, no_go_modal
from storage.db import create_engine, migrate, sessionmaker
from tests.conftest import T0, plan_text, postgres_url

OPENED = T0 - timedelta(minutes=30)
DEADLINE = T0 - timedelta(minutes=5)
VOTERS = {"release_manager": "U0RM", "devops_lead": "U0DEV", "dba": "U0DBA", "qa_lead": "U0QA"}


def actor(plan: Plan, user: str) -> Actor:
    return Actor(user, plan.role_of_person.get(user, frozenset()))


def opened(plan: Plan) -> Release:
    return open_vote(release_from_plan(plan), plan, actor(plan, "U0RM"), OpenVote(), OPENED).release


def vote(release: Release, plan: Plan, user: str, choice: Vote, reason: str = "", at: datetime = OPENED) -> Outcome:
    return cast_vote(release, plan, actor(plan, user), CastVote(choice, reason), at)


def votes(plan: Plan, choices: dict[str, Vote | None]) -> Release:
    """A release whose vote is open, with `choices` (role → vote, None = not voted) cast in order."""
    release = opened(plan)
    for minute, (role, choice) in enumerate(choices.items()):
        if choice is not None:
            reason = "backup not verified" if choice is Vote.NO_GO else ""
            release = vote(release, plan, VOTERS[role], choice, reason, OPENED + timedelta(minutes=minute)).release
    return release


G, N = Vote.GO, Vote.NO_GO


# --- the tally ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("choices", "verdict", "missing"),
    [
        ({}, None, ("release_manager", "devops_lead", "dba", "qa_lead")),
        ({"release_manager": G}, None, ("devops_lead", "dba", "qa_lead")),
        ({"release_manager": G, "devops_lead": G, "dba": G}, None, ("qa_lead",)),
        ({"release_manager": N}, N, ("devops_lead", "dba", "qa_lead")),
        ({"release_manager": G, "devops_lead": N, "dba": G}, N, ("qa_lead",)),
    ],
)
def test_tally_of_an_incomplete_vote(
    plan: Plan, choices: dict[str, Vote], verdict: Vote | None, missing: tuple[str, ...]
) -> None:
    tally = tally_votes(votes(plan, choices), plan)
    assert tally.verdict is verdict
    assert tally.missing == missing
    assert go_decision_of(votes(plan, choices)) is None  # nothing decided while votes are missing


def go_decision_of(release: Release) -> str | None:
    decision = release.decision("go_no_go")
    return None if decision is None else decision.outcome


@pytest.mark.parametrize(
    ("choices", "decided"),
    [
        ({"release_manager": G, "devops_lead": G, "dba": G, "qa_lead": G}, "go"),
        ({"release_manager": G, "devops_lead": G, "dba": G, "qa_lead": N}, "no_go"),
        ({"release_manager": N, "devops_lead": G, "dba": G, "qa_lead": G}, "no_go"),
        ({"release_manager": N, "devops_lead": N, "dba": N, "qa_lead": N}, "no_go"),
    ],
)
def test_the_last_missing_vote_decides(plan: Plan, choices: dict[str, Vote], decided: str) -> None:
    release = votes(plan, choices)
    decision = release.decision("go_no_go")
    assert decision is not None and decision.outcome == decided
    assert decision.decided_by == SYSTEM.user_id and not decision.overrode_tally
    assert release.status is (ReleaseStatus.POSTPONED if decided == "no_go" else ReleaseStatus.SCHEDULED)


def test_a_voter_may_change_their_vote_until_the_decision(plan: Plan) -> None:
    release = votes(plan, {"release_manager": G, "devops_lead": N})
    changed = vote(release, plan, "U0DEV", G)
    assert [e.kind for e in changed.events] == ["vote.changed"]
    assert changed.events[0].data["from"] == "no_go"
    assert tally_votes(changed.release, plan).no_go == ()
    assert Refresh("gonogo:vote") in changed.effects
    # one ballot per voter, however often they change
    assert len(changed.release.ballots) == 2


def test_a_repeated_click_changes_nothing(plan: Plan) -> None:
    release = votes(plan, {"release_manager": G})
    again = vote(release, plan, "U0RM", G)
    assert again.release is release and not again.events and "already" in again.reply


def test_one_person_holding_two_voter_roles_votes_for_both() -> None:
    text = plan_text().replace("  qa_lead: [U0QA]", "  qa_lead: [U0RM]")
    plan = parse_plan(text, "dual.yml")
    release = opened(plan)
    release = vote(release, plan, "U0RM", G).release
    assert tally_votes(release, plan).go == ("release_manager", "qa_lead")


def test_decided_vote_refuses_further_votes(plan: Plan) -> None:
    release = votes(plan, dict.fromkeys(VOTERS, G))
    with pytest.raises(Conflict, match="decided Go"):
        vote(release, plan, "U0RM", N, "changed my mind")


def test_no_go_needs_a_reason(plan: Plan) -> None:
    with pytest.raises(UsageError, match="reason"):
        vote(opened(plan), plan, "U0QA", N, "  ")


def test_voting_before_the_vote_opens_is_refused(plan: Plan) -> None:
    with pytest.raises(Conflict, match="not open yet"):
        vote(release_from_plan(plan), plan, "U0RM", G)


# --- authorization ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["U0VP", "U0OC1", "U0CTO", "U0NOBODY"])
def test_only_the_plans_voters_may_vote(plan: Plan, user: str) -> None:
    release = opened(plan)
    with pytest.raises(NotAllowed, match="vote go/no-go"):
        vote(release, plan, user, G)


@pytest.mark.parametrize(("user", "allowed"), [("U0RM", True), ("U0VP", True), ("U0DBA", False), ("U0X", False)])
def test_who_may_open_the_vote(plan: Plan, user: str, allowed: bool) -> None:
    release = release_from_plan(plan)
    if allowed:
        assert open_vote(release, plan, actor(plan, user), OpenVote(), OPENED).release.vote_opened_at == OPENED
    else:
        with pytest.raises(NotAllowed):
            open_vote(release, plan, actor(plan, user), OpenVote(), OPENED)


@pytest.mark.parametrize("user", ["U0RM", "U0DEV", "U0CTO"])
def test_only_the_final_authority_decides(plan: Plan, user: str) -> None:
    with pytest.raises(NotAllowed, match="decide go/no-go"):
        decide(opened(plan), plan, actor(plan, user), DecideVote(G, "looks fine"), OPENED)


# --- the final authority ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("choices", "outcome", "overrode"),
    [
        ({}, G, True),  # deciding Go without consensus overrides the tally
        ({"release_manager": N}, G, True),
        ({"release_manager": N}, N, False),  # the tally already says No-Go
        ({"release_manager": G, "devops_lead": G, "dba": G}, N, True),
    ],
)
def test_final_authority_overrides_the_tally_with_a_rationale(
    plan: Plan, choices: dict[str, Vote], outcome: Vote, overrode: bool
) -> None:
    release = votes(plan, choices)
    result = decide(release, plan, actor(plan, "U0VP"), DecideVote(outcome, "risk accepted by VP"), OPENED)
    decision = result.release.decision("go_no_go")
    assert decision is not None
    assert (decision.outcome, decision.overrode_tally, decision.rationale) == (
        outcome.value,
        overrode,
        "risk accepted by VP",
    )
    assert result.events[0].kind == "vote.decided" and result.events[0].data["rationale"] == "risk accepted by VP"


def test_decision_needs_a_rationale(plan: Plan) -> None:
    with pytest.raises(UsageError, match="rationale"):
        decide(opened(plan), plan, actor(plan, "U0VP"), DecideVote(G, " "), OPENED)


def test_no_go_postpones_and_cancels_what_comes_after_t0(plan: Plan) -> None:
    result = decide(opened(plan), plan, actor(plan, "U0VP"), DecideVote(N, "payments vendor down"), OPENED)
    assert result.release.status is ReleaseStatus.POSTPONED
    cancel = result.effects[0]
    assert isinstance(cancel, CancelPosts) and cancel.after == T0 - timedelta(seconds=1)  # T0's own too
    posts = {(e.channel, e.template) for e in result.effects if isinstance(e, Post)}
    assert {
        ("announcements", "postponed"),
        ("war_room", "gonogo_decision"),
        ("announcements", "gonogo_decision"),
    } <= posts
    assert CancelTimer("release:t0") in result.effects and CancelTimer("gonogo:deadline") in result.effects


# --- a new window after a No-Go ------------------------------------------------------------------------------

NEXT_WEEK = T0 + timedelta(days=7)


def no_go(plan: Plan) -> Release:
    release = vote(opened(plan), plan, "U0DBA", N, "backup not verified").release
    return decide(release, plan, actor(plan, "U0VP"), DecideVote(N, "backup not verified"), OPENED).release


def test_a_new_window_after_a_no_go_starts_a_new_attempt_with_a_fresh_vote(plan: Plan) -> None:
    postponed = no_go(plan)
    done = change_phase(postponed, plan, actor(plan, "U0RM"), ChangePhase(PhaseVerb.DONE, "pre-deployment"), OPENED)
    postponed = done.release
    assert postponed.status is ReleaseStatus.POSTPONED and postponed.attempt == 1
    moved = parse_plan(plan_text(start=NEXT_WEEK), "test.yml")
    result = load_plan_into(postponed, moved, OPENED + timedelta(hours=1))
    release = result.release
    assert release.status is ReleaseStatus.SCHEDULED and release.window_start == NEXT_WEEK
    assert release.attempt == 2 and release.ballots == () and release.vote_opened_at is None
    assert go_decision(release) is None and vote_state(release, moved) == "pending"
    assert [d.outcome for d in release.decisions] == ["no_go", "rescheduled"], "the No-Go stays in the history"
    [event] = [e for e in result.events if e.kind == "release.rescheduled"]
    assert event.data == {
        "previous_start": T0.isoformat(),
        "start": NEXT_WEEK.isoformat(),
        "attempt": 2,
        "phases_reset": ["pre-deployment"],
    }
    assert {p.status for p in release.phases} == {PhaseStatus.PENDING}, "checks are done again for the new date"
    assert "attempt 2 (rescheduled after a No-Go)" in str(compose(moved, "status_card", release, OPENED, {}).blocks)
    assert release.phase("pre-deployment").planned_start == NEXT_WEEK - timedelta(hours=2)  # type: ignore[union-attr]
    posts = {(e.channel, e.template, e.key) for e in result.effects if isinstance(e, Post)}
    assert posts == {
        ("war_room", "rescheduled", "release:rescheduled:war_room:attempt2"),
        ("announcements", "rescheduled", "release:rescheduled:announcements:attempt2"),
    }


def test_the_new_attempt_votes_and_decides_under_its_own_keys(plan: Plan) -> None:
    moved = parse_plan(plan_text(start=NEXT_WEEK), "test.yml")
    release = load_plan_into(no_go(plan), moved, OPENED + timedelta(hours=1)).release
    opening = open_at_time(release, moved, NEXT_WEEK - timedelta(minutes=30), {})
    assert Post("war_room", "gonogo_vote", {"attempt": 2}, key="gonogo:vote:attempt2") in opening.effects
    release = opening.release
    for user in VOTERS.values():
        cast = vote(release, moved, user, G, at=NEXT_WEEK - timedelta(minutes=20))
        release = cast.release
    assert go_decision(release) is not None and go_decision(release).outcome == "go"  # type: ignore[union-attr]
    assert "gonogo:decision:war_room:attempt2" in {e.key for e in cast.effects if isinstance(e, Post)}
    assert Refresh("gonogo:vote:attempt2") in cast.effects
    assert release.status is ReleaseStatus.SCHEDULED


def test_the_post_mortem_report_says_which_attempt_it_describes(plan: Plan) -> None:
    moved = parse_plan(plan_text(start=NEXT_WEEK), "test.yml")
    release = load_plan_into(no_go(plan), moved, OPENED + timedelta(hours=1)).release
    data = report(release, [])
    assert data["release"]["attempt"] == 2
    assert [d["outcome"] for d in data["decisions"]] == ["no_go", "rescheduled"]
    assert "- Attempt 2: the release was postponed by a No-Go and rescheduled" in to_markdown(data)
    assert "Attempt" not in to_markdown(report(release_from_plan(plan), []))


def test_buttons_of_an_earlier_attempt_change_nothing(plan: Plan) -> None:
    moved = parse_plan(plan_text(start=NEXT_WEEK), "test.yml")
    release = load_plan_into(no_go(plan), moved, OPENED + timedelta(hours=1)).release
    release = open_at_time(release, moved, NEXT_WEEK - timedelta(minutes=30), {}).release
    assert vote_ref(release) == "r1#2" and parse_vote_ref("r1#2") == ("r1", 2) and parse_vote_ref("r1") == ("r1", 1)
    with pytest.raises(Conflict, match="earlier date of Test Platform"):
        cast_vote(release, moved, actor(moved, "U0RM"), CastVote(G, attempt=1), NEXT_WEEK - timedelta(minutes=20))
    with pytest.raises(Conflict, match="earlier date"):
        decide(release, moved, actor(moved, "U0VP"), DecideVote(G, "ok", attempt=1), NEXT_WEEK - timedelta(minutes=20))
    current = cast_vote(release, moved, actor(moved, "U0RM"), CastVote(G, attempt=2), NEXT_WEEK - timedelta(minutes=20))
    assert len(current.release.ballots) == 1
    with pytest.raises(UsageError):
        parse_vote_ref("r1#two")


def test_messages_of_an_earlier_attempt_render_as_superseded(plan: Plan) -> None:
    moved = parse_plan(plan_text(start=NEXT_WEEK), "test.yml")
    release = load_plan_into(no_go(plan), moved, OPENED + timedelta(hours=1)).release
    release = open_at_time(release, moved, NEXT_WEEK - timedelta(minutes=30), {}).release
    now = NEXT_WEEK - timedelta(minutes=20)
    old_vote = compose(moved, "gonogo_vote", release, now, {})  # attempt 1's card, refreshed late
    validate(old_vote.blocks)
    text = str(old_vote.blocks)
    assert "Decision: NO-GO" in text and "backup not verified" in text and "Superseded" in text
    assert not [b for b in old_vote.blocks if b["type"] == "actions"], "no buttons on an earlier attempt's vote"
    reminder = {"missing": ["qa_lead"], "auto_at": T0.isoformat(), "deadline": T0.isoformat(), "dm": True}
    old_reminder = compose(moved, "gonogo_reminder", release, now, reminder)
    assert "Superseded" in str(old_reminder.blocks) and not [b for b in old_reminder.blocks if b["type"] == "actions"]
    new_vote = compose(moved, "gonogo_vote", release, now, {"attempt": 2})
    [buttons] = [b for b in new_vote.blocks if b["type"] == "actions"]
    assert {e["value"] for e in buttons["elements"]} == {"r1#2"}


def test_a_postponed_notice_names_the_date_called_off(plan: Plan) -> None:
    result = decide(opened(plan), plan, actor(plan, "U0VP"), DecideVote(N, "vendor down"), OPENED)
    [notice] = [e for e in result.effects if isinstance(e, Post) and e.template == "postponed"]
    moved = parse_plan(plan_text(start=NEXT_WEEK), "test.yml")
    release = load_plan_into(result.release, moved, OPENED + timedelta(hours=1)).release
    rendered = str(compose(moved, "postponed", release, OPENED + timedelta(hours=1), notice.data).blocks)
    assert f"<!date^{int(T0.timestamp())}^" in rendered and f"<!date^{int(NEXT_WEEK.timestamp())}^" not in rendered


@pytest.mark.parametrize(
    ("status", "start", "expected"),
    [
        (ReleaseStatus.POSTPONED, T0 - timedelta(days=1), ReleaseStatus.POSTPONED),  # into the past: no
        (ReleaseStatus.SCHEDULED, NEXT_WEEK, ReleaseStatus.SCHEDULED),  # not postponed: a plain move
        (ReleaseStatus.ABORTED, NEXT_WEEK, ReleaseStatus.ABORTED),  # called off stays called off
    ],
)
def test_only_a_postponed_release_moved_into_the_future_is_rescheduled(
    plan: Plan, status: ReleaseStatus, start: datetime, expected: ReleaseStatus
) -> None:
    release = replace(no_go(plan), status=status)
    result = load_plan_into(release, parse_plan(plan_text(start=start), "test.yml"), OPENED + timedelta(hours=1))
    assert result.release.status is expected and result.release.attempt == 1
    assert not [e for e in result.events if e.kind == "release.rescheduled"]


def test_go_after_t0_starts_the_release_through_the_t0_rule(plan: Plan) -> None:
    late = T0 + timedelta(minutes=2)
    result = decide(opened(plan), plan, actor(plan, "U0VP"), DecideVote(G, "all clear"), late)
    assert SetTimer("release:t0", late, "release.t0") in result.effects
    early = decide(opened(plan), plan, actor(plan, "U0VP"), DecideVote(G, "all clear"), OPENED)
    assert not any(isinstance(e, SetTimer) for e in early.effects)


# --- timers -------------------------------------------------------------------------------------------------


def test_open_timer_opens_once(plan: Plan) -> None:
    first = open_at_time(release_from_plan(plan), plan, OPENED, {})
    assert first.release.vote_opened_at == OPENED
    assert Post("war_room", "gonogo_vote", {"attempt": 1}, key="gonogo:vote") in first.effects
    again = open_at_time(first.release, plan, OPENED + timedelta(seconds=1), {})
    assert again.release is first.release and not again.effects


def test_deadline_reminds_missing_voters_and_sets_the_auto_no_go(plan: Plan) -> None:
    release = votes(plan, {"release_manager": G, "devops_lead": G})
    result = at_deadline(release, plan, DEADLINE, {})
    dms = [e for e in result.effects if isinstance(e, Post) and e.channel.startswith("U")]
    assert sorted(e.channel for e in dms) == ["U0DBA", "U0QA"]
    assert any(
        isinstance(e, Post) and e.channel == "war_room" and e.template == "gonogo_reminder" for e in result.effects
    )
    assert SetTimer("gonogo:auto_no_go", DEADLINE + AUTO_NO_GO_GRACE, "gonogo.auto_no_go") in result.effects
    assert result.events[0].kind == "vote.reminded" and result.events[0].data["missing"] == ["dba", "qa_lead"]
    assert result.release.decision("go_no_go") is None


def test_a_late_deadline_timer_still_gives_the_full_grace(plan: Plan) -> None:
    late = DEADLINE + timedelta(hours=1)  # the bot was down at the deadline
    result = at_deadline(votes(plan, {}), plan, late, {})
    assert SetTimer("gonogo:auto_no_go", late + AUTO_NO_GO_GRACE, "gonogo.auto_no_go") in result.effects


def test_deadline_with_a_no_go_cast_decides_no_go_at_once(plan: Plan) -> None:
    release = votes(plan, {"release_manager": G, "dba": N})
    result = at_deadline(release, plan, DEADLINE, {})
    decision = result.release.decision("go_no_go")
    assert decision is not None and decision.outcome == "no_go" and "backup not verified" in decision.rationale


def test_deadline_opens_a_vote_nobody_opened(plan: Plan) -> None:
    result = at_deadline(release_from_plan(plan), plan, DEADLINE, {})
    assert result.release.vote_opened_at == DEADLINE
    assert [e.kind for e in result.events] == ["vote.opened", "vote.reminded"]


def test_auto_no_go_names_the_missing_votes(plan: Plan) -> None:
    release = votes(plan, {"release_manager": G, "devops_lead": G})
    result = auto_no_go(release, plan, T0, {})
    decision = result.release.decision("go_no_go")
    assert decision is not None
    assert (decision.outcome, decision.rationale) == ("no_go", "missing votes: Dba, Qa lead")
    assert result.release.status is ReleaseStatus.POSTPONED


def test_auto_no_go_does_nothing_once_decided(plan: Plan) -> None:
    release = decide(opened(plan), plan, actor(plan, "U0VP"), DecideVote(G, "ok"), DEADLINE).release
    assert auto_no_go(release, plan, T0, {}).release is release
    assert at_deadline(release, plan, T0, {}).release is release


def test_vote_closes_when_the_release_started_without_a_decision(plan: Plan) -> None:
    release = replace(opened(plan), status=ReleaseStatus.IN_PROGRESS)
    assert vote_state(release, plan) == "closed"
    assert auto_no_go(release, plan, T0, {}).release is release
    with pytest.raises(Conflict, match="closed"):
        vote(release, plan, "U0RM", G)


# --- parsing ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("", ShowVote()),
        ("status", ShowVote()),
        ("open", OpenVote()),
        ("go", CastVote(G)),
        ("no-go backup missing", CastVote(N, "backup missing")),
        ("decide go all checks green", DecideVote(G, "all checks green")),
        ("decide NO-GO vendor outage", DecideVote(N, "vendor outage")),
        ("decide nogo x", DecideVote(N, "x")),
    ],
)
def test_parse_gonogo(text: str, parsed: object) -> None:
    assert parse_gonogo(text) == parsed


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("decide go", "rationale"),
        ("decide", "Decide what"),
        ("decide maybe because", "not an outcome"),
        ("no-go", "reason"),
        ("open now", "takes no arguments"),
        ("vote", "not a /gonogo command"),
    ],
)
def test_parse_gonogo_refuses_wrong_input_with_usage(text: str, complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint) as info:
        parse_gonogo(text)
    assert info.value.usage and "/gonogo decide go|no-go RATIONALE" in info.value.usage


# --- messages -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "choices",
    [{}, {"release_manager": G, "devops_lead": N}, dict.fromkeys(VOTERS, G)],
    ids=["empty", "mixed", "decided"],
)
def test_vote_message_is_valid_block_kit_with_a_fallback(plan: Plan, choices: dict[str, Vote]) -> None:
    release = votes(plan, choices)
    message = compose(plan, "gonogo_vote", release, OPENED, {})
    validate(message.blocks)
    assert message.text.startswith("Go/No-Go vote for Test Platform v1.2.3")
    actions = [b for b in message.blocks if b["type"] == "actions"]
    decided = release.decision("go_no_go") is not None
    assert bool(actions) is not decided  # buttons until the decision, none after
    text = str(message.blocks)
    assert "All pre-deployment checks passed" in text and "<@U0QA>" in text


def test_vote_message_escapes_reasons(plan: Plan) -> None:
    release = vote(opened(plan), plan, "U0QA", N, "<!channel> db <@U1> & more").release
    text = str(compose(plan, "gonogo_vote", release, OPENED, {}).blocks)
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text


@pytest.mark.parametrize("template", ["gonogo_decision", "gonogo_reminder", "rollback_prompt"])
def test_other_go_no_go_messages_are_valid_block_kit(plan: Plan, template: str) -> None:
    result = auto_no_go(votes(plan, {"release_manager": G}), plan, T0, {})
    data: dict[str, Any] = next((e.data for e in result.effects if isinstance(e, Post) and e.template == template), {})
    if template == "gonogo_reminder":
        data = {"missing": ["dba"], "auto_at": T0.isoformat(), "dm": True}
    release = opened(plan) if template == "gonogo_reminder" else result.release
    message = compose(
        plan,
        template,
        replace(release, status=ReleaseStatus.IN_PROGRESS) if template == "rollback_prompt" else release,
        T0,
        data,
    )
    validate(message.blocks)
    assert message.text.strip()


def test_modals_are_valid_views(plan: Plan) -> None:
    release = opened(plan)
    for view in (no_go_modal(release, "C0WAR"), decide_modal(plan, release, "C0WAR")):
        validate(view["blocks"])
        View(**view).validate_json()
        assert view["private_metadata"] and view["callback_id"]


# --- 20 simultaneous votes through the one path -------------------------------------------------------------


def twenty_voter_plan() -> tuple[Plan, str]:
    roles = [f"lead_{n:02d}" for n in range(20)]
    people = "\n".join(f"  {r}: [U0V{n:02d}]" for n, r in enumerate(roles))
    text = (
        plan_text()
        .replace("id: r1", "id: r20")
        .replace("  cto: [U0CTO]", "  cto: [U0CTO]\n" + people)
        .replace("voters: [release_manager, devops_lead, dba, qa_lead]", f"voters: [{', '.join(roles)}]")
    )
    return parse_plan(text, "twenty.yml"), text


async def _twenty_concurrent_votes(url: str, connect_args: dict[str, Any] | None = None) -> None:
    engine = create_engine(url, **({"connect_args": connect_args} if connect_args else {}))
    try:
        await migrate(engine)
        now = OPENED
        service = Service(sessions=sessionmaker(engine), clock=lambda: now)
        plan, text = twenty_voter_plan()
        await service.load(LoadedPlan(plan, text, "twenty.yml"))
        vm = Actor("U0VP", frozenset({"vp_engineering"}))
        await service.run(plan.id, lambda r, p, t: open_vote(r, p, vm, OpenVote(), t))

        def voter(n: int) -> Any:
            who = Actor(f"U0V{n:02d}", frozenset({f"lead_{n:02d}"}))
            return lambda r, p, t: cast_vote(r, p, who, CastVote(Vote.GO), t)

        outcomes = await asyncio.gather(*(service.run(plan.id, voter(n)) for n in range(20)))
        release = await service.get(plan.id)
        assert len(release.ballots) == 20
        assert {b.voter for b in release.ballots} == {f"U0V{n:02d}" for n in range(20)}
        decision = release.decision("go_no_go")
        assert decision is not None and decision.outcome == "go"
        assert len(release.decisions) == 1  # exactly one vote saw the complete tally
        assert sum(1 for o in outcomes if o.release.decisions) == 1
        async with service.sessions() as session:
            from storage import repo

            timeline = await repo.get_timeline(session=session, release_id=plan.id)
        assert sum(1 for e in timeline if e.kind == "vote.cast") == 20
        assert sum(1 for e in timeline if e.kind == "vote.decided") == 1
    finally:
        await engine.dispose()


async def test_twenty_simultaneous_votes_all_count_on_sqlite(database_url: str) -> None:
    await _twenty_concurrent_votes(database_url)


async def test_twenty_simultaneous_votes_all_count_on_postgres() -> None:
    url = postgres_url()
    if not url:
        pytest.skip("set WARROOM_TEST_POSTGRES_URL (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test) to run")
    schema = f"warroom_votes_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    from sqlalchemy import text

    async with admin.begin() as connection:
        await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        await _twenty_concurrent_votes(url, {"server_settings": {"search_path": schema}})
    finally:
        async with admin.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


def test_vote_message_for_twenty_voters_stays_within_slack_limits() -> None:
    plan, _ = twenty_voter_plan()
    release = opened(plan)
    for n in range(19):
        who = Actor(f"U0V{n:02d}", frozenset({f"lead_{n:02d}"}))
        reason = "x" * 300 if n % 2 else ""
        choice = Vote.NO_GO if n % 2 else Vote.GO
        release = cast_vote(release, plan, who, CastVote(choice, reason), OPENED).release
    message = compose(plan, "gonogo_vote", release, OPENED, {})
    validate(message.blocks)
    assert message.blocks[-1]["type"] == "actions"  # the buttons survive however long the list gets
    assert "lead 19" in str(message.blocks).lower()
