"""What a plan schedules, written to the outbox: announcements and status updates as rows with deterministic keys."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.handoff import plan_timer_keys
from bot.core.planned import ANNOUNCEMENT, STATUS, planned_messages
from bot.core.window import history_reason
from bot.domain import CancelTimer, Event, Release
from bot.plan import Plan
from bot.votes import DEADLINE_TIMER, DECISION_POINT_TIMER, OPEN_TIMER, T0_TIMER
from storage import repo

log = logging.getLogger(__name__)


async def sync_schedule(session: AsyncSession, plan: Plan, release: Release, now: datetime) -> None:
    """Add the plan's messages to the outbox; move those not yet sent when the plan's times changed."""
    wanted = planned_messages(plan, release.attempt)
    await repo.reschedule_pending(session=session, release_id=plan.id, wanted=wanted, prefixes=(ANNOUNCEMENT, STATUS))
    for key, (due_at, fields) in wanted.items():
        await repo.enqueue(
            session=session,
            release_id=plan.id,
            key=key,
            channel=fields["channel"],
            template=fields["template"],
            data=fields["data"],
            due_at=due_at,
            now=now,
            grace_seconds=fields["grace_seconds"],
            kind=fields["kind"],
        )


async def load_as_history(session: AsyncSession, plan: Plan, release: Release, now: datetime) -> None:
    """A window that ended before the release started: no vote, no DMs, no announcements. Each planned
    message is recorded once as skipped (announcements on the timeline too), the plan's timers are off."""
    reason = history_reason(plan)
    await sync_schedule(session, plan, release, now)
    skipped = await repo.skip_pending(
        session=session, release_id=plan.id, prefixes=(ANNOUNCEMENT, STATUS), reason=reason
    )
    events = [
        Event("message.skipped", now, subject=key, data={"reason": reason})
        for key, kind in skipped
        if kind == "announcement"
    ]
    if skipped:
        events.insert(0, Event("release.loaded_as_history", now, data={"reason": reason, "skipped": len(skipped)}))
    await repo.append_events(session=session, release_id=plan.id, events=events)
    timers = (T0_TIMER, OPEN_TIMER, DEADLINE_TIMER, DECISION_POINT_TIMER, *plan_timer_keys(plan))
    await repo.apply_effects(
        session=session, release_id=plan.id, effects=[CancelTimer(key) for key in timers], now=now, seq="history"
    )
    log.info(
        "release %s: %s; loaded as history: no vote, no DMs, no announcements "
        "(%d scheduled messages recorded as skipped)",
        plan.id,
        reason,
        len(skipped),
    )
