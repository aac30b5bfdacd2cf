"""`warroom preview`: every message a plan will post, in time order, without Slack or a database."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from bot.domain import PhaseStatus, Release, ReleaseStatus
from bot.plan import Plan
from bot.rules import release_from_plan
from messages.blocks import Message
from messages.render import compose
from schedules.planned import planned_messages


def on_plan(release: Release, at: datetime) -> Release:
    """The release as it would be at `at` if every phase ran exactly to plan."""
    phases = []
    for p in release.phases:
        if p.planned_end <= at:
            p = replace(p, status=PhaseStatus.DONE, started_at=p.planned_start, finished_at=p.planned_end)
        elif p.planned_start <= at:
            p = replace(p, status=PhaseStatus.IN_PROGRESS, started_at=p.planned_start)
        phases.append(p)
    status = ReleaseStatus.IN_PROGRESS if at >= release.window_start else release.status
    started = release.window_start if at >= release.window_start else None
    return replace(release, phases=tuple(phases), status=status, started_at=started)


@dataclass(frozen=True)
class PreviewItem:
    at: datetime
    key: str
    channel: str
    message: Message
    count: int = 1


def preview(plan: Plan) -> list[PreviewItem]:
    """Announcements as they would render at their time; status updates as one sample and their count."""
    fresh = release_from_plan(plan)
    items: list[PreviewItem] = []
    streams: dict[str, list[tuple[datetime, str, dict[str, object]]]] = {}
    for key, (at, fields) in planned_messages(plan).items():
        if fields["kind"] == "status":
            streams.setdefault(str(fields["channel"]), []).append((at, key, fields))
            continue
        release = on_plan(fresh, at)
        message = compose(plan, str(fields["template"]), release, at, dict(fields["data"]))
        items.append(PreviewItem(at, key, plan.channel(str(fields["channel"])), message))
    for status in streams.values():  # one sample per stream of status updates
        at, key, fields = status[min(1, len(status) - 1)]
        message = compose(plan, str(fields["template"]), on_plan(fresh, at), at, {})
        items.append(PreviewItem(at, key, plan.channel(str(fields["channel"])), message, count=len(status)))
    return sorted(items, key=lambda i: (i.at, i.key))
