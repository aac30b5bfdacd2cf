"""The report finds each phase's, issue's, page's and announcement's events in the timeline by subject."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from bot.domain import Event, Issue, Page, PhaseStatus, Severity
from bot.plan import Plan
from bot.report import report
from bot.rules import release_from_plan
from storage.repo import OutboxItem
from tests.conftest import T0


def test_each_row_gets_its_own_subjects_events_first_or_last_as_the_report_says(plan: Plan) -> None:
    first, second = release_from_plan(plan).phases[:2]
    release = replace(
        release_from_plan(plan),
        phases=(replace(first, status=PhaseStatus.DONE), replace(second, status=PhaseStatus.DONE)),
        issues=(Issue(1, Severity.HIGH, "api", "slow", "U0DEV", T0), Issue(2, Severity.LOW, "web", "odd", "U0DEV", T0)),
        pages=(Page(1, 1, ("U0DBA",), "why", "U0RM", T0), Page(2, 1, ("U0DBA",), "why", "U0RM", T0)),
    )

    def at(minutes: int) -> Event:
        return Event("other", T0 + timedelta(minutes=minutes), "U0DBA")

    timeline = [
        replace(at(1), kind="phase.done", subject=first.id, data={"open_tasks": ["first try"]}),
        replace(at(2), kind="issue.investigating", subject="issue:2"),
        replace(at(3), kind="page.escalated", subject="page:1", data={"to": 3}),
        replace(at(4), kind="phase.done", subject=first.id, data={"open_tasks": ["retried"]}),
        replace(at(5), kind="issue.investigating", subject="issue:2"),
        replace(at(6), kind="page.escalated", subject="page:1", data={"to": 2}),
        replace(at(7), kind="message.posted", subject="announcement:start"),
        replace(at(8), kind="message.posted", subject="announcement:start"),
    ]
    outbox = [
        OutboxItem(1, release.id, "announcement:start", "announcement", "C0ANN", "t", {}, None, T0, None, "sent", 1)
    ]
    data = report(release, timeline, plan, outbox)
    assert [p["open_at_finish"] for p in data["phases"]] == [["retried"], []]
    assert [i["investigating_at"] for i in data["issues"]] == [None, (T0 + timedelta(minutes=2)).isoformat()]
    assert [p["levels_reached"] for p in data["pages"]] == [[1, 3, 2], [1]]
    assert [a["sent_at"] for a in data["announcements"]] == [(T0 + timedelta(minutes=7)).isoformat()]
