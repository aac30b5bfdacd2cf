"""`warroom preview`: every message a plan will post, in time order, without Slack or a database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

import messages.checklist_cards
import messages.signoff_cards  # registers the sign-off, handoff and follow-up builders below
import messages.vote_cards  # noqa: F401 - registers the vote and rollback-prompt builders rendered below
from bot.checklists import checklist_key
from bot.checklists import items as checklist_items
from bot.core.handoff import follow_up_key
from bot.core.planned import planned_messages
from bot.core.signoffs import SIGNOFFS_KEY
from bot.core.simulate import on_plan
from bot.domain import PhaseStatus, Release, ReleaseStatus, TaskCheck
from bot.plan import Plan
from bot.rules import release_from_plan
from bot.votes import AUTO_NO_GO_GRACE
from messages.blocks import Message
from messages.render import compose


@dataclass(frozen=True)
class PreviewItem:
    at: datetime
    key: str
    channel: str
    message: Message
    count: int = 1
    last: datetime | None = None
    """For status updates: the time of the last one (`at` is the first)."""


def _on_plan(plan: Plan) -> Callable[[Release, datetime], Release]:
    """`on_plan`, with every task of a phase that finished on plan ticked (by its owner, at its end)."""

    def at_time(release: Release, at: datetime) -> Release:
        simulated = on_plan(release, at)
        for phase in simulated.phases:
            if phase.status is PhaseStatus.DONE and phase.finished_at is not None:
                owner = (plan.members(list(phase.owners)) or ["warroom"])[0]
                for n, _ in enumerate(checklist_items(plan, phase.id), start=1):
                    simulated = simulated.with_task_check(TaskCheck(phase.id, n, owner, phase.finished_at))
        return simulated

    return at_time


def preview(plan: Plan) -> list[PreviewItem]:
    """Announcements, the vote's opening and deadline reminder, and the rollback decision point as they
    would render at their time if everything goes to plan; status updates as the first and their count;
    each phase's checklist as it is posted when the phase starts on time."""
    fresh = release_from_plan(plan)
    on_plan = _on_plan(plan)
    war_room = plan.channel("war_room")
    items: list[PreviewItem] = []
    streams: dict[str, list[tuple[datetime, str, dict[str, object]]]] = {}
    for key, (at, fields) in planned_messages(plan).items():
        if fields["kind"] == "status":
            streams.setdefault(str(fields["channel"]), []).append((at, key, fields))
            continue
        release = on_plan(fresh, at)
        message = compose(plan, str(fields["template"]), release, at, dict(fields["data"]))
        items.append(PreviewItem(at, key, plan.channel(str(fields["channel"])), message))
    for status in streams.values():  # one sample per stream of status updates: the first
        at, key, fields = status[0]
        message = compose(plan, str(fields["template"]), on_plan(fresh, at), at, {})
        channel = plan.channel(str(fields["channel"]))
        items.append(PreviewItem(at, key, channel, message, count=len(status), last=status[-1][0]))
    if plan.go_no_go is not None:
        opens, deadline = plan.at(plan.go_no_go.at), plan.at(plan.go_no_go.deadline)
        voting = replace(on_plan(fresh, opens), vote_opened_at=opens)
        vote = compose(plan, "gonogo_vote", voting, opens, {"attempt": 1})
        items.append(PreviewItem(opens, "go/no-go vote opens", war_room, vote))
        reminder = {
            "attempt": 1,
            "missing": list(plan.go_no_go.voters),
            "auto_at": (deadline + AUTO_NO_GO_GRACE).isoformat(),
            "deadline": deadline.isoformat(),
        }
        message = compose(
            plan, "gonogo_reminder", replace(on_plan(fresh, deadline), vote_opened_at=opens), deadline, reminder
        )
        key = "go/no-go deadline reminder (only if votes are missing; each missing voter also gets it by DM)"
        items.append(PreviewItem(deadline, key, war_room, message))
    for spec in plan.phases:
        if not spec.tasks:
            continue
        start, _end = plan.phase_window(spec)
        started = on_plan(fresh, start)
        if started.status.finished:  # a phase can start only while the release runs: past the window's end too
            started = replace(started, status=ReleaseStatus.IN_PROGRESS, ended_at=None)
        checklist = compose(plan, "phase_checklist", started, start, {"phase": spec.id})
        key = f"{checklist_key(started, spec.id)} (posted when the phase starts: `/phase start {spec.id}`)"
        items.append(PreviewItem(start, key, war_room, checklist))
    if plan.rollback.decision_point is not None:
        point = plan.at(plan.rollback.decision_point)
        prompt = compose(plan, "rollback_prompt", on_plan(fresh, point), point, {})
        items.append(PreviewItem(point, "rollback decision point: continue or roll back?", war_room, prompt))
    items += _after_the_work(plan, fresh, war_room)
    return sorted(items, key=lambda i: (i.at, i.key))


def _after_the_work(plan: Plan, fresh: Release, war_room: str) -> list[PreviewItem]:
    """The sign-off table at the planned end, the day-team handoff and the follow-ups at their times."""
    items: list[PreviewItem] = []
    if plan.signoffs:
        end = plan.release.window.end
        ended = replace(on_plan(fresh, end), signoffs_requested_at=end)
        table = compose(plan, "signoffs", ended, end, {})
        what = f"{SIGNOFFS_KEY}: the sign-off table (posted when the release completes, here at the planned end)"
        items.append(PreviewItem(end, what, war_room, table))
    if plan.handoff is not None:
        at = plan.at(plan.handoff.at)
        handed = replace(on_plan(fresh, at), handoff_posted_at=at)
        what = "handoff: the day-team handoff (only if the release started)"
        items.append(PreviewItem(at, what, war_room, compose(plan, "handoff", handed, at, {})))
    for number, follow_up in enumerate(plan.follow_ups, start=1):
        at = plan.at(follow_up.at)
        message = compose(plan, "follow_up", on_plan(fresh, at), at, {"number": number})
        what = f"{follow_up_key(number)}: follow-up reminder (only if the release went ahead)"
        items.append(PreviewItem(at, what, plan.channel(follow_up.channel), message))
    return items
