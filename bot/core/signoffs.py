"""Required sign-offs (the reference's Go-Live Approval table). Pure: (release, plan, actor, command, now) → Outcome.

The table is asked for when the release completes or is rolled back (and with `/release signoff`). Each
role in `signoffs` signs (with an optional comment) or refuses with a reason; a refusal can be followed
by a signature of the same role, and both stay on the timeline. When every role has signed, the final
approval time and the deployment status (Success, or Rollback) are recorded and announced.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from bot.domain import (
    SYSTEM,
    Actor,
    Conflict,
    Effect,
    Event,
    NotFound,
    Outcome,
    Post,
    Refresh,
    Release,
    ReleaseStatus,
    SignOff,
    SignOffStatus,
    UsageError,
)
from bot.permissions import Action, authorize, authorize_signoff
from bot.plan import Plan, SignOffSpec

SIGNOFFS_KEY = "signoffs"
"""Outbox key of the sign-off table in the war room."""
APPROVED_KEYS = ("signoffs:approved:war_room", "signoffs:approved:announcements")
SIGNABLE = frozenset({ReleaseStatus.COMPLETED, ReleaseStatus.ROLLED_BACK})
"""Sign-offs vouch for the outcome, so they are given once the work is over (completed or rolled back)."""

SIGNOFF_USAGE = (
    "Usage: `/release signoff` (post the sign-off table) · `/release signoff ROLE [comment]` (sign for ROLE) · "
    "`/release signoff refuse ROLE REASON` (add `--release ID` outside the war room)"
)


@dataclass(frozen=True, slots=True)
class RequestSignOffs:
    """`/release signoff`: post the table (or bring the posted one up to date)."""


@dataclass(frozen=True, slots=True)
class Sign:
    role: str
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Refuse:
    role: str
    reason: str


SignOffCommand = RequestSignOffs | Sign | Refuse


def outcome_of(release: Release) -> str:
    """The deployment status the sign-offs approve: `success`, or `rollback` when it was rolled back."""
    return "rollback" if release.status in {ReleaseStatus.ROLLED_BACK, ReleaseStatus.ROLLING_BACK} else "success"


def spec_for(plan: Plan, role: str) -> SignOffSpec:
    """The plan's sign-off of `role` (matched without regard to case), or a NotFound listing them."""
    found = next((s for s in plan.signoffs if s.role.casefold() == role.casefold()), None)
    if found is None:
        roles = ", ".join(f"`{s.role}`" for s in plan.signoffs) or "none (the plan has no `signoffs:`)"
        raise NotFound(f"{role!r} is not a sign-off role of this release. Sign-off roles: {roles}.", SIGNOFF_USAGE)
    return found


def missing(release: Release, plan: Plan) -> list[str]:
    """The roles that have not signed yet (refused ones included), in plan order."""
    return [
        s.role
        for s in plan.signoffs
        if (given := release.signoff(s.role)) is None or given.status is not SignOffStatus.SIGNED
    ]


def parse_signoff(text: str) -> SignOffCommand:
    """`signoff` · `signoff ROLE [comment]` · `signoff refuse ROLE REASON` (text after `/release`)."""
    parts = text.strip().split(None, 1)
    if not parts or parts[0].lower() != "signoff":
        raise UsageError("Not a sign-off command.", SIGNOFF_USAGE)
    rest = parts[1].strip() if len(parts) > 1 else ""
    if not rest:
        return RequestSignOffs()
    words = rest.split(None, 1)
    if words[0].lower() == "refuse":
        args = (words[1] if len(words) > 1 else "").split(None, 1)
        if not args:
            raise UsageError("Which role refuses? `/release signoff refuse ROLE REASON`.", SIGNOFF_USAGE)
        reason = args[1].strip() if len(args) > 1 else ""
        if not reason:
            raise UsageError(f"A refusal needs a reason: `/release signoff refuse {args[0]} REASON`.", SIGNOFF_USAGE)
        return Refuse(args[0], reason[:2000])
    return Sign(words[0], (words[1].strip() if len(words) > 1 else "")[:2000])


def _status(release: Release) -> str:
    return release.status.value.replace("_", " ")


def ask_for_signoffs(release: Release, plan: Plan, now: datetime) -> Outcome:
    """At completion or rollback: post the table when the plan lists sign-offs and it was not posted yet."""
    if not plan.signoffs or release.signoffs_requested_at is not None:
        return Outcome(release)
    updated = replace(release, signoffs_requested_at=now, revision=release.revision + 1)
    event = Event("signoffs.requested", now, data={"roles": [s.role for s in plan.signoffs]})
    return Outcome(updated, (event,), (Post("war_room", "signoffs", {}, key=SIGNOFFS_KEY),))


