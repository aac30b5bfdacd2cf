"""Release lifecycle rules: start, complete, abort, roll back, the automatic start at T0 and the rollback
decision point. Pure: (release, plan, actor, …, now) → Outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bot.commands import ReleaseCommand, ReleaseVerb
from bot.core.planned import planned_messages
from bot.core.signoffs import ask_for_signoffs
from bot.domain import (
    GO_NO_GO,
    NOT_STARTED,
    SYSTEM,
    Actor,
    CancelPosts,
    CancelTimer,
    Conflict,
    Decision,
    Effect,
    Event,
    NotAllowed,
    Outcome,
    PhaseStatus,
    Post,
    Refresh,
    Release,
    ReleaseStatus,
    UsageError,
)
from bot.permissions import Action, authorize
from bot.plan import Plan
from bot.postmortem import request_report
from bot.rules import postpone_effects
from bot.timers import timer_rule
from bot.votes import DECISION_POINT_TIMER, T0_TIMER, VOTE_KEY, VOTE_TIMERS, go_decision

ACTIVE = {
    ReleaseStatus.SCHEDULED,
    ReleaseStatus.POSTPONED,
    ReleaseStatus.IN_PROGRESS,
    ReleaseStatus.ROLLING_BACK,
}
ROLLBACK_PROMPT_KEY = "rollback:prompt"
ROLLBACK_POINT = "rollback_point"
"""Decision.kind of the answer to the decision-point prompt (`continue` or `rollback`)."""
DEFAULT_POINT_REASON = "Rolled back at the rollback decision point"
ASKED = "asked"
"""Outcome of the Decision that records a rollback evaluation was asked for (answered ones follow it)."""
_EPOCH = datetime.min.replace(tzinfo=UTC)

__all__ = ["GO_NO_GO", "change_release", "go_decided"]


def go_decided(release: Release) -> bool | None:
    """True for a Go decision, False for No-Go, None when nothing is decided yet."""
    decision = go_decision(release)
    return None if decision is None else decision.outcome == "go"


def _status(release: Release) -> str:
    return release.status.value.replace("_", " ")


def change_release(release: Release, plan: Plan, actor: Actor, command: ReleaseCommand, now: datetime) -> Outcome:
    """`/release start|complete|abort|rollback` by the release manager (or the final authority)."""
    match command.verb:
        case ReleaseVerb.START:
            return start(release, plan, actor, now, force_reason=command.reason if command.force else None)
        case ReleaseVerb.COMPLETE:
            return complete(release, plan, actor, now, force_reason=command.reason if command.force else None)
        case ReleaseVerb.ABORT:
            return abort(release, plan, actor, now, command.reason)
        case ReleaseVerb.ROLLBACK:
            return rollback(release, plan, actor, now, command.reason)
        case ReleaseVerb.REPORT:
            return request_report(release, plan, actor, now)
        case _:
            raise Conflict(f"`/release {command.verb.value}` does not change the release.")


def _close_vote(release: Release) -> tuple[Effect, ...]:
    """A release that moves on without a vote decision: stop the vote timers and take the buttons away."""
    effects: list[Effect] = [CancelTimer(key) for key in VOTE_TIMERS]
    if release.vote_opened_at is not None:
        effects.append(Refresh(release.attempt_key(VOTE_KEY)))
    return tuple(effects)


def _resume_schedule(release: Release, plan: Plan, now: datetime) -> tuple[Effect, ...]:
    """Bring back the plan's messages still to come that a No-Go cancelled (same keys: never twice)."""
    return tuple(
        Post(
            fields["channel"],
            fields["template"],
            fields["data"],
            key=key,
            due_at=due_at,
            grace_seconds=fields["grace_seconds"],
            kind=fields["kind"],
        )
        for key, (due_at, fields) in planned_messages(plan, release.attempt).items()
        if due_at > now
    )


