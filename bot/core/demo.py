"""`warroom run --demo`: try a plan now, without editing it."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.plan import Plan, Window

LEAD = timedelta(minutes=15)
"""How far ahead of the first load the demo's T0 is put: its vote and team call come within minutes."""


def demo_start(now: datetime) -> datetime:
    """T0 for a demo first loaded at `now`: LEAD ahead, on the minute."""
    return (now + LEAD).replace(second=0, microsecond=0) + timedelta(minutes=1)


def demo_plan(plan: Plan, start: datetime, member: str | None) -> Plan:
    """The plan with its window moved to `start` (same length; every time in it follows T0) and, when a
    member is given, that member holding every role in place of the plan's people."""
    length = plan.release.window.end - plan.release.window.start
    release = plan.release.model_copy(update={"window": Window(start=start, end=start + length)})
    people = {role: [member] for role in plan.people} if member else plan.people
    return plan.model_copy(update={"release": release, "people": people})
