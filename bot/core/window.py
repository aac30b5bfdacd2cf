"""Whether a plan's window is still ahead, and what a late load would miss."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.domain import NOT_STARTED, Release
from bot.plan import Path_, Plan
from bot.timeparse import format_duration, format_offset
from bot.votes import AUTO_NO_GO_GRACE


def ended_before_start(plan: Plan, release: Release, now: datetime) -> bool:
    """The window is over and the release never started: it is history, nothing is to be done for it."""
    return release.status in NOT_STARTED and now >= plan.release.window.end


def history_reason(plan: Plan) -> str:
    """Why nothing of an ended window is sent, as recorded for each message."""
    return f"the window ended {local_time(plan, plan.release.window.end)}, before the plan was loaded"


def local_time(plan: Plan, at: datetime) -> str:
    """`Sat 05 Dec 2026 22:00 UTC` in the plan's zone."""
    local = at.astimezone(plan.tz)
    return f"{local:%a %d %b %Y %H:%M} {local.tzname()}"


def ago(delta: timedelta) -> str:
    """`29 days`, `3h 10m`, `10m`."""
    days = int(delta.total_seconds() // 86400)
    return f"{days} days" if days >= 2 else format_duration(delta)


def schedule_warnings(plan: Plan, now: datetime) -> list[tuple[Path_, str]]:
    """What loading the plan at `now` would not do as planned: an ended window, a vote and notices whose
    time has passed. Each with the path of the plan field it concerns."""
    end = plan.release.window.end
    if now >= end:
        return [
            (
                ("release", "window"),
                f"the window ended {local_time(plan, end)}, {ago(now - end)} ago: `warroom run` loads it as "
                "history (no vote, no messages); move release.window to the new date",
            )
        ]
    warnings: list[tuple[Path_, str]] = []
    for index, spec in enumerate(plan.announcements):
        due = plan.at(spec.at)
        grace = spec.grace or plan.grace
        if due + grace < now:
            name = f"announcement {spec.id!r}" if spec.id else f"announcement {index + 1}"
            warnings.append(
                (
                    ("announcements", index),
                    f"{name} was due {local_time(plan, due)} ({format_offset(spec.at)}), past its grace of "
                    f"{format_duration(grace)}: it will be recorded as skipped, not sent",
                )
            )
    vote = plan.go_no_go
    if vote is not None:
        opens, deadline = plan.at(vote.at), plan.at(vote.deadline)
        if deadline <= now:
            warnings.append(
                (
                    ("go_no_go", "deadline"),
                    f"the vote's deadline {local_time(plan, deadline)} ({format_offset(vote.deadline)}) has "
                    "passed: the vote opens when the plan is loaded and missing votes are recorded as No-Go "
                    f"{AUTO_NO_GO_GRACE.total_seconds() / 60:.0f} minutes later",
                )
            )
        elif opens < now:
            warnings.append(
                (
                    ("go_no_go", "at"),
                    f"the vote was to open {local_time(plan, opens)} ({format_offset(vote.at)}), "
                    f"{ago(now - opens)} ago: it opens when the plan is loaded, "
                    f"{format_duration(deadline - now)} before its deadline",
                )
            )
    return warnings
