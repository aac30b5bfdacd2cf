"""A release as it would stand at a given moment if everything went exactly to plan."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from bot.domain import Phase, PhaseStatus, Release, ReleaseStatus


def on_plan(release: Release, at: datetime, made: dict[tuple[int, PhaseStatus], Phase] | None = None) -> Release:
    """The release at `at` if everything runs to plan: each phase in progress during its slot and done at
    its planned end; the release started at T0 and completed at the window's end (the end the plan
    promises). A moment exactly at the end sees it completed: a final status due then reports the end.

    `made`: the phases made for earlier moments of the same release, by position and status, to use again
    (a plan's check asks for hundreds of moments)."""
    made = {} if made is None else made
    phases = []
    for index, p in enumerate(release.phases):
        if p.planned_end <= at:
            key = (index, PhaseStatus.DONE)
            if (done := made.get(key)) is None:
                done = made[key] = replace(
                    p, status=PhaseStatus.DONE, started_at=p.planned_start, finished_at=p.planned_end
                )
            p = done
        elif p.planned_start <= at:
            key = (index, PhaseStatus.IN_PROGRESS)
            if (running := made.get(key)) is None:
                running = made[key] = replace(p, status=PhaseStatus.IN_PROGRESS, started_at=p.planned_start)
            p = running
        phases.append(p)
    if at < release.window_start:
        return replace(release, phases=tuple(phases))
    started = replace(release, phases=tuple(phases), started_at=release.window_start)
    if at >= release.window_end:
        return replace(started, status=ReleaseStatus.COMPLETED, ended_at=release.window_end)
    return replace(started, status=ReleaseStatus.IN_PROGRESS)
