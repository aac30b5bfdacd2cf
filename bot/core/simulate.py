"""A release as it would stand at a given moment if everything went exactly to plan."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from bot.domain import PhaseStatus, Release, ReleaseStatus


def on_plan(release: Release, at: datetime) -> Release:
    """The release at `at` if everything runs to plan: each phase in progress during its slot and done at
    its planned end; the release started at T0 and completed at the window's end (the end the plan
    promises). A moment exactly at the end sees it completed: a final status due then reports the end."""
    phases = []
    for p in release.phases:
        if p.planned_end <= at:
            p = replace(p, status=PhaseStatus.DONE, started_at=p.planned_start, finished_at=p.planned_end)
        elif p.planned_start <= at:
            p = replace(p, status=PhaseStatus.IN_PROGRESS, started_at=p.planned_start)
        phases.append(p)
    if at < release.window_start:
        return replace(release, phases=tuple(phases))
    started = replace(release, phases=tuple(phases), started_at=release.window_start)
    if at >= release.window_end:
        return replace(started, status=ReleaseStatus.COMPLETED, ended_at=release.window_end)
    return replace(started, status=ReleaseStatus.IN_PROGRESS)
