"""`warroom preview`: every message a plan will post, in time order, without Slack or a database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.core.simulate import on_plan
from bot.plan import Plan
from bot.rules import release_from_plan
from messages.blocks import Message
from messages.render import compose
from schedules.planned import planned_messages


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
    status: list[tuple[datetime, str, dict[str, object]]] = []
    for key, (at, fields) in planned_messages(plan).items():
        if fields["kind"] == "status":
            status.append((at, key, fields))
            continue
        release = on_plan(fresh, at)
        message = compose(plan, str(fields["template"]), release, at, dict(fields["data"]))
        items.append(PreviewItem(at, key, plan.channel(str(fields["channel"])), message))
    if status:
        at, key, fields = status[min(1, len(status) - 1)]
        message = compose(plan, str(fields["template"]), on_plan(fresh, at), at, {})
        items.append(PreviewItem(at, key, plan.channel(str(fields["channel"])), message, count=len(status)))
    return sorted(items, key=lambda i: (i.at, i.key))
