"""What a plan schedules: announcements and status updates as outbox rows with deterministic keys."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.handoff import plan_timer_keys
from bot.core.window import history_reason
from bot.domain import CancelTimer, Event, Release, attempt_key
from bot.plan import Plan
from bot.votes import DEADLINE_TIMER, DECISION_POINT_TIMER, OPEN_TIMER, T0_TIMER
from storage import repo

log = logging.getLogger(__name__)

ANNOUNCEMENT = "announcement:"
STATUS = "status:"
INLINE = "inline"


def planned_messages(plan: Plan, attempt: int = 1) -> dict[str, tuple[datetime, dict[str, Any]]]:
    """Every scheduled message of the plan: key → (due time, outbox fields).

    From a release's second attempt (a new window after a No-Go) the keys carry the attempt, so the
    notices go out again for the new date; see `Release.attempt_key`.
    """
    out: dict[str, tuple[datetime, dict[str, Any]]] = {}
    grace = int(plan.grace.total_seconds())
    for index, spec in enumerate(plan.announcements):
        fields = {
            "kind": "announcement",
            "channel": spec.channel,
            "template": spec.template or INLINE,
            "data": {"inline": spec.text} if spec.text is not None else {},
            "grace_seconds": int(spec.grace.total_seconds()) if spec.grace else grace,
        }
        out[plan.announcement_key(index)] = (plan.at(spec.at), fields)
    for index, status_spec in enumerate(plan.status_updates):
        status_grace = int(min(plan.grace, status_spec.every - timedelta(seconds=1)).total_seconds())
        # the first stream keeps the keys a single `status_updates:` always had; the others name their channel
        prefix = STATUS if index == 0 else f"{STATUS}{status_spec.channel.lstrip('#')}:"
        for at in plan.status_update_times(status_spec):
            fields = {
                "kind": "status",
                "channel": status_spec.channel,
                "template": status_spec.template,
                "data": {},
                "grace_seconds": status_grace,
            }
            out[f"{prefix}{at:%Y%m%dT%H%M%SZ}"] = (at, fields)
    return {attempt_key(key, attempt): value for key, value in out.items()}


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
