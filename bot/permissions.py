"""Who may do what: the one table of authorization rules (listed in the README)."""

from __future__ import annotations

from enum import StrEnum

from bot.domain import Actor, NotAllowed
from bot.plan import Plan


class Action(StrEnum):
    VIEW = "view the status"
    UPDATE_PHASE = "update phases"
    REPORT_ISSUE = "report issues"
    INVESTIGATE_ISSUE = "take an issue"
    RESOLVE_ISSUE = "resolve issues"
    PAGE = "page people"
    ACK_PAGE = "acknowledge pages"
    VOTE = "vote go/no-go"
    OPEN_VOTE = "open the go/no-go vote"
    DECIDE = "decide go/no-go"
    START_RELEASE = "start the release"
    COMPLETE_RELEASE = "complete the release"
    ABORT_RELEASE = "abort the release"
    ROLLBACK = "roll back the release"
    TICK_TASK = "tick a phase's tasks"
    TICK_GO_NO_GO = "tick the go/no-go checklist"
    REQUEST_REPORT = "upload the post-mortem report"
    REQUEST_SIGNOFFS = "post the sign-off table"
    SIGN_OFF = "sign off"
    POST_HANDOFF = "post the day-team handoff"
    ACCEPT_HANDOFF = "accept the day-team handoff"


ANYONE = "anyone"
IN_PLAN = "anyone listed in the plan's people"
RELEASE_MANAGER = "release_manager"


def _lifecycle(plan: Plan) -> set[str]:
    roles = {RELEASE_MANAGER}
    if plan.go_no_go is not None:
        roles.add(plan.go_no_go.final_authority)
    return roles


def required(plan: Plan, action: Action) -> str | set[str]:
    """The roles that may take `action` under `plan` (or ANYONE / IN_PLAN)."""
    match action:
        case Action.VIEW | Action.REPORT_ISSUE:
            return ANYONE
        case Action.UPDATE_PHASE | Action.INVESTIGATE_ISSUE | Action.RESOLVE_ISSUE | Action.PAGE:
            return IN_PLAN
        case Action.ACK_PAGE:
            return IN_PLAN
        case Action.REQUEST_REPORT:
            return IN_PLAN
        case Action.VOTE:
            return set(plan.go_no_go.voters) if plan.go_no_go else set()
        case Action.DECIDE:
            return {plan.go_no_go.final_authority} if plan.go_no_go else set()
        case Action.OPEN_VOTE:
            return _lifecycle(plan)
        case Action.TICK_TASK:
            return IN_PLAN  # the phase's owner is in the plan; anyone else in it may tick too (SPEC §8)
        case Action.TICK_GO_NO_GO:
            return (set(plan.go_no_go.voters) if plan.go_no_go else set()) | {RELEASE_MANAGER}
        case Action.REQUEST_SIGNOFFS | Action.POST_HANDOFF:
            return {RELEASE_MANAGER}
        case Action.SIGN_OFF:
            return {s.role for s in plan.signoffs}
        case Action.ACCEPT_HANDOFF:
            return {plan.handoff.to} if plan.handoff else set()
        case _:
            return _lifecycle(plan)


def may(plan: Plan, actor: Actor, action: Action) -> bool:
    """True when `actor` may take `action`."""
    need = required(plan, action)
    if need == ANYONE or actor.scheduled:  # the plan's own schedule acting, never a name a plan can choose
        return True
    if need == IN_PLAN:
        return actor.in_plan
    assert isinstance(need, set)
    return bool(need & actor.roles)


def authorize(plan: Plan, actor: Actor, action: Action) -> None:
    """Raise NotAllowed with an explanation unless `actor` may take `action`."""
    if may(plan, actor, action):
        return
    need = required(plan, action)
    if need == IN_PLAN:
        who = "people listed in the plan"
    elif isinstance(need, set) and need:
        who = "the " + " or ".join(sorted(r.replace("_", " ") for r in need))
    else:
        who = "nobody in this plan"
    raise NotAllowed(
        f"Only {who} may {action.value} for this release. "
        f"Ask the release manager to add you to the plan's people if you should."
    )


def authorize_signoff(plan: Plan, actor: Actor, role: str) -> None:
    """Raise NotAllowed unless `actor` holds `role`: a sign-off is given only by that role's people."""
    if role in actor.roles:
        return
    title = role.replace("_", " ")
    raise NotAllowed(
        f"Only the {title} may sign off as {title} (the plan's `people: {role}`). "
        "Nothing was recorded; ask them to sign, or the release manager to add you to that role."
    )