def decide_signoff(release: Release, plan: Plan, actor: Actor, command: SignOffCommand, now: datetime) -> Outcome:
    """Run a parsed sign-off command (or click)."""
    match command:
        case Sign():
            return sign(release, plan, actor, command, now)
        case Refuse():
            return refuse(release, plan, actor, command, now)
        case _:
            return request_signoffs(release, plan, actor, now)


def request_signoffs(release: Release, plan: Plan, actor: Actor, now: datetime) -> Outcome:
    """`/release signoff` by the release manager: the table in the war room (posted once, updated after)."""
    authorize(plan, actor, Action.REQUEST_SIGNOFFS)
    if not plan.signoffs:
        raise Conflict("This plan lists no sign-offs: add `signoffs:` (role and criterion) to the plan.")
    _require_finished(release)
    if release.signoffs_requested_at is not None:
        return Outcome(
            release,
            effects=(Refresh(SIGNOFFS_KEY),),
            reply="The sign-off table is already in the war room; it is brought up to date there.",
        )
    asked = ask_for_signoffs(release, plan, now)
    event = replace(asked.events[0], actor=actor.user_id)
    return Outcome(asked.release, (event,), asked.effects, "The sign-off table is posted in the war room.")


def _require_finished(release: Release) -> None:
    if release.status in SIGNABLE:
        return
    if release.status is ReleaseStatus.ABORTED:
        raise Conflict("The release was aborted: nothing was deployed, so there is nothing to sign off.")
    raise Conflict(
        f"Sign-offs are given once the release is over; it is {_status(release)}. "
        "They open with `/release complete` (also after a rollback)."
    )


def check_can_answer(release: Release, plan: Plan, actor: Actor, role: str) -> SignOffSpec:
    """Raise unless `actor` may sign or refuse for `role` now (before a form opens); its sign-off spec."""
    return _open_for(release, plan, actor, role)


def _open_for(release: Release, plan: Plan, actor: Actor, role: str) -> SignOffSpec:
    """The sign-off `role` names, checked: a sign-off role, the table open, the actor holding the role."""
    spec = spec_for(plan, role)
    authorize_signoff(plan, actor, spec.role)
    _require_finished(release)
    if release.signoffs_requested_at is None:
        raise Conflict("The sign-offs are not open yet: the release manager posts the table with `/release signoff`.")
    given = release.signoff(spec.role)
    if given is not None and given.status is SignOffStatus.SIGNED:
        raise Conflict(
            f"The {spec.role.replace('_', ' ')} sign-off was already given by <@{given.by}> at {given.at:%H:%M} UTC."
        )
    return spec


def sign(release: Release, plan: Plan, actor: Actor, command: Sign, now: datetime) -> Outcome:
    """The role's sign-off, with an optional comment; the last one records the final approval."""
    spec = _open_for(release, plan, actor, command.role)
    comment = command.comment.strip()
    updated = release.with_signoff(SignOff(spec.role, SignOffStatus.SIGNED, actor.user_id, now, comment))
    events = [Event("signoff.signed", now, actor.user_id, spec.role, {"criterion": spec.criterion, "comment": comment})]
    effects: list[Effect] = [Refresh(SIGNOFFS_KEY)]
    title = spec.role.replace("_", " ")
    reply = f"Signed off as {title}: {spec.criterion}."
    if not missing(updated, plan):
        outcome = outcome_of(updated)
        updated = replace(updated, approved_at=now)
        events.append(
            Event("release.approved", now, SYSTEM.user_id, data={"outcome": outcome, "last_signed_by": actor.user_id})
        )
        data = {"outcome": outcome}
        effects += [
            Post("war_room", "signoffs_approved", data, key=APPROVED_KEYS[0]),
            Post("announcements", "signoffs_approved", {**data, "copy": "announcements"}, key=APPROVED_KEYS[1]),
        ]
        reply += f" That was the last one: the release is approved ({outcome})."
    else:
        reply += f" Still to sign: {', '.join(r.replace('_', ' ') for r in missing(updated, plan))}."
    return Outcome(updated, tuple(events), tuple(effects), reply)


def refuse(release: Release, plan: Plan, actor: Actor, command: Refuse, now: datetime) -> Outcome:
    """The role refuses its sign-off with a reason; it may still sign later (the refusal stays on the timeline)."""
    reason = command.reason.strip()
    if not reason:
        raise UsageError(f"A refusal needs a reason: `/release signoff refuse {command.role} REASON`.", SIGNOFF_USAGE)
    spec = _open_for(release, plan, actor, command.role)
    updated = release.with_signoff(SignOff(spec.role, SignOffStatus.REFUSED, actor.user_id, now, reason))
    event = Event("signoff.refused", now, actor.user_id, spec.role, {"criterion": spec.criterion, "reason": reason})
    reply = (
        f"Refused as {spec.role.replace('_', ' ')}: recorded with your reason. "
        f"Sign later with the table's *Sign* button or `/release signoff {spec.role}`."
    )
    return Outcome(updated, (event,), (Refresh(SIGNOFFS_KEY),), reply)
