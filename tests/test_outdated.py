"""The rule that keeps overtaken scheduled messages from going out: a table of release states and messages."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from bot.core.outdated import Moment, moment_of, out_of_date
from bot.domain import Release, ReleaseStatus
from tests.conftest import T0

BEFORE = T0 - timedelta(hours=3)
RUNNING = T0 + timedelta(hours=1)
AFTER_END = T0 + timedelta(hours=5)
S = ReleaseStatus


def release(status: ReleaseStatus, started: datetime | None = None, ended: datetime | None = None) -> Release:
    base = Release("r1", "Test", "v1", "UTC", T0, T0 + timedelta(hours=4))
    return replace(base, status=status, started_at=started, ended_at=ended)


EARLY = T0 - timedelta(hours=2)
DONE_EARLY = T0 - timedelta(hours=1)


@pytest.mark.parametrize(
    ("state", "kind", "template", "now", "reason"),
    [
        # start notices: true while the release runs, overtaken once it is over or postponed
        (release(S.IN_PROGRESS, EARLY), "announcement", "deployment_start", T0, None),
        (release(S.SCHEDULED), "announcement", "deployment_start", T0, None),
        (release(S.COMPLETED, EARLY, DONE_EARLY), "announcement", "deployment_start", T0, "completed at"),
        (release(S.ROLLED_BACK, EARLY, DONE_EARLY), "announcement", "deployment_start", T0, "rolled back at"),
        (release(S.ABORTED, None, DONE_EARLY), "announcement", "deployment_start", T0, "was aborted at"),
        (release(S.POSTPONED), "announcement", "deployment_start", T0, "postponed"),
        # notices for before the start: overtaken by a start, an end or the window itself
        (release(S.SCHEDULED), "announcement", "final_notice", BEFORE, None),
        (release(S.POSTPONED), "announcement", "reminder", BEFORE, None),
        (release(S.IN_PROGRESS, EARLY), "announcement", "reminder", BEFORE, "started at 2026-12-05 20:00 UTC"),
        (release(S.COMPLETED, EARLY, DONE_EARLY), "announcement", "advance_notice", BEFORE, "completed"),
        (release(S.ABORTED, None, BEFORE), "announcement", "final_notice", BEFORE, "aborted"),
        (release(S.SCHEDULED), "announcement", "final_notice", T0, "window began at 2026-12-05 22:00 UTC"),
        # the assembly call: while there is a team to call
        (release(S.SCHEDULED), "announcement", "team_assembly", BEFORE, None),
        (release(S.IN_PROGRESS, EARLY), "announcement", "team_assembly", BEFORE, None),
        (release(S.ABORTED, None, BEFORE), "announcement", "team_assembly", BEFORE, "no team to assemble"),
        (release(S.COMPLETED, EARLY, DONE_EARLY), "announcement", "team_assembly", BEFORE, "no team to assemble"),
        (release(S.SCHEDULED), "announcement", "team_assembly", AFTER_END, "window ended"),
        # a completion notice the plan schedules: only once the release has completed
        (release(S.IN_PROGRESS, T0), "announcement", "deployment_complete", AFTER_END, "has not completed"),
        (release(S.ROLLED_BACK, T0, RUNNING), "announcement", "deployment_complete", AFTER_END, "rolled back"),
        (release(S.COMPLETED, T0, RUNNING), "announcement", "deployment_complete", AFTER_END, None),
        # status updates: only while in progress
        (release(S.IN_PROGRESS, T0), "status", "status_update", RUNNING, None),
        (release(S.SCHEDULED), "status", "status_update", RUNNING, "is scheduled"),
        (release(S.ROLLING_BACK, T0), "status", "status_update", RUNNING, "rolling back"),
        (release(S.COMPLETED, T0, RUNNING), "status", "status_update", AFTER_END, "only while it is in progress"),
        # anything else is the plan author's, or a change as it happens: never judged here
        (release(S.COMPLETED, T0, RUNNING), "announcement", "inline", AFTER_END, None),
        (release(S.COMPLETED, T0, RUNNING), "announcement", "final_status", AFTER_END, None),
        (release(S.COMPLETED, T0, RUNNING), "post", "deployment_start", AFTER_END, None),
        (release(S.COMPLETED, T0, RUNNING), "update", "vote", AFTER_END, None),
    ],
)
def test_out_of_date(state: Release, kind: str, template: str, now: datetime, reason: str | None) -> None:
    found = out_of_date(state, kind, template, now)
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found


def test_moments() -> None:
    assert moment_of("status", "anything") is Moment.RUNNING
    assert moment_of("announcement", "advance_notice") is Moment.BEFORE_START
    assert moment_of("post", "team_assembly") is Moment.ANY


def test_a_reason_gives_its_times_in_the_plans_zone() -> None:
    """The reason goes on the timeline and into the export, which speak the plan's zone."""
    new_york = replace(release(S.COMPLETED, EARLY, DONE_EARLY), timezone="America/New_York")
    reason = out_of_date(new_york, "announcement", "deployment_start", T0)
    assert reason is not None and "completed at 2026-12-05 16:00 EST" in reason, reason
    waiting = out_of_date(replace(release(S.SCHEDULED), timezone="America/New_York"), "announcement", "reminder", T0)
    assert waiting is not None and "window began at 2026-12-05 17:00 EST" in waiting, waiting