def start(release: Release, plan: Plan, actor: Actor, now: datetime, *, force_reason: str | None = None) -> Outcome:
    """Start the release: refused before a Go decision unless the final authority forces it with a reason."""
    authorize(plan, actor, Action.START_RELEASE)
    if release.status not in NOT_STARTED:
        raise Conflict(f"The release is already {_status(release)}.")
    decided = go_decided(release)
    data: dict[str, Any] = {}
    decisions = release.decisions
    if plan.go_no_go is not None and decided is not True:
        state = "the decision was No-Go" if decided is False else "there is no Go decision yet"
        if force_reason is None:
            raise Conflict(
                f"The release cannot start: {state}. Vote with `/gonogo`, or the final authority can "
                "force it with `/release start --force REASON`."
            )
        if plan.go_no_go.final_authority not in actor.roles and not actor.scheduled:
            raise NotAllowed(
                f"Only the {plan.go_no_go.final_authority.replace('_', ' ')} may force a start without a Go decision."
            )
        if not force_reason.strip():
            raise UsageError("A forced start needs a reason: `/release start --force REASON`.")
        data["forced"] = force_reason
        decisions = (*decisions, Decision("forced_start", "start", force_reason, actor.user_id, now, True))
    updated = replace(
        release,
        status=ReleaseStatus.IN_PROGRESS,
        started_at=now,
        decisions=decisions,
        revision=release.revision + 1,
    )
    event = Event("release.started", now, actor.user_id, data=data)
    effects: list[Effect] = [*_close_vote(release)]
    postponed = release.status is ReleaseStatus.POSTPONED
    if postponed:
        effects += _resume_schedule(release, plan, now)
    notice = {"by": actor.user_id, **({"forced": force_reason} if force_reason and data else {})}
    if now < release.window_start:
        # the plan's own T0 announcement still goes out at T0; tell the room now that it started early
        effects.append(Post("war_room", "deployment_start", {**notice, "early": True}, key="release:started"))
    elif not _has_t0_announcement(plan) or postponed:
        effects.append(Post("announcements", "deployment_start", notice, key="release:started"))
    else:
        effects.append(Post("war_room", "deployment_start", notice, key="release:started"))
    return Outcome(updated, (event,), tuple(effects), "The release is in progress. Status updates are running.")


def _has_t0_announcement(plan: Plan) -> bool:
    return any(a.template == "deployment_start" for a in plan.announcements)


def complete(release: Release, plan: Plan, actor: Actor, now: datetime, *, force_reason: str | None = None) -> Outcome:
    """Finish the release (or a rollback); status updates stop.

    With phases not done or skipped, a completion needs `--force REASON`: the reply lists them first.
    """
    authorize(plan, actor, Action.COMPLETE_RELEASE)
    if release.status not in {ReleaseStatus.IN_PROGRESS, ReleaseStatus.ROLLING_BACK}:
        raise Conflict(f"Only a release in progress can complete; this one is {_status(release)}.")
    final = ReleaseStatus.ROLLED_BACK if release.status is ReleaseStatus.ROLLING_BACK else ReleaseStatus.COMPLETED
    open_phases = [p for p in release.phases if not p.status.finished]
    data: dict[str, Any] = {}
    if final is ReleaseStatus.COMPLETED and open_phases:
        if force_reason is None:
            listed = ", ".join(f"{p.name} ({p.status.value.replace('_', ' ')})" for p in open_phases)
            one = len(open_phases) == 1
            raise Conflict(
                f"{len(open_phases)} of {len(release.phases)} phases {'is' if one else 'are'} not finished: {listed}. "
                f"Finish {'it' if one else 'them'} with `/phase done|skip ID`, or complete anyway and say why: "
                "`/release complete --force REASON`."
            )
        if not force_reason.strip():
            raise UsageError("A forced completion needs a reason: `/release complete --force REASON`.")
        data = {
            "forced": force_reason,
            "failed": [p.id for p in open_phases if p.status is PhaseStatus.FAILED],
            "unfinished": [p.id for p in open_phases if p.status is not PhaseStatus.FAILED],
        }
    updated = replace(release, status=final, ended_at=now, revision=release.revision + 1)
    event = Event(f"release.{final.value}", now, actor.user_id, data=data)
    template = "deployment_complete" if final is ReleaseStatus.COMPLETED else "final_status"
    notice = {"by": actor.user_id, **({"forced": force_reason} if data else {})}
    effects: tuple[Effect, ...] = (
        CancelPosts(after=now, reason=f"release {final.value.replace('_', ' ')}", prefix="status:"),
        Post("announcements", template, notice, key=f"release:{final.value}"),
        CancelTimer(DECISION_POINT_TIMER),
        *_refresh_prompt(release, plan, now),
    )
    reply = f"The release is {final.value.replace('_', ' ')}. Status updates stopped."
    asked = ask_for_signoffs(updated, plan, now)  # the plan's required sign-offs open with the completion
    if asked.effects:
        reply += " The sign-off table is posted in the war room."
    return Outcome(asked.release, (event, *asked.events), (*effects, *asked.effects), reply)


