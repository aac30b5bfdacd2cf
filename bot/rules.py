"""Release rules: pure functions of (state, command, now) → Outcome. No I/O, no clock.

Phase tracking, plan (re)loading and the derived views (progress, schedule delta, what is next, the
status colour) live here. Issues, pages and votes have their own rule modules that follow the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from bot.checklists import left_open, phase_checklist_effects, task_fraction
from bot.domain import (
    GO_NO_GO,
    RESCHEDULED,
    SYSTEM,
    Actor,
    CancelPosts,
    Conflict,
    Decision,
    Effect,
    Event,
    NotFound,
    Outcome,
    Phase,
    PhaseStatus,
    Post,
    Release,
    ReleaseStatus,
    Severity,
    UsageError,
)
from bot.permissions import Action, authorize
from bot.plan import Plan
from bot.timeparse import format_duration

# --- plan loading --------------------------------------------------------------------------------------------


def phases_from_plan(plan: Plan) -> tuple[Phase, ...]:
    """The plan's phases as fresh (pending) state."""
    phases = []
    for position, spec in enumerate(plan.phases):
        start, end = plan.phase_window(spec)
        phases.append(
            Phase(
                id=spec.id,
                name=spec.name,
                position=position,
                planned_start=start,
                planned_end=end,
                owners=tuple(spec.owner),
                region=spec.region,
            )
        )
    return tuple(phases)


def release_from_plan(plan: Plan) -> Release:
    """A new release in its initial state."""
    info = plan.release
    return Release(
        id=info.id,
        name=info.name,
        version=info.version,
        timezone=info.timezone,
        window_start=info.window.start,
        window_end=info.window.end,
        phases=phases_from_plan(plan),
    )


def load_plan_into(existing: Release | None, plan: Plan, now: datetime) -> Outcome:
    """Create the release, or update it from a changed plan without losing what already happened.

    Phases keep their progress; new phases are added pending; a removed phase is dropped only if nothing
    happened to it yet. A moved window moves every planned time. A release postponed by a No-Go whose
    window moves into the future is rescheduled: see `reschedule`.
    """
    fresh = release_from_plan(plan)
    if existing is None:
        event = Event("release.loaded", now, data={"version": plan.release.version, "phases": len(fresh.phases)})
        return Outcome(fresh, (event,))
    old = {p.id: p for p in existing.phases}
    merged: list[Phase] = []
    for phase in fresh.phases:
        before = old.pop(phase.id, None)
        if before is None:
            merged.append(phase)
            continue
        merged.append(
            replace(
                before,
                name=phase.name,
                position=phase.position,
                planned_start=phase.planned_start,
                planned_end=phase.planned_end,
                owners=phase.owners,
                region=phase.region,
            )
        )
    kept_removed = [p for p in old.values() if p.status is not PhaseStatus.PENDING]
    for offset, phase in enumerate(sorted(kept_removed, key=lambda p: p.position)):
        merged.append(replace(phase, position=len(fresh.phases) + offset))
    changes: dict[str, object] = {}
    if existing.window_start != fresh.window_start:
        changes["window_start"] = [existing.window_start.isoformat(), fresh.window_start.isoformat()]
    if existing.version != fresh.version:
        changes["version"] = [existing.version, fresh.version]
    added = [p.id for p in fresh.phases if p.id not in {q.id for q in existing.phases}]
    dropped = [pid for pid, p in old.items() if p.status is PhaseStatus.PENDING]
    if added:
        changes["phases_added"] = added
    if dropped:
        changes["phases_removed"] = dropped
    updated = replace(
        existing,
        name=fresh.name,
        version=fresh.version,
        timezone=fresh.timezone,
        window_start=fresh.window_start,
        window_end=fresh.window_end,
        phases=tuple(merged),
    )
    if updated == existing:
        return Outcome(existing)
    events = (Event("release.plan_updated", now, data=changes),) if changes else ()
    loaded = Outcome(replace(updated, revision=existing.revision + 1), events)
    if existing.status is ReleaseStatus.POSTPONED and "window_start" in changes and fresh.window_start > now:
        return reschedule(loaded, plan, existing.window_start, now)
    return loaded


