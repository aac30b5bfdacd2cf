"""Rollback evaluation after a critical issue: the reference's incident response during a deployment.

"Any critical issue triggers evaluation · Release Manager coordinates · Quick decision required (< 5
minutes)." A critical issue reported while the release is in progress posts a prompt in the war room:
*Continue* (fix forward) or *Roll back*, for the release manager (or the final authority). Unanswered
after five minutes, the people who may decide are paged. Pure: (release, plan, …, now) → Outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bot.domain import (
    SYSTEM,
    Actor,
    AlertLink,
    CancelTimer,
    Conflict,
    Decision,
    Effect,
    Event,
    Issue,
    IssueStatus,
    NotFound,
    Outcome,
    Page,
    Post,
    Refresh,
    Release,
    ReleaseStatus,
    SetTimer,
)
from bot.lifecycle import ASKED, PointChoice, evaluation_key, evaluation_kind, rollback
from bot.paging import open_page, stop_pages
from bot.permissions import Action, authorize, required
from bot.plan import Plan
from bot.timers import timer_rule

DECIDE_WITHIN = timedelta(minutes=5)
"""The reference: a rollback decision must be made within 5 minutes."""
OVERDUE_RULE = "rollback.evaluation_overdue"


@dataclass(frozen=True, slots=True)
class AnswerEvaluation:
    """*Continue* or *Roll back* on a critical issue's evaluation prompt."""

    issue_number: int
    choice: PointChoice
    reason: str = ""


def ask(release: Release, issue: Issue, now: datetime) -> Outcome:
    """For a critical issue during the deployment: post the prompt and start the five-minute clock."""
    if release.status is not ReleaseStatus.IN_PROGRESS:
        return Outcome(release)
    asked = Decision(evaluation_kind(issue.number), ASKED, "", SYSTEM.user_id, now)
    updated = replace(release, decisions=(*release.decisions, asked))
    event = Event(
        "rollback.evaluation_asked",
        now,
        SYSTEM.user_id,
        f"issue:{issue.number}",
        {"decide_by": (now + DECIDE_WITHIN).isoformat()},
    )
    key = evaluation_key(issue.number)
    effects: tuple[Effect, ...] = (
        Post("war_room", "rollback_evaluation", {"issue": issue.number}, key=key),
        SetTimer(key, now + DECIDE_WITHIN, OVERDUE_RULE, {"issue": issue.number}),
    )
    return Outcome(updated, (event,), effects)


def answer(release: Release, plan: Plan, actor: Actor, command: AnswerEvaluation, now: datetime) -> Outcome:
    """Record *Continue*, or roll back with the issue as the reason; either way the prompt closes."""
    authorize(plan, actor, Action.ROLLBACK)
    number = command.issue_number
    issue = release.issue(number)
    if issue is None:
        raise NotFound(f"There is no issue #{number} in {release.id}.")
    asked = release.decision(evaluation_kind(number))
    if asked is None:
        raise Conflict(f"Issue #{number} was not put up for a rollback decision.")
    if asked.outcome != ASKED:
        label = "continue" if asked.outcome == PointChoice.CONTINUE else "roll back"
        raise Conflict(
            f"Issue #{number} was already decided: {label}, by <@{asked.decided_by}> at {asked.at:%H:%M} UTC."
        )
    if release.status is not ReleaseStatus.IN_PROGRESS:
        raise Conflict(f"The release is {release.status.value.replace('_', ' ')}; there is nothing to decide.")
    trigger = alert_trigger(release, number)
    if trigger is not None:  # the question an alert raised: the trigger is the reason
        since = f"{trigger.starts_at:%H:%M} UTC"
        rollback_reason = f"Rollback trigger “{trigger.trigger}”: {trigger.name} firing since {since} (issue #{number})"
        continue_reason = f"Continue while {trigger.name} fires (rollback trigger “{trigger.trigger}”, issue #{number})"
    else:
        rollback_reason = f"Critical issue #{number}: {issue.impact}"
        continue_reason = f"Continue after critical issue #{number}"
    reason = command.reason.strip() or (rollback_reason if command.choice is PointChoice.ROLLBACK else continue_reason)
    decision = Decision(evaluation_kind(number), command.choice.value, reason, actor.user_id, now)
    stopped = stop_pages(  # the page sent because nobody had answered (see `overdue`) has its answer now
        replace(release, decisions=(*release.decisions, decision)),
        plan,
        now,
        which=lambda p: is_overdue_page(p, number),
        reason=f"the rollback decision for issue #{number} was made",
    )
    marked = stopped.release
    closing: tuple[Effect, ...] = (
        Refresh(evaluation_key(number)),
        CancelTimer(evaluation_key(number)),
        *stopped.effects,
    )
    if command.choice is PointChoice.ROLLBACK:
        rolled = rollback(marked, plan, actor, now, reason)
        effects = rolled.effects + tuple(e for e in closing if e not in rolled.effects)
        return Outcome(rolled.release, (*stopped.events, *rolled.events), effects, rolled.reply)
    event = Event("rollback.continued", now, actor.user_id, f"issue:{number}", {"reason": reason})
    updated = replace(marked, revision=release.revision + 1)
    reply = f"Recorded: continue after issue #{number}. The prompt is updated."
    return Outcome(updated, (*stopped.events, event), closing, reply)


def alert_trigger(release: Release, issue_number: int) -> AlertLink | None:
    """The alert that stands for a rollback trigger and opened this issue, if one did."""
    return next((a for a in release.alerts if a.issue_number == issue_number and a.trigger), None)


def is_overdue_page(page: Page, issue_number: int) -> bool:
    """The page `overdue` sent for this issue: by Warroom itself, to people rather than a ladder level."""
    return page.issue_number == issue_number and page.created_by == SYSTEM.user_id and page.level is None


def deciders(plan: Plan) -> tuple[str, ...]:
    """Everyone who may answer the prompt (the release manager, and the final authority if the plan has one)."""
    roles = required(plan, Action.ROLLBACK)
    return tuple(plan.members(sorted(roles) if isinstance(roles, set) else [roles]))


@timer_rule(OVERDUE_RULE)
def overdue(release: Release, plan: Plan, now: datetime, data: dict[str, Any]) -> Outcome:
    """Five minutes without an answer: page the people who may decide (unless the issue is resolved)."""
    number = int(data["issue"])
    asked = release.decision(evaluation_kind(number))
    issue = release.issue(number)
    if (
        asked is None
        or asked.outcome != ASKED
        or issue is None
        or issue.status is not IssueStatus.OPEN
        or release.status is not ReleaseStatus.IN_PROGRESS
    ):
        return Outcome(release)
    targets = deciders(plan)
    event = Event("rollback.evaluation_overdue", now, SYSTEM.user_id, f"issue:{number}", {"paged": list(targets)})
    if not targets:
        return Outcome(release, (event,))
    paged = open_page(
        release,
        plan,
        SYSTEM.user_id,
        now,
        level=None,
        targets=targets,
        reason=f"No rollback decision {int(DECIDE_WITHIN.total_seconds() // 60)} minutes after critical issue "
        f"#{number}: {issue.impact}"[:2000],
        issue_number=number,
        label="the rollback deciders",
    )
    return Outcome(paged.release, (event, *paged.events), (*paged.effects, Refresh(evaluation_key(number))))
