"""A release as it would stand at a given moment if everything went exactly to plan."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from bot.domain import PhaseStatus, Release, ReleaseStatus


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
