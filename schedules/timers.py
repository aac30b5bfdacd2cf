"""The timers a plan asks for — the start at T0, the go/no-go vote, the rollback decision point, the checks,
the day-team handoff and the post-deployment follow-ups —
armed when the plan loads (again at every start: `repo.arm_timer` never re-runs one that already fired)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.checks import CHECKS_RULE, CHECKS_TIMER, first_tick
from bot.core.handoff import FOLLOW_UP_RULE, HANDOFF_RULE, HANDOFF_TIMER, follow_up_key
from bot.domain import NOT_STARTED, Release, ReleaseStatus, SetTimer
from bot.plan import Plan
from bot.votes import DEADLINE_TIMER, DECISION_POINT_TIMER, OPEN_TIMER, T0_TIMER, go_decision
from storage import repo


async def arm_plan_timers(session: AsyncSession, plan: Plan, release: Release, now: datetime) -> None:
    """The automatic start at T0, the vote's opening and deadline, and the rollback decision point."""

    async def arm(key: str, at: datetime, rule: str, data: dict[str, Any] | None = None) -> None:
        await repo.arm_timer(session=session, release_id=plan.id, timer=SetTimer(key, at, rule, data or {}))

    if release.status in NOT_STARTED:
        await arm(T0_TIMER, plan.t0, "release.t0")
    spec = plan.go_no_go
    if spec is not None and release.status in NOT_STARTED and go_decision(release) is None:
        await arm(OPEN_TIMER, plan.at(spec.at), "gonogo.open")
        await arm(DEADLINE_TIMER, plan.at(spec.deadline), "gonogo.deadline")
    point = plan.rollback.decision_point
    if point is not None and release.status in {ReleaseStatus.SCHEDULED, ReleaseStatus.IN_PROGRESS}:
        await arm(DECISION_POINT_TIMER, plan.at(point), "rollback.decision_point")
    tick = first_tick(plan, release, now)
    if tick is not None:
        await arm(CHECKS_TIMER, tick, CHECKS_RULE)
    # the rules decide at their time whether the release went ahead (and say on the timeline when it did not)
    if plan.handoff is not None:
        await arm(HANDOFF_TIMER, plan.at(plan.handoff.at), HANDOFF_RULE)
    for number, follow_up in enumerate(plan.follow_ups, start=1):
        await arm(follow_up_key(number), plan.at(follow_up.at), FOLLOW_UP_RULE, {"number": number})