def abort(release: Release, plan: Plan, actor: Actor, now: datetime, reason: str) -> Outcome:
    """Call the release off: everything still to come is cancelled and a postponed notice goes out."""
    authorize(plan, actor, Action.ABORT_RELEASE)
    if not reason.strip():
        raise UsageError("Say why: `/release abort REASON`.")
    if release.status not in ACTIVE:
        raise Conflict(f"The release is already {_status(release)}.")
    updated = replace(release, status=ReleaseStatus.ABORTED, ended_at=now, revision=release.revision + 1)
    event = Event("release.aborted", now, actor.user_id, data={"reason": reason})
    effects: tuple[Effect, ...] = (
        # first: an abort cancels every message still owed, also those before T0 (SPEC §7)
        CancelPosts(after=_EPOCH, reason=f"aborted: {reason}"),
        *postpone_effects(updated, now, reason)[1:],
        Post("war_room", "postponed", {"reason": reason, "by": actor.user_id}, key="release:aborted:war_room"),
        CancelTimer(T0_TIMER),
        CancelTimer(DECISION_POINT_TIMER),
        *_close_vote(release),
        *_refresh_prompt(release, plan, now),
    )
    return Outcome(updated, (event,), effects, "The release is aborted; scheduled messages are cancelled.")


def rollback(release: Release, plan: Plan, actor: Actor, now: datetime, reason: str) -> Outcome:
    """Start rolling back: the plan's triggers are posted and the status turns Red."""
    authorize(plan, actor, Action.ROLLBACK)
    if not reason.strip():
        raise UsageError("Say why: `/release rollback REASON`.")
    if release.status is not ReleaseStatus.IN_PROGRESS:
        hint = (
            " To call off a release that has not started, use `/release abort REASON`."
            if (release.status in NOT_STARTED)
            else ""
        )
        raise Conflict(f"Only a release in progress can roll back; this one is {_status(release)}.{hint}")
    decision = Decision("rollback", "rollback", reason, actor.user_id, now)
    updated = replace(
        release,
        status=ReleaseStatus.ROLLING_BACK,
        decisions=(*release.decisions, decision),
        revision=release.revision + 1,
    )
    event = Event("release.rollback_started", now, actor.user_id, data={"reason": reason})
    data = {"reason": reason, "by": actor.user_id}
    effects: tuple[Effect, ...] = (
        Post("war_room", "rollback_started", data, key="release:rollback:war_room"),
        Post("announcements", "rollback_started", data, key="release:rollback:announcements"),
        CancelTimer(DECISION_POINT_TIMER),
        *_refresh_prompt(release, plan, now),
    )
    return Outcome(updated, (event,), effects, "Rollback started. Complete it with `/release complete` when done.")


@timer_rule("release.t0")
def start_at_t0(release: Release, plan: Plan, now: datetime, data: dict[str, Any]) -> Outcome:
    """At T0 the release starts by itself when the decision is Go or the plan has no vote."""
    if release.status not in NOT_STARTED:
        return Outcome(release)
    if plan.go_no_go is not None and go_decided(release) is not True:
        return Outcome(release, (Event("release.not_started", now, data={"reason": "no Go decision at T0"}),))
    updated = replace(release, status=ReleaseStatus.IN_PROGRESS, started_at=now, revision=release.revision + 1)
    effects: list[Effect] = []
    if not _has_t0_announcement(plan):
        # nothing in the plan says so at T0: announce the start ourselves
        effects.append(Post("announcements", "deployment_start", {}, key="release:started"))
    return Outcome(updated, (Event("release.started", now, SYSTEM.user_id, data={"at": "T0"}),), tuple(effects))


