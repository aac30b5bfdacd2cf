"""Pure release rules: phase transitions, progress, schedule delta, colour, plan reloads."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from bot.domain import (
    Actor,
    Conflict,
    Issue,
    NotAllowed,
    NotFound,
    PhaseStatus,
    Post,
    ReleaseStatus,
    Severity,
    UsageError,
)
from bot.plan import Plan, parse_plan
from bot.rules import (
    ChangePhase,
    Colour,
    PhaseVerb,
    change_phase,
    load_plan_into,
    next_phase,
    progress,
    release_from_plan,
    schedule_delta,
    status_colour,
)
from tests.conftest import T0, plan_text

DBA = Actor("U0DBA", frozenset({"dba"}))
STRANGER = Actor("U0NOBODY")


def with_status(plan: Plan, phase_id: str, status: PhaseStatus):  # type: ignore[no-untyped-def]
    release = release_from_plan(plan)
    phases = tuple(replace(p, status=status) if p.id == phase_id else p for p in release.phases)
    return replace(release, phases=phases)


@pytest.mark.parametrize(
    ("start", "verb", "end"),
    [
        (PhaseStatus.PENDING, PhaseVerb.START, PhaseStatus.IN_PROGRESS),
        (PhaseStatus.PENDING, PhaseVerb.DONE, PhaseStatus.DONE),
        (PhaseStatus.IN_PROGRESS, PhaseVerb.DONE, PhaseStatus.DONE),
        (PhaseStatus.IN_PROGRESS, PhaseVerb.FAIL, PhaseStatus.FAILED),
        (PhaseStatus.PENDING, PhaseVerb.SKIP, PhaseStatus.SKIPPED),
        (PhaseStatus.FAILED, PhaseVerb.START, PhaseStatus.IN_PROGRESS),
        (PhaseStatus.FAILED, PhaseVerb.DONE, PhaseStatus.DONE),
    ],
)
def test_allowed_phase_transitions(plan: Plan, start: PhaseStatus, verb: PhaseVerb, end: PhaseStatus) -> None:
    release = with_status(plan, "db-migration", start)
    outcome = change_phase(release, plan, DBA, ChangePhase(verb, "db-migration", "because"), T0)
    phase = outcome.release.phase("db-migration")
    assert phase is not None and phase.status is end
    assert outcome.release.revision == release.revision + 1
    assert outcome.events[0].subject == "db-migration" and outcome.events[0].actor == "U0DBA"
    assert any(isinstance(e, Post) and e.template == "phase_update" for e in outcome.effects)


@pytest.mark.parametrize(
    ("start", "verb"),
    [
        (PhaseStatus.DONE, PhaseVerb.DONE),
        (PhaseStatus.DONE, PhaseVerb.START),
        (PhaseStatus.IN_PROGRESS, PhaseVerb.START),
        (PhaseStatus.SKIPPED, PhaseVerb.DONE),
        (PhaseStatus.FAILED, PhaseVerb.FAIL),
    ],
)
def test_refused_phase_transitions_change_nothing(plan: Plan, start: PhaseStatus, verb: PhaseVerb) -> None:
    release = with_status(plan, "db-migration", start)
    with pytest.raises(Conflict, match="already"):
        change_phase(release, plan, DBA, ChangePhase(verb, "db-migration", "why"), T0)


def test_start_and_done_record_who_and_when(plan: Plan) -> None:
    release = release_from_plan(plan)
    started = change_phase(release, plan, DBA, ChangePhase(PhaseVerb.START, "db-migration"), T0).release
    done = change_phase(
        started, plan, DBA, ChangePhase(PhaseVerb.DONE, "db-migration", "ok"), T0 + timedelta(minutes=20)
    )
    phase = done.release.phase("db-migration")
    assert phase is not None
    assert (phase.started_at, phase.started_by) == (T0, "U0DBA")
    assert (phase.finished_at, phase.finished_by, phase.note) == (T0 + timedelta(minutes=20), "U0DBA", "ok")
    assert done.events[0].data["late_seconds"] == -600


def test_people_outside_the_plan_may_not_update_phases(plan: Plan) -> None:
    with pytest.raises(NotAllowed, match="Only people listed in the plan"):
        change_phase(release_from_plan(plan), plan, STRANGER, ChangePhase(PhaseVerb.DONE, "db-migration"), T0)


def test_unknown_phase_lists_the_known_ones(plan: Plan) -> None:
    with pytest.raises(NotFound, match="db-migration"):
        change_phase(release_from_plan(plan), plan, DBA, ChangePhase(PhaseVerb.DONE, "db-migratoin"), T0)


def test_fail_and_skip_need_a_reason(plan: Plan) -> None:
    with pytest.raises(UsageError, match="Say why"):
        change_phase(release_from_plan(plan), plan, DBA, ChangePhase(PhaseVerb.FAIL, "db-migration"), T0)


def test_finished_release_refuses_phase_changes(plan: Plan) -> None:
    release = replace(release_from_plan(plan), status=ReleaseStatus.COMPLETED)
    with pytest.raises(Conflict, match="completed"):
        change_phase(release, plan, DBA, ChangePhase(PhaseVerb.DONE, "db-migration"), T0)


def test_progress_weights_phases_by_planned_duration(plan: Plan) -> None:
    release = release_from_plan(plan)
    assert progress(release) == 0
    # pre-deployment is 2h of 3h30m in total
    assert progress(with_status(plan, "pre-deployment", PhaseStatus.DONE)) == 57
    assert progress(with_status(plan, "db-migration", PhaseStatus.SKIPPED)) == 14
    everything = replace(release, phases=tuple(replace(p, status=PhaseStatus.DONE) for p in release.phases))
    assert progress(everything) == 100


def test_phases_may_finish_out_of_order(plan: Plan) -> None:
    release = release_from_plan(plan)
    out = change_phase(release, plan, DBA, ChangePhase(PhaseVerb.DONE, "deploy-region2"), T0)
    assert out.release.phase("deploy-region2").status is PhaseStatus.DONE  # type: ignore[union-attr]
    nxt = next_phase(out.release)
    assert nxt is not None and nxt.id == "pre-deployment"


def test_region_deployed_is_announced_when_a_region_finishes(plan: Plan) -> None:
    out = change_phase(release_from_plan(plan), plan, DBA, ChangePhase(PhaseVerb.DONE, "deploy-region1"), T0)
    regional = [e for e in out.effects if isinstance(e, Post) and e.template == "region_deployed"]
    assert regional and regional[0].data == {"region": "region1"} and regional[0].channel == "announcements"


@pytest.mark.parametrize(
    ("minutes_after_end", "expected"),
    [(-10, timedelta(0)), (5, timedelta(minutes=5)), (20, timedelta(minutes=20))],
)
def test_schedule_delta_counts_overrun_of_unfinished_phases(
    plan: Plan, minutes_after_end: int, expected: timedelta
) -> None:
    release = release_from_plan(plan)
    release = replace(
        release,
        phases=tuple(replace(p, status=PhaseStatus.DONE) if p.id == "pre-deployment" else p for p in release.phases),
    )
    started = change_phase(release, plan, DBA, ChangePhase(PhaseVerb.START, "db-migration"), T0).release
    end = T0 + timedelta(minutes=30)
    assert schedule_delta(started, end + timedelta(minutes=minutes_after_end)) == expected


def test_schedule_delta_is_negative_when_ahead(plan: Plan) -> None:
    out = change_phase(
        release_from_plan(plan),
        plan,
        DBA,
        ChangePhase(PhaseVerb.DONE, "pre-deployment"),
        T0 - timedelta(minutes=30),
    )
    assert schedule_delta(out.release, T0 - timedelta(minutes=30)) == timedelta(minutes=-30)


def _issue(severity: Severity) -> Issue:
    return Issue(1, severity, "api", "5xx", "U0DEV", T0)


@pytest.mark.parametrize(
    ("setup", "colour"),
    [
        ("nothing", Colour.GREEN),
        ("late_5m", Colour.YELLOW),
        ("late_20m", Colour.RED),
        ("medium_issue", Colour.YELLOW),
        ("high_issue", Colour.RED),
        ("critical_issue", Colour.RED),
        ("failed_phase", Colour.RED),
        ("rollback", Colour.RED),
    ],
)
def test_status_colour_is_computed_from_state(plan: Plan, setup: str, colour: Colour) -> None:
    release = release_from_plan(plan)
    release = replace(
        release,
        phases=tuple(replace(p, status=PhaseStatus.DONE) if p.id == "pre-deployment" else p for p in release.phases),
    )
    now = T0 + timedelta(minutes=10)
    if setup.startswith("late"):
        now = T0 + timedelta(minutes=30 + int(setup.split("_")[1].rstrip("m")))
        release = change_phase(release, plan, DBA, ChangePhase(PhaseVerb.START, "db-migration"), T0).release
    elif setup.endswith("issue"):
        release = replace(release, issues=(_issue(Severity(setup.split("_")[0])),))
    elif setup == "failed_phase":
        release = change_phase(release, plan, DBA, ChangePhase(PhaseVerb.FAIL, "db-migration", "boom"), T0).release
    elif setup == "rollback":
        release = replace(release, status=ReleaseStatus.ROLLING_BACK)
    assert status_colour(release, now)[0] is colour


def test_reloading_a_plan_keeps_progress_and_moves_times(plan: Plan) -> None:
    first = load_plan_into(None, plan, T0).release
    done = change_phase(first, plan, DBA, ChangePhase(PhaseVerb.DONE, "db-migration", "ok"), T0).release
    moved_text = plan_text(start=T0 + timedelta(days=1)).replace(
        "  - {id: deploy-region2",
        "  - {id: smoke, name: Smoke, start: +2h, duration: 10m, owner: qa_lead}\n  - {id: deploy-region2",
    )
    moved = parse_plan(moved_text, "moved.yml")
    outcome = load_plan_into(done, moved, T0)
    phase = outcome.release.phase("db-migration")
    assert phase is not None and phase.status is PhaseStatus.DONE and phase.note == "ok"
    assert phase.planned_start == T0 + timedelta(days=1)
    assert outcome.release.phase("smoke") is not None
    assert outcome.events[0].kind == "release.plan_updated"
    assert outcome.events[0].data["phases_added"] == ["smoke"]


def test_reloading_an_unchanged_plan_changes_nothing(plan: Plan) -> None:
    first = load_plan_into(None, plan, T0).release
    again = load_plan_into(first, plan, T0 + timedelta(hours=1))
    assert again.release == first and again.events == ()


def test_a_removed_phase_with_history_is_kept(plan: Plan) -> None:
    first = load_plan_into(None, plan, T0).release
    done = change_phase(first, plan, DBA, ChangePhase(PhaseVerb.DONE, "deploy-region2"), T0).release
    text = plan_text().replace(
        "  - {id: deploy-region2, name: Deploy Region 2, start: +1h, duration: 30m, owner: devops_lead, "
        "region: region2}\n",
        "",
    )
    text = text.replace(
        "  - {id: deploy-region1, name: Deploy Region 1, start: +30m, duration: 30m, owner: devops_lead, "
        "region: region1}\n",
        "",
    )
    outcome = load_plan_into(done, parse_plan(text, "x.yml"), T0)
    ids = [p.id for p in outcome.release.phases]
    assert "deploy-region2" in ids and "deploy-region1" not in ids