def reschedule(loaded: Outcome, plan: Plan, previous_start: datetime, now: datetime) -> Outcome:
    """A postponed release with a new window is a new attempt: scheduled again, with a fresh go/no-go vote.

    The attempt's end is recorded as a go/no-go Decision (`rescheduled`), so the earlier No-Go stays in
    the history but no longer decides; ballots are cleared; phases start over (checks done for the old
    date are done again; the timeline keeps what happened); the plan's messages and the vote get keys of
    the new attempt (see `Release.attempt_key`), so notices already sent for the old date go out again
    for the new one. The war room and the announcements channel are told.
    """
    release = loaded.release
    touched = [p.id for p in release.phases if p.status is not PhaseStatus.PENDING]
    closing = Decision(
        GO_NO_GO, RESCHEDULED, f"new window from {release.window_start:%Y-%m-%d %H:%M} UTC", SYSTEM.user_id, now
    )
    updated = replace(
        release,
        status=ReleaseStatus.SCHEDULED,
        phases=phases_from_plan(plan),
        ballots=(),
        task_checks=(),  # the checklists start over with the phases
        decisions=(*release.decisions, closing),
        vote_opened_at=None,
        vote_channel=None,
        vote_ts=None,
    )
    data = {
        "previous_start": previous_start.isoformat(),
        "start": updated.window_start.isoformat(),
        "attempt": updated.attempt,
    }
    event = Event("release.rescheduled", now, SYSTEM.user_id, data={**data, "phases_reset": touched})
    effects = (
        Post("war_room", "rescheduled", data, key=updated.attempt_key("release:rescheduled:war_room")),
        Post("announcements", "rescheduled", data, key=updated.attempt_key("release:rescheduled:announcements")),
    )
    return Outcome(updated, (*loaded.events, event), effects)


# --- phase commands ------------------------------------------------------------------------------------------


class PhaseVerb(StrEnum):
    START = "start"
    DONE = "done"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class ChangePhase:
    verb: PhaseVerb
    phase_id: str
    text: str = ""
    force: bool = False
    """`done` although tasks are open (confirmed, or `--force`): they are recorded as left open."""


_ALLOWED_FROM: dict[PhaseVerb, set[PhaseStatus]] = {
    PhaseVerb.START: {PhaseStatus.PENDING, PhaseStatus.FAILED},
    PhaseVerb.DONE: {PhaseStatus.PENDING, PhaseStatus.IN_PROGRESS, PhaseStatus.FAILED},
    PhaseVerb.FAIL: {PhaseStatus.PENDING, PhaseStatus.IN_PROGRESS},
    PhaseVerb.SKIP: {PhaseStatus.PENDING, PhaseStatus.IN_PROGRESS, PhaseStatus.FAILED},
}
_TARGET = {
    PhaseVerb.START: PhaseStatus.IN_PROGRESS,
    PhaseVerb.DONE: PhaseStatus.DONE,
    PhaseVerb.FAIL: PhaseStatus.FAILED,
    PhaseVerb.SKIP: PhaseStatus.SKIPPED,
}
_EVENT = {
    PhaseVerb.START: "phase.started",
    PhaseVerb.DONE: "phase.done",
    PhaseVerb.FAIL: "phase.failed",
    PhaseVerb.SKIP: "phase.skipped",
}


def change_phase(release: Release, plan: Plan, actor: Actor, command: ChangePhase, now: datetime) -> Outcome:
    """Move a phase through pending → in progress → done/failed/skipped, recording who and when."""
    authorize(plan, actor, Action.UPDATE_PHASE)
    if release.status.finished:
        raise Conflict(
            f"Release {release.id} is {release.status.value.replace('_', ' ')}; phases can no longer change."
        )
    phase = release.phase(command.phase_id)
    if phase is None:
        known = ", ".join(p.id for p in release.phases)
        raise NotFound(f"There is no phase {command.phase_id!r} in {release.id}. Phases: {known}")
    verb = command.verb
    if verb in {PhaseVerb.FAIL, PhaseVerb.SKIP} and not command.text.strip():
        raise UsageError(f"Say why: `/phase {verb.value} {phase.id} REASON`.")
    if phase.status not in _ALLOWED_FROM[verb]:
        when = phase.finished_at or phase.started_at
        since = f" (since {when:%H:%M} UTC)" if when else ""
        raise Conflict(
            f"{phase.name} is already {phase.status.value.replace('_', ' ')}{since}; "
            f"it cannot be marked {_TARGET[verb].value.replace('_', ' ')}."
        )
    target = _TARGET[verb]
    left = left_open(release, plan, phase.id, force=command.force, note=command.text) if verb is PhaseVerb.DONE else {}
    if verb is PhaseVerb.START:
        changed = replace(
            phase, status=target, started_at=now, started_by=actor.user_id, finished_at=None, finished_by=None
        )
    else:
        changed = replace(phase, status=target, finished_at=now, finished_by=actor.user_id, note=command.text.strip())
    phases = tuple(changed if p.id == phase.id else p for p in release.phases)
    updated = replace(release, phases=phases, revision=release.revision + 1)
    data: dict[str, object] = {"phase": phase.id, "from": phase.status.value, "to": target.value}
    if command.text.strip():
        data["note"] = command.text.strip()
    if changed.finished_at and changed.status is PhaseStatus.DONE:
        data["late_seconds"] = int((now - phase.planned_end).total_seconds())
    data.update(left)
    event = Event(_EVENT[verb], now, actor.user_id, phase.id, data)
    post = Post(
        "war_room",
        "phase_update",
        {"phase": phase.id, "verb": verb.value, "by": actor.user_id, "text": command.text.strip(), **left},
    )
    effects: list[Effect] = [post]
    effects += phase_checklist_effects(updated, plan, phase.id, started=verb is PhaseVerb.START, previous=phase.status)
    if (
        verb is PhaseVerb.DONE
        and phase.region
        and all(p.status.finished for p in phases if p.region == phase.region)
        and not all(p.status.finished for p in release.phases if p.region == phase.region)
    ):
        effects.append(Post("announcements", "region_deployed", {"region": phase.region}))
    reply = f"{changed.name}: {target.value.replace('_', ' ')}. Progress {progress(updated, plan)}%."
    if left:
        reply += f" Left open: {len(left['open_task_numbers'])} task(s), recorded on the timeline."
    return Outcome(updated, (event,), tuple(effects), reply)


