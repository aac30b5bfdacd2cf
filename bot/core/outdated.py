"""Which scheduled messages the release's life has overtaken. Pure: (release, message, now) → reason or None.

A plan's notices are written for a moment in the release's life: a reminder before the window, the
start notice at T0, status updates while the work runs. When the release got there first (it started
early, completed early, was aborted), posting them would tell people something no longer true.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from bot.domain import Release, ReleaseStatus
from bot.timeparse import zone


class Moment(StrEnum):
    """The moment in a release's life a scheduled message speaks of."""

    BEFORE_START = "before_start"
    """Advance notices, reminders, final notices: the work is still to come."""
    ASSEMBLY = "assembly"
    """The call to the war room: the work is about to start or running."""
    START = "start"
    """The start notice: the work has just started."""
    RUNNING = "running"
    """Status updates: the work is under way."""
    COMPLETION = "completion"
    """The completion notice: the work is done."""
    ANY = "any"
    """Everything else (inline text, summaries): the plan's author knows; never judged here."""


TEMPLATE_MOMENTS = {
    "advance_notice": Moment.BEFORE_START,
    "reminder": Moment.BEFORE_START,
    "final_notice": Moment.BEFORE_START,
    "team_assembly": Moment.ASSEMBLY,
    "deployment_start": Moment.START,
    "deployment_complete": Moment.COMPLETION,
}
FINISHED = {ReleaseStatus.COMPLETED, ReleaseStatus.ROLLED_BACK, ReleaseStatus.ABORTED}
STARTED = {ReleaseStatus.IN_PROGRESS, ReleaseStatus.ROLLING_BACK, ReleaseStatus.COMPLETED, ReleaseStatus.ROLLED_BACK}


def moment_of(kind: str, template: str) -> Moment:
    """The moment a scheduled outbox item speaks of: status updates, or a plan announcement's template.

    Messages the rules post as a change happens (`post`, `update`) are current by construction.
    """
    if kind == "status":
        return Moment.RUNNING
    if kind == "announcement":
        return TEMPLATE_MOMENTS.get(template, Moment.ANY)
    return Moment.ANY


def _when(at: datetime | None, tz: str) -> str:
    """` at 2026-12-05 17:00 EST`: in the plan's zone, as the timeline and the export speak it."""
    return f" at {at.astimezone(zone(tz)):%Y-%m-%d %H:%M %Z}" if at is not None else ""


def _state(release: Release) -> str:
    status = release.status
    text = status.value.replace("_", " ")
    if status in FINISHED:
        was = "was " if status is ReleaseStatus.ABORTED else ""
        return f"the release {was}{text}{_when(release.ended_at, release.timezone)}"
    if status is ReleaseStatus.IN_PROGRESS:
        return f"the release started{_when(release.started_at, release.timezone)}"
    return f"the release is {text}"


def out_of_date(release: Release, kind: str, template: str, now: datetime) -> str | None:
    """Why a due scheduled message must not go out now, or None when it is still true to send it."""
    moment = moment_of(kind, template)
    status = release.status
    match moment:
        case Moment.RUNNING if status is not ReleaseStatus.IN_PROGRESS:
            return f"{_state(release)}; status updates run only while it is in progress"
        case Moment.BEFORE_START if status in STARTED or status is ReleaseStatus.ABORTED:
            return f"{_state(release)}; this notice was for before the start"
        case Moment.BEFORE_START if now >= release.window_start:
            return f"the window began{_when(release.window_start, release.timezone)}; this notice was for before it"
        case Moment.ASSEMBLY if status in FINISHED:
            return f"{_state(release)}; there is no team to assemble"
        case Moment.ASSEMBLY if now >= release.window_end:
            return f"the window ended{_when(release.window_end, release.timezone)}; there is no team to assemble"
        case Moment.START if status in FINISHED:
            return f"{_state(release)}; a start notice now would be out of date"
        case Moment.START if status is ReleaseStatus.POSTPONED:
            return "the release is postponed and has not started; a start notice would not be true"
        case Moment.COMPLETION if status is not ReleaseStatus.COMPLETED:
            return f"{_state(release)}; it has not completed, so a completion notice would not be true"
    return None
