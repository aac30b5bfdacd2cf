"""What a plan schedules: announcements and status updates with their deterministic outbox keys (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.domain import attempt_key
from bot.plan import Plan

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