# --- derived views -------------------------------------------------------------------------------------------


def progress(release: Release, plan: Plan | None = None) -> int:
    """Percent of planned phase time that is done or skipped (whole percent, rounded down).

    Given the plan, a running phase with tasks counts for the share of them ticked (2 of 4: half its time)."""
    total = sum((p.planned_end - p.planned_start for p in release.phases), timedelta(0))
    if total <= timedelta(0):
        return 100 if release.phases and all(p.status.finished for p in release.phases) else 0
    finished = sum((p.planned_end - p.planned_start for p in release.phases if p.status.finished), timedelta(0))
    if plan is not None:
        finished += sum(
            ((p.planned_end - p.planned_start) * task_fraction(release, plan, p.id) for p in current_phases(release)),
            timedelta(0),
        )
    return int(finished / total * 100)


_BEHIND_WHEN_LATE = frozenset({PhaseStatus.IN_PROGRESS, PhaseStatus.PENDING, PhaseStatus.FAILED})
"""A phase in one of these states past its planned end holds the release behind plan."""


def schedule_delta(release: Release, now: datetime) -> timedelta:
    """How far behind plan the release is (positive: behind; negative: ahead; zero: on time)."""
    behind = timedelta(0)
    for phase in release.phases:
        if phase.status in _BEHIND_WHEN_LATE and now > phase.planned_end:
            behind = max(behind, now - phase.planned_end)
    if behind > timedelta(0):
        return behind
    done = PhaseStatus.DONE
    finished = [p for p in release.phases if p.status is done and p.finished_at]
    if finished:
        last = max(finished, key=lambda p: p.finished_at or p.planned_end)
        assert last.finished_at is not None
        return last.finished_at - last.planned_end
    return timedelta(0)


def current_phases(release: Release) -> tuple[Phase, ...]:
    running = PhaseStatus.IN_PROGRESS
    return tuple(p for p in release.phases if p.status is running)


def next_phase(release: Release) -> Phase | None:
    """The earliest planned phase still pending."""
    waiting = PhaseStatus.PENDING
    pending = [p for p in release.phases if p.status is waiting]
    return min(pending, key=lambda p: (p.planned_start, p.position)) if pending else None


class Colour(StrEnum):
    GREEN = "Green"
    YELLOW = "Yellow"
    RED = "Red"


_SERIOUS = frozenset({Severity.CRITICAL, Severity.HIGH})


def status_colour(release: Release, now: datetime) -> tuple[Colour, str]:
    """Green/Yellow/Red as the reference defines them, with the reason. Nobody types it."""
    if release.status in {ReleaseStatus.ROLLING_BACK, ReleaseStatus.ROLLED_BACK}:
        return Colour.RED, "rollback"
    failed = PhaseStatus.FAILED
    first_failed = next((p for p in release.phases if p.status is failed), None)
    if first_failed is not None:
        return Colour.RED, f"phase failed: {first_failed.name}"
    open_issues = release.open_issues
    serious = [i for i in open_issues if i.severity in _SERIOUS]
    if serious:
        return Colour.RED, f"open {serious[0].severity.value} issue #{serious[0].number}"
    delta = schedule_delta(release, now)
    if delta > timedelta(minutes=15):
        return Colour.RED, f"{format_duration(delta)} behind plan"
    if open_issues:
        return Colour.YELLOW, f"{len(open_issues)} open issue(s)"
    if delta > timedelta(minutes=1):
        return Colour.YELLOW, f"{format_duration(delta)} behind plan"
    return Colour.GREEN, "on track"


def postpone_effects(release: Release, now: datetime, reason: str) -> tuple[Effect, ...]:
    """What a No-Go or an abort cancels: everything still to come from T0 on, plus the postponed notice."""
    return (
        CancelPosts(after=release.window_start - timedelta(seconds=1), reason=reason),
        Post(
            "announcements",
            "postponed",
            {"reason": reason, "start": release.window_start.isoformat()},  # the date called off, whatever follows
            key=f"postponed:{release.revision}",
        ),
    )
