"""What Warroom will do next for a release: its pending messages and timers, in time order (`/release schedule`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from bot.core.handoff import FOLLOW_UP_RULE
from bot.evaluation import OVERDUE_RULE
from bot.paging import CLIMB_RULE
from bot.service import Service
from storage import repo
from storage.repo import OutboxItem, Timer

TIMER_LABELS = {
    "release.t0": "T0: the release starts if the go/no-go decision is Go (or the plan has no vote)",
    "gonogo.open": "The go/no-go vote opens",
    "gonogo.deadline": "Go/no-go deadline: missing voters are reminded",
    "gonogo.auto_no_go": "Votes still missing become a No-Go unless the final authority decides",
    "rollback.decision_point": "Rollback decision point: the release manager is asked to continue or roll back",
    "handoff.post": "Day-team handoff: the summary is posted in the war room (if the release started)",
}


@dataclass(frozen=True, slots=True)
class Upcoming:
    at: datetime
    what: str
    channel: str = ""
    """A plan channel key or a Slack ID, for messages; empty for timers."""


async def upcoming_for(service: Service, release_id: str) -> list[Upcoming]:
    """The release's pending messages and timers, read from the database."""
    async with service.sessions() as session:
        items = await repo.outbox(session=session, release_id=release_id)
        timers = await repo.timers(session=session, release_id=release_id)
    return upcoming(items, timers)


def upcoming(items: Iterable[OutboxItem], timers: Iterable[Timer]) -> list[Upcoming]:
    """Pending messages and timers in time order; each channel's status updates folded into one line (the next,
    and how many)."""
    items = list(items)
    entries: list[Upcoming] = []
    streams: dict[str, list[OutboxItem]] = {}
    for item in sorted((i for i in items if i.status == "pending" and i.kind == "status"), key=lambda i: i.due_at):
        streams.setdefault(item.channel, []).append(item)
    for status in streams.values():
        more = f", then {len(status) - 1} more" if len(status) > 1 else ""
        entries.append(Upcoming(status[0].due_at, f"Status update{more}", status[0].channel))
    for item in items:
        if item.status == "pending" and item.kind in {"announcement", "post"}:
            entries.append(Upcoming(item.due_at, _message_label(item), item.channel))
    entries += [Upcoming(t.at, _timer_label(t)) for t in timers]
    return sorted(entries, key=lambda e: e.at)


def _message_label(item: OutboxItem) -> str:
    if item.kind == "announcement":
        name = item.key.split(":")[1]
        kind = "inline text" if item.template == "inline" else item.template.replace("_", " ")
        retry = f" (retrying: {item.error[:120]})" if item.attempts else ""
        return f"Announcement `{name}` ({kind}){retry}"
    return f"Message `{item.key}` ({item.template.replace('_', ' ')})"


def _timer_label(timer: Timer) -> str:
    if timer.rule == CLIMB_RULE:
        return f"Page #{timer.data.get('page')}: climbs or repeats unless acknowledged"
    if timer.rule == FOLLOW_UP_RULE:
        return f"Follow-up {timer.data.get('number')}: its owners are reminded (if the release went ahead)"
    if timer.rule == OVERDUE_RULE:
        return f"Rollback question for issue #{timer.data.get('issue')} unanswered: the deciders are paged"
    return TIMER_LABELS.get(timer.rule, timer.rule)
