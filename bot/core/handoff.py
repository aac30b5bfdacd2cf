"""The day-team handoff and the post-deployment reminders. Pure: (release, plan, …, now) → Outcome.

At `handoff.at` (a timer) or on `/release handoff` the war room gets a summary for the day team; the
receiving role (`handoff.to`) accepts it, and from then on escalation level 1 pages the day team's
on-call roles (`handoff.oncall`, by default the receiving role). A release that never went ahead
(still scheduled, postponed, aborted) has nothing to hand over: the handoff is not posted, and the
timeline says why. The plan's `follow_ups` are reminded to their owners at their time, only when the
release went ahead.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from bot.domain import (
    SYSTEM,
    Actor,
    Conflict,
    Event,
    Outcome,
    Page,
    PageStatus,
    Post,
    Refresh,
    Release,
    ReleaseStatus,
)
from bot.permissions import Action, authorize
from bot.plan import EscalationLevel, HandoffSpec, Plan
from bot.timers import timer_rule

HANDOFF_KEY = "handoff"
"""Outbox key of the handoff summary in the war room."""
HANDOFF_ACCEPTED_KEY = "handoff:accepted"
HANDOFF_TIMER = "handoff"
HANDOFF_RULE = "handoff.post"
FOLLOW_UP_RULE = "follow_up.remind"
WENT_AHEAD = frozenset(
    {ReleaseStatus.IN_PROGRESS, ReleaseStatus.ROLLING_BACK, ReleaseStatus.COMPLETED, ReleaseStatus.ROLLED_BACK}
)
"""A release that started: what it did can be handed over, and its follow-ups are due."""


def follow_up_key(number: int) -> str:
    """Outbox key (and timer key) of follow-up `number` (1-based, in plan order)."""
    return f"follow_up:{number}"


def plan_timer_keys(plan: Plan) -> tuple[str, ...]:
    """The keys of the handoff and follow-up timers a plan arms (see schedules/timers.py)."""
    keys = (HANDOFF_TIMER,) if plan.handoff is not None else ()
    return keys + tuple(follow_up_key(n) for n in range(1, len(plan.follow_ups) + 1))


def oncall_roles(handoff: HandoffSpec) -> list[str]:
    """Who is on call once the handoff is accepted: `handoff.oncall`, else the receiving role."""
    return list(handoff.oncall) if handoff.oncall else [handoff.to]


def level_roles(plan: Plan, release: Release, spec: EscalationLevel) -> list[str]:
    """The roles a page at escalation level `spec` notifies: the plan's, except that the first level
    pages the day team's on-call roles once the handoff was accepted (on-call responsibility moved)."""
    first = min((lvl.level for lvl in plan.escalation), default=None)
    if spec.level == first and plan.handoff is not None and release.handoff_accepted_at is not None:
        return oncall_roles(plan.handoff)
    return list(spec.notify)


def unanswered_pages(release: Release) -> list[Page]:
    """Pages nobody acknowledged: still climbing, or at the end of their ladder (exhausted)."""
    return [p for p in release.pages if p.status in {PageStatus.OPEN, PageStatus.EXHAUSTED}]


def _status(release: Release) -> str:
    return release.status.value.replace("_", " ")


def _not_ahead(release: Release) -> str:
    if release.status is ReleaseStatus.ABORTED:
        return "the release was aborted"
    return f"the release is {_status(release)} and never started"


def post_handoff(release: Release, plan: Plan, actor: Actor, now: datetime) -> Outcome:
    """The handoff summary in the war room, once; by the release manager (`/release handoff`) or at its time."""
    authorize(plan, actor, Action.POST_HANDOFF)
    spec = plan.handoff
    if spec is None:
        raise Conflict("This plan has no handoff: add `handoff: {at: +8h, to: ROLE}` to the plan.")
    if release.status not in WENT_AHEAD:
        raise Conflict(f"There is nothing to hand over: {_not_ahead(release)}.")
    if release.handoff_posted_at is not None:
        return Outcome(
            release,
            effects=(Refresh(HANDOFF_KEY),),
            reply="The handoff is already in the war room; it is brought up to date there.",
        )
    open_pages = [p.number for p in unanswered_pages(release)]
    updated = replace(release, handoff_posted_at=now, revision=release.revision + 1)
    data = {"to": spec.to, "open_issues": [i.number for i in release.open_issues], "open_pages": open_pages}
    event = Event("handoff.posted", now, actor.user_id, data=data)
    title = spec.to.replace("_", " ")
    reply = f"The handoff is posted in the war room; the {title} accepts it with its button."
    return Outcome(updated, (event,), (Post("war_room", "handoff", {}, key=HANDOFF_KEY),), reply)


@timer_rule(HANDOFF_RULE)
def handoff_due(release: Release, plan: Plan, now: datetime, data: dict[str, Any]) -> Outcome:
    """At `handoff.at`: post the handoff if the release went ahead; otherwise say on the timeline why not."""
    if plan.handoff is None or release.handoff_posted_at is not None:
        return Outcome(release)
    if release.status not in WENT_AHEAD:
        event = Event("handoff.skipped", now, SYSTEM.user_id, data={"reason": _not_ahead(release)})
        return Outcome(release, (event,))
    return post_handoff(release, plan, SYSTEM, now)


def accept_handoff(release: Release, plan: Plan, actor: Actor, now: datetime) -> Outcome:
    """The receiving role accepts: on-call responsibility moves to the day team's on-call roles."""
    spec = plan.handoff
    if spec is None:
        raise Conflict("This plan has no handoff.")
    authorize(plan, actor, Action.ACCEPT_HANDOFF)
    if release.handoff_posted_at is None:
        raise Conflict("The handoff is not posted yet: it comes at its time, or with `/release handoff`.")
    if release.handoff_accepted_at is not None:
        raise Conflict(
            f"The handoff was already accepted by <@{release.handoff_accepted_by}> "
            f"at {release.handoff_accepted_at:%H:%M} UTC."
        )
    oncall = oncall_roles(spec)
    updated = replace(
        release, handoff_accepted_by=actor.user_id, handoff_accepted_at=now, revision=release.revision + 1
    )
    event = Event("handoff.accepted", now, actor.user_id, spec.to, {"oncall": oncall})
    effects = (Refresh(HANDOFF_KEY), Post("war_room", "handoff_accepted", {}, key=HANDOFF_ACCEPTED_KEY))
    roles = ", ".join(r.replace("_", " ") for r in oncall)
    reply = f"You accepted the handoff. Escalation level 1 now pages {roles}."
    return Outcome(updated, (event,), effects, reply)


@timer_rule(FOLLOW_UP_RULE)
def follow_up_due(release: Release, plan: Plan, now: datetime, data: dict[str, Any]) -> Outcome:
    """A post-deployment follow-up at its time: reminded to its owners, only if the release went ahead."""
    number = int(data.get("number", 0))
    if not 1 <= number <= len(plan.follow_ups):
        return Outcome(release)  # the plan changed meanwhile and no longer lists it
    spec = plan.follow_ups[number - 1]
    if release.status not in WENT_AHEAD:
        event = Event("follow_up.skipped", now, SYSTEM.user_id, spec.task, {"reason": _not_ahead(release)})
        return Outcome(release, (event,))
    event = Event("follow_up.reminded", now, SYSTEM.user_id, spec.task, {"owner": list(spec.owner)})
    post = Post(spec.channel, "follow_up", {"number": number}, key=follow_up_key(number))
    return Outcome(release, (event,), (post,))