# --- the rollback decision point ----------------------------------------------------------------------------


class PointChoice(StrEnum):
    CONTINUE = "continue"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class AnswerDecisionPoint:
    """*Continue* or *Roll back* on the decision-point prompt."""

    choice: PointChoice
    reason: str = ""


def _point_reached(plan: Plan, now: datetime) -> bool:
    point = plan.rollback.decision_point
    return point is not None and now >= plan.at(point)


def _refresh_prompt(release: Release, plan: Plan, now: datetime) -> tuple[Effect, ...]:
    """Re-render the rollback prompts still waiting for an answer: the decision point and critical issues."""
    point = (Refresh(ROLLBACK_PROMPT_KEY),) if _point_reached(plan, now) else ()
    return point + tuple(Refresh(evaluation_key(n)) for n in pending_evaluations(release))


# --- rollback evaluations of critical issues (asked and answered in bot.evaluation) --------------------------


def evaluation_kind(issue_number: int) -> str:
    """Decision.kind of the rollback evaluation of a critical issue: `asked`, then `continue` or `rollback`."""
    return f"rollback_eval:{issue_number}"


def evaluation_key(issue_number: int) -> str:
    """The outbox key of the evaluation prompt in the war room (and of its timer)."""
    return f"rollback:evaluation:{issue_number}"


def pending_evaluations(release: Release) -> tuple[int, ...]:
    """Critical issues whose rollback evaluation was asked and not answered yet."""
    latest: dict[str, str] = {}
    for decision in release.decisions:
        if decision.kind.startswith("rollback_eval:"):
            latest[decision.kind] = decision.outcome
    return tuple(int(kind.split(":")[1]) for kind, outcome in latest.items() if outcome == ASKED)


@timer_rule("rollback.decision_point")
def at_decision_point(release: Release, plan: Plan, now: datetime, data: dict[str, Any]) -> Outcome:
    """At `rollback.decision_point` the release manager is asked in the war room: continue or roll back?"""
    if release.status is not ReleaseStatus.IN_PROGRESS:
        return Outcome(release)
    event = Event("rollback.decision_point", now, SYSTEM.user_id, data={"triggers": list(plan.rollback.triggers)})
    return Outcome(release, (event,), (Post("war_room", "rollback_prompt", {}, key=ROLLBACK_PROMPT_KEY),))


def answer_decision_point(
    release: Release, plan: Plan, actor: Actor, command: AnswerDecisionPoint, now: datetime
) -> Outcome:
    """*Continue* records the choice; *Roll back* starts the rollback with the decision-point reason."""
    authorize(plan, actor, Action.ROLLBACK)
    answered = release.decision(ROLLBACK_POINT)
    if answered is not None:
        raise Conflict(
            f"The decision point was already answered: {answered.outcome} by <@{answered.decided_by}> "
            f"at {answered.at:%H:%M} UTC."
        )
    if release.status is not ReleaseStatus.IN_PROGRESS:
        raise Conflict(f"The release is {_status(release)}; there is nothing to decide at the decision point.")
    reason = command.reason.strip() or (
        DEFAULT_POINT_REASON if command.choice is PointChoice.ROLLBACK else "Continue at the rollback decision point"
    )
    decision = Decision(ROLLBACK_POINT, command.choice.value, reason, actor.user_id, now)
    marked = replace(release, decisions=(*release.decisions, decision))
    if command.choice is PointChoice.ROLLBACK:
        rolled = rollback(marked, plan, actor, now, reason)
        refresh = () if Refresh(ROLLBACK_PROMPT_KEY) in rolled.effects else (Refresh(ROLLBACK_PROMPT_KEY),)
        return Outcome(rolled.release, rolled.events, (*rolled.effects, *refresh), rolled.reply)
    updated = replace(marked, revision=release.revision + 1)
    event = Event("rollback.continued", now, actor.user_id, data={"reason": reason})
    return Outcome(updated, (event,), (Refresh(ROLLBACK_PROMPT_KEY),), "Recorded: continue. The prompt is updated.")
