"""The post-mortem report: plan vs actual per phase, issues, votes, pages, decisions and the timeline.

Times are in the plan's zone (ISO 8601 with its offset in JSON), durations as people write them, and
each timeline entry is a sentence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from bot.domain import GO_NO_GO_CHECKLIST, Event, PhaseStatus, Release
from bot.rules import progress
from bot.timeparse import format_duration, zone

if TYPE_CHECKING:
    from bot.plan import Plan
    from storage.repo import OutboxItem

SYSTEM_ACTOR = "warroom"

SCHEMA_VERSION = "1.0"
"""`schema_version` of every JSON export: schemas/export-v1.schema.json describes it. A field added keeps
the major version (1.1, 1.2 …); a field removed, renamed or retyped makes it 2.0 with a new schema file."""

ANNOUNCED_KINDS = ("announcement", "status")
"""Outbox kinds the report lists as announcements sent: the plan's own scheduled messages."""
ROLLBACK_EVENTS = frozenset(
    {
        "release.rollback_started",
        "release.rolled_back",
        "rollback.decision_point",
        "rollback.continued",
        "rollback.evaluation_asked",
        "rollback.evaluation_overdue",
    }
)


def against_plan(delta: timedelta | None) -> str | None:
    """`12m late`, `on time` (within a minute), `1h 5m early`; None when there is nothing to compare."""
    if delta is None:
        return None
    if abs(delta) < timedelta(minutes=1):
        return "on time"
    return f"{format_duration(delta)} {'late' if delta > timedelta(0) else 'early'}"


def _duration(seconds: float | None) -> str | None:
    return None if seconds is None else format_duration(timedelta(seconds=seconds))


_SECONDS = re.compile(r"\b(\d+)s\b")


def humane_seconds(text: str) -> str:
    """`due 7230s ago, past its grace of 1800s` → `due 2h 30s ago, past its grace of 30m`."""
    return _SECONDS.sub(lambda m: format_duration(timedelta(seconds=int(m.group(1)))), text)


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    return (later - earlier).total_seconds() if later is not None and earlier is not None else None


_LOOKED_UP = frozenset({"message.posted", "issue.investigating", "phase.done", "page.escalated"})
"""The kinds of event the report looks up per message, issue, phase or page."""


def _by_subject(timeline: list[Event]) -> dict[tuple[str, str | None], list[Event]]:
    """The events of the kinds looked up, by (kind, subject), in timeline order: one pass over a long
    timeline instead of one per phase, issue, page and announcement."""
    index: dict[tuple[str, str | None], list[Event]] = {}
    for e in timeline:
        if e.kind in _LOOKED_UP:
            index.setdefault((e.kind, e.subject), []).append(e)
    return index


def _first(index: dict[tuple[str, str | None], list[Event]], kind: str, subject: str) -> Event | None:
    found = index.get((kind, subject))
    return found[0] if found else None


def _tasks(
    release: Release, scope: str, texts: list[str], iso: Callable[[datetime | None], str | None]
) -> list[dict[str, Any]]:
    """A checklist as the plan lists it, each item with who ticked it and when (None: still open)."""
    checked = release.checked(scope)
    numbers = sorted(set(range(1, len(texts) + 1)) | set(checked))
    rows = []
    for n in numbers:
        check = checked.get(n)
        rows.append(
            {
                "number": n,
                "task": texts[n - 1] if n <= len(texts) else None,
                "done": check is not None,
                "done_by": check.done_by if check else None,
                "at": iso(check.at) if check else None,
                "note": check.note if check else "",
            }
        )
    return rows


def _phase_row(
    release: Release,
    p: Any,
    plan: Plan | None,
    index: dict[tuple[str, str | None], list[Event]],
    iso: Callable[[datetime | None], str | None],
) -> dict[str, Any]:
    late = p.finished_at - p.planned_end if p.finished_at and p.status is PhaseStatus.DONE else None
    spec = plan.phase_spec(p.id) if plan is not None else None
    tasks = _tasks(release, p.id, list(spec.tasks) if spec else [], iso)
    done_events = index.get(("phase.done", p.id))
    done_event = done_events[-1] if done_events else None
    start_late = _seconds(p.started_at, p.planned_start)
    return {
        "id": p.id,
        "name": p.name,
        "status": p.status.value,
        "planned_start": iso(p.planned_start),
        "planned_end": iso(p.planned_end),
        "started_at": iso(p.started_at),
        "finished_at": iso(p.finished_at),
        "started_by": p.started_by,
        "finished_by": p.finished_by,
        "late_seconds": late.total_seconds() if late is not None else None,
        "against_plan": against_plan(late),
        "start_late_seconds": start_late,
        "planned_seconds": _seconds(p.planned_end, p.planned_start),
        "actual_seconds": _seconds(p.finished_at, p.started_at),
        "note": p.note,
        "tasks": tasks,
        "tasks_done": sum(1 for t in tasks if t["done"]),
        "tasks_left": sum(1 for t in tasks if not t["done"]),
        "open_at_finish": [str(t) for t in (done_event.data.get("open_tasks") or [])] if done_event else [],
    }


def _signoffs(
    release: Release, plan: Plan | None, timeline: list[Event], iso: Callable[[datetime | None], str | None]
) -> dict[str, Any]:
    """Every required sign-off (the plan's, then any other role that answered): waiting, signed or refused."""
    specs = [(s.role, s.criterion) for s in plan.signoffs] if plan is not None else []
    roles = [role for role, _ in specs] + [s.role for s in release.signoffs if s.role not in {r for r, _ in specs}]
    criteria = dict(specs)
    rows = []
    for role in roles:
        answer = release.signoff(role)
        rows.append(
            {
                "role": role,
                "criterion": criteria.get(role),
                "status": answer.status.value if answer else "waiting",
                "by": answer.by if answer else None,
                "at": iso(answer.at) if answer else None,
                "comment": answer.comment if answer else "",
            }
        )
    approved = next((e for e in reversed(timeline) if e.kind == "release.approved"), None)
    outcome = approved.data.get("outcome") if approved is not None else None
    return {
        "requested_at": iso(release.signoffs_requested_at),
        "approved_at": iso(release.approved_at),
        "deployment_status": outcome if outcome in {"success", "rollback"} else None,
        "roles": rows,
    }


def _handoff(
    release: Release, plan: Plan | None, iso: Callable[[datetime | None], str | None]
) -> dict[str, Any] | None:
    spec = plan.handoff if plan is not None else None
    if spec is None and release.handoff_posted_at is None:
        return None
    return {
        "to": spec.to if spec else None,
        "from": spec.from_ if spec else None,
        "watch": list(spec.watch) if spec else [],
        "posted_at": iso(release.handoff_posted_at),
        "accepted_by": release.handoff_accepted_by,
        "accepted_at": iso(release.handoff_accepted_at),
    }


def _announcements(
    release: Release,
    index: dict[tuple[str, str | None], list[Event]],
    outbox: list[OutboxItem],
    iso: Callable[[datetime | None], str | None],
) -> list[dict[str, Any]]:
    """The plan's announcements and status updates as delivered: sent (on time or delayed), skipped, failed…"""
    rows = []
    for item in outbox:
        if item.kind not in ANNOUNCED_KINDS:
            continue
        posted = _first(index, "message.posted", item.key)
        rows.append(
            {
                "key": item.key,
                "name": message_name(item.key, release).removeprefix("the "),
                "kind": item.kind,
                "channel": item.channel,
                "due_at": iso(item.due_at),
                "status": item.status,
                "sent_at": iso(posted.at) if posted else None,
                "late_seconds": _seconds(posted.at, item.due_at) if posted else None,
                "delayed": item.delayed,
                "error": humane_seconds(item.error) if item.status != "sent" else "",
            }
        )
    return rows


def report(
    release: Release, timeline: list[Event], plan: Plan | None = None, outbox: list[OutboxItem] | None = None
) -> dict[str, Any]:
    """Everything about one release as plain data, times in the plan's zone (schemas/export-v1.schema.json).

    `plan` gives the checklists, sign-offs and handoff as the plan lists them; `outbox` the announcements."""
    tz = zone(release.timezone)
    index = _by_subject(timeline)

    def iso(value: datetime | None) -> str | None:
        return value.astimezone(tz).isoformat() if value else None

    go_no_go = plan.go_no_go if plan is not None else None
    return {
        "schema_version": SCHEMA_VERSION,
        "release": {
            "id": release.id,
            "name": release.name,
            "version": release.version,
            "status": release.status.value,
            "timezone": release.timezone,
            "window_start": iso(release.window_start),
            "window_end": iso(release.window_end),
            "started_at": iso(release.started_at),
            "ended_at": iso(release.ended_at),
            "progress": progress(release),
            "attempt": release.attempt,
        },
        "phases": [_phase_row(release, p, plan, index, iso) for p in release.phases],
        "go_no_go_checklist": _tasks(
            release, GO_NO_GO_CHECKLIST, list(go_no_go.checklist) if go_no_go is not None else [], iso
        ),
        "success_criteria": list(plan.success_criteria) if plan is not None else [],
        "issues": [
            {
                "number": i.number,
                "severity": i.severity.value,
                "component": i.component,
                "region": i.region,
                "impact": i.impact,
                "error": i.error,
                "status": i.status.value,
                "reporter": i.reporter,
                "reported_at": iso(i.reported_at),
                "investigator": i.investigator,
                "investigating_at": iso(taken.at)
                if (taken := _first(index, "issue.investigating", f"issue:{i.number}"))
                else None,
                "seconds_to_investigate": _seconds(taken.at, i.reported_at) if taken else None,
                "resolved_at": iso(i.resolved_at),
                "resolved_by": i.resolved_by,
                "resolution": i.resolution,
                "seconds_to_resolve": _seconds(i.resolved_at, i.reported_at),
            }
            for i in release.issues
        ],
        "pages": [
            {
                "number": p.number,
                "level": p.level,
                "targets": list(p.targets),
                "reason": p.reason,
                "status": p.status.value,
                "created_at": iso(p.created_at),
                "acked_by": p.acked_by,
                "acked_at": iso(p.acked_at),
                "seconds_to_ack": _seconds(p.acked_at, p.created_at),
                "levels_reached": _levels(p.level, index.get(("page.escalated", f"page:{p.number}"), [])),
            }
            for p in release.pages
        ],
        "votes": [
            {"voter": b.voter, "role": b.role, "vote": b.vote.value, "reason": b.reason, "at": iso(b.at)}
            for b in release.ballots
        ],
        "decisions": [
            {
                "kind": d.kind,
                "outcome": d.outcome,
                "rationale": d.rationale,
                "decided_by": d.decided_by,
                "at": iso(d.at),
                "overrode_tally": d.overrode_tally,
            }
            for d in release.decisions
        ],
        "rollback": [
            {"at": iso(e.at), "kind": e.kind, "actor": e.actor, "text": describe(e, release)}
            for e in timeline
            if e.kind in ROLLBACK_EVENTS
        ],
        "signoffs": _signoffs(release, plan, timeline, iso),
        "handoff": _handoff(release, plan, iso),
        "announcements": _announcements(release, index, outbox or [], iso),
        "timeline": [
            {
                "at": iso(e.at),
                "kind": e.kind,
                "actor": e.actor,
                "subject": e.subject,
                "text": describe(e, release),
                "data": e.data,
            }
            for e in timeline
        ],
    }


def _levels(first: int | None, escalations: list[Event]) -> list[int]:
    """The escalation levels a page went to, in order (none for a page to a role or a person)."""
    levels = [first] if first is not None else []
    for e in escalations:
        level = e.data.get("to")
        if isinstance(level, int) and level not in levels:
            levels.append(level)
    return levels


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


# --- the timeline as sentences -----------------------------------------------------------------------------


def _words(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_words(v) for v in value) or "none"
    return str(value).replace("_", " ")


def vote_name(vote: object) -> str:
    """`Go` or `No-Go`, as the vote's buttons say it."""
    return {"go": "Go", "no_go": "No-Go"}.get(str(vote), _words(vote))


def _number(subject: str | None) -> str:
    return f"#{subject.split(':', 1)[1]}" if subject and ":" in subject else f"#{subject}"


def _phase_name(release: Release, phase_id: str | None) -> str:
    phase = release.phase(phase_id) if phase_id else None
    return phase.name if phase else str(phase_id)


def _phase_change(verb: str) -> Callable[[Event, Release], str]:
    def sentence(e: Event, release: Release) -> str:
        name = _phase_name(release, e.subject)
        note = e.data.get("note")
        if verb == "done":
            late = e.data.get("late_seconds")
            timing = f", {against_plan(timedelta(seconds=late))}" if isinstance(late, int | float) else ""
            left = [str(t) for t in e.data.get("open_tasks") or []]
            open_tasks = f", with {_count(len(left), 'task')} open ({'; '.join(left)})" if left else ""
            return f"marked {name} done{timing}{open_tasks}" + (f": {note}" if note else "")
        if verb == "started":
            return f"started {name}"
        return f"{verb} {name}" + (f": {note}" if note else "")

    return sentence


def _n(value: object) -> int:
    """A count an event gives as a number or as the list of what it counts."""
    if isinstance(value, list | tuple):
        return len(value)
    return int(value) if isinstance(value, int | float) else 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _checklist_name(release: Release, scope: str | None) -> str:
    return "the go/no-go checklist" if scope == GO_NO_GO_CHECKLIST else _phase_name(release, scope)


def _task_checked(e: Event, release: Release) -> str:
    note = e.data.get("note")
    return f"ticked task {e.data.get('number')} of {_checklist_name(release, e.subject)}: {e.data.get('task')}" + (
        f" ({note})" if note else ""
    )


def _signed(e: Event, release: Release) -> str:
    comment = e.data.get("comment")
    return f"signed off as {_words(e.subject)}: {e.data.get('criterion')}" + (f" ({comment})" if comment else "")


def _decided(e: Event, release: Release) -> str:
    outcome = "Go" if e.data.get("outcome") == "go" else "No-Go"
    how = {"deadline": " at the deadline", "auto": " (missing votes)", "tally": " (every voter had voted)"}.get(
        str(e.data.get("how")), ""
    )
    override = " (overriding the tally)" if e.data.get("overrode_tally") else ""
    rationale = e.data.get("rationale")
    return f"decided **{outcome}**{how}" + (f": {rationale}" if rationale else "") + override


_STATUS_KEY = re.compile(r"status:(?:(?P<channel>[^:]+):)?(?P<at>\d{8}T\d{6}Z)")
_ANNOUNCEMENT_KEY = re.compile(r"announcement:(?P<id>.+?)")
_ATTEMPT = re.compile(r"(?P<key>.+):attempt(?P<attempt>\d+)")


def message_name(subject: str | None, release: Release) -> str:
    """A scheduled message as people name it: `the status update of 17:15` (the plan's zone), `the
    announcement advance`; any other message by its key."""
    key, attempt = subject or "", ""
    if m := _ATTEMPT.fullmatch(key):
        key, attempt = m["key"], f" (attempt {m['attempt']})"
    if m := _STATUS_KEY.fullmatch(key):
        at = datetime.strptime(m["at"], "%Y%m%dT%H%M%SZ").replace(tzinfo=ZoneInfo("UTC"))
        to = f" to #{m['channel']}" if m["channel"] else ""
        return f"the status update{to} of {at.astimezone(zone(release.timezone)):%H:%M}{attempt}"
    if m := _ANNOUNCEMENT_KEY.fullmatch(key):
        return f"the announcement {m['id']}{attempt}"
    if key.startswith("report:"):
        return "the post-mortem report's upload"
    return f"the message {subject}"


def _skipped_message(e: Event, release: Release) -> str:
    reason = humane_seconds(str(e.data.get("reason", "")))
    return f"{message_name(e.subject, release)} was skipped" + (f": {reason}" if reason else "")


def _posted(e: Event, release: Release) -> str:
    late = e.data.get("late_seconds")
    lateness = ""
    if isinstance(late, int | float) and late >= 60:
        lateness = f", {format_duration(timedelta(seconds=late))} late"
    name = message_name(e.subject, release).removeprefix("the message ")
    return f"posted {name}{lateness}" + (" (marked delayed)" if e.data.get("delayed") else "")


def _plan_updated(e: Event, release: Release) -> str:
    """`the plan was updated: the window moved from … to … EST; version v1 → v2; phases added: smoke`."""
    parts = []
    for key, value in e.data.items():
        if key == "window_start" and isinstance(value, list) and len(value) == 2:
            tz = zone(release.timezone)
            before, after = (datetime.fromisoformat(str(v)).astimezone(tz) for v in value)
            first = f"{before:%a %d %b %Y %H:%M}" + (f" {before:%Z}" if before.tzname() != after.tzname() else "")
            parts.append(f"the window moved from {first} to {after:%a %d %b %Y %H:%M %Z}")
        elif key == "version" and isinstance(value, list) and len(value) == 2:
            parts.append(f"version {value[0]} → {value[1]}")
        else:
            parts.append(f"{_words(key)}: {_words(value)}")
    return "the plan was updated: " + "; ".join(parts)


def _completed(e: Event, release: Release) -> str:
    """`completed the release`, and with a forced completion what was left and why."""
    left = [
        f"{', '.join(_phase_name(release, p) for p in e.data[field])} {what}"
        for field, what in (("unfinished", "left unfinished"), ("failed", "failed"))
        if e.data.get(field)
    ]
    forced = e.data.get("forced")
    return "completed the release" + (f" with {' and '.join(left)}" if left else "") + (f": {forced}" if forced else "")


def _page_again(e: Event, release: Release) -> str:
    level = e.data.get("level")
    to = f"Level {level}" if level is not None else _words(e.data.get("targets", []))
    return f"page {_number(e.subject)} went to {to} again"


def _page_exhausted(e: Event, release: Release) -> str:
    if e.data.get("level") is not None:
        return f"page {_number(e.subject)} reached the top of the ladder unanswered"
    return (
        f"page {_number(e.subject)} had no acknowledgement within {e.data.get('waited')}; "
        "a page to a role or a person does not climb, so it stops here"
    )


SENTENCES: dict[str, Callable[[Event, Release], str]] = {
    "release.loaded": lambda e, r: (
        f"the plan was loaded: version {e.data.get('version')}, {e.data.get('phases')} phases"
    ),
    "release.loaded_as_history": lambda e, r: f"loaded as history: {e.data.get('reason')}; nothing was sent",
    "release.plan_updated": _plan_updated,
    "release.started": lambda e, r: (
        "started the release"
        + (" at T0" if e.data.get("at") == "T0" else "")
        + (f" without a Go decision: {e.data['forced']}" if e.data.get("forced") else "")
    ),
    "release.not_started": lambda e, r: f"the release did not start: {e.data.get('reason')}",
    "release.completed": _completed,
    "release.rolled_back": lambda e, r: "ended the rollback: the release is rolled back",
    "release.aborted": lambda e, r: f"aborted the release: {e.data.get('reason')}",
    "release.rollback_started": lambda e, r: f"started a rollback: {e.data.get('reason')}",
    "release.rescheduled": lambda e, r: f"the release was rescheduled after a No-Go (attempt {e.data.get('attempt')})",
    "phase.started": _phase_change("started"),
    "phase.done": _phase_change("done"),
    "phase.failed": _phase_change("failed"),
    "phase.skipped": _phase_change("skipped"),
    "vote.opened": lambda e, r: f"opened the go/no-go vote for {_words(e.data.get('voters', []))}",
    "vote.cast": lambda e, r: (
        f"voted {vote_name(e.data.get('vote'))} as {_words(e.subject)}"
        + (f": {e.data['reason']}" if e.data.get("reason") else "")
    ),
    "vote.changed": lambda e, r: (
        f"changed their vote to {vote_name(e.data.get('vote'))} as {_words(e.subject)}"
        + (f": {e.data['reason']}" if e.data.get("reason") else "")
    ),
    "vote.reminded": lambda e, r: f"reminded the missing voters ({_words(e.data.get('missing', []))})",
    "vote.decided": _decided,
    "issue.reported": lambda e, r: (
        f"reported issue {_number(e.subject)} ({e.data.get('severity')}, "
        f"{e.data.get('component')}): {e.data.get('impact')}"
    ),
    "issue.investigating": lambda e, r: f"took issue {_number(e.subject)} to investigate",
    "issue.escalated": lambda e, r: f"escalated issue {_number(e.subject)} to Level {e.data.get('level')}",
    "issue.resolved": lambda e, r: (
        f"resolved issue {_number(e.subject)}"
        + (f" after {_duration(e.data['seconds_to_resolve'])}" if e.data.get("seconds_to_resolve") is not None else "")
        + (f": {e.data['note']}" if e.data.get("note") else "")
    ),
    "page.created": lambda e, r: (
        f"paged {e.data.get('to') or _words(e.data.get('targets', []))} (page "
        f"{_number(e.subject)}): {e.data.get('reason')}"
    ),
    "page.acked": lambda e, r: (
        f"acknowledged page {_number(e.subject)}"
        + (f" after {_duration(e.data['seconds_to_ack'])}" if e.data.get("seconds_to_ack") is not None else "")
    ),
    "page.escalated": lambda e, r: (
        f"page {_number(e.subject)} climbed to Level {e.data.get('to', e.data.get('level'))}"
    ),
    "page.renotified": _page_again,
    "page.exhausted": _page_exhausted,
    "page.level_empty": lambda e, r: f"page {_number(e.subject)}: Level {e.data.get('level')} has nobody to page",
    "page.stopped": lambda e, r: f"page {_number(e.subject)} stopped: {e.data.get('reason')}",
    "pagerduty.failed": lambda e, r: f"PagerDuty did not take page {_number(e.subject)}",
    "rollback.decision_point": lambda e, r: "the rollback decision point was reached; the release manager was asked",
    "rollback.continued": lambda e, r: (
        "chose to continue"
        + (_after(e.subject) if e.subject else "")
        + (f": {e.data['reason']}" if e.data.get("reason") else "")
    ),
    "rollback.evaluation_asked": lambda e, r: f"asked whether to roll back after issue {_number(e.subject)}",
    "rollback.evaluation_overdue": lambda e, r: (
        f"no answer on rolling back after issue {_number(e.subject)}; paged {_words(e.data.get('paged', []))}"
    ),
    "alert.firing": lambda e, r: (
        f"alert {e.data.get('alertname')} fired and opened issue {_number(e.subject)}"
        + (f" (value {e.data['value']})" if e.data.get("value") else "")
    ),
    "alert.updated": lambda e, r: (
        f"alert {e.data.get('alertname')} of issue {_number(e.subject)} changed"
        + (f" (value {e.data['value']})" if e.data.get("value") else "")
    ),
    "alert.refired": lambda e, r: f"alert {e.data.get('alertname')} of issue {_number(e.subject)} fired again",
    "alert.resolved": lambda e, r: (
        f"alert {e.data.get('alertname')} of issue {_number(e.subject)} was resolved"
        + (", and with it the issue" if e.data.get("auto") else "")
    ),
    "alert.rollback_trigger": lambda e, r: (
        f"rollback trigger “{e.data.get('trigger')}” fired (issue {_number(e.subject)})"
        "; the rollback question was asked"
    ),
    "task.checked": _task_checked,
    "task.unchecked": lambda e, r: (
        f"unticked task {e.data.get('number')} of {_checklist_name(r, e.subject)}: {e.data.get('task')}"
    ),
    "signoffs.requested": lambda e, r: f"asked for the sign-offs of {_words(e.data.get('roles', []))}",
    "signoff.signed": _signed,
    "signoff.refused": lambda e, r: (
        f"refused to sign off as {_words(e.subject)} ({e.data.get('criterion')}): {e.data.get('reason')}"
    ),
    "release.approved": lambda e, r: (
        "every required sign-off is in: final approval, deployment status "
        + ("**Rollback**" if e.data.get("outcome") == "rollback" else "**Success**")
    ),
    "handoff.posted": lambda e, r: (
        f"posted the handoff to the {_words(e.data.get('to'))} ({_count(_n(e.data.get('open_issues')), 'open issue')}, "
        f"{_count(_n(e.data.get('open_pages')), 'open page')})"
    ),
    "handoff.accepted": lambda e, r: (
        f"accepted the handoff as {_words(e.subject)}; on call now: {_words(e.data.get('oncall', []))}"
    ),
    "follow_up.reminded": lambda e, r: f"reminded {_words(e.data.get('owner', []))} of the follow-up: {e.subject}",
    "report.requested": lambda e, r: "asked for the post-mortem report in the war room",
    "report.uploaded": lambda e, r: (
        f"uploaded the post-mortem report and its chart to the war room ({_words(e.data.get('files', []))})"
    ),
    "message.posted": _posted,
    "message.skipped": _skipped_message,
    "message.failed": lambda e, r: f"{message_name(e.subject, r)} could not be posted: {e.data.get('error')}",
    "message.retrying": lambda e, r: f"{message_name(e.subject, r)} is being retried: {e.data.get('error')}",
}


def _after(subject: str) -> str:
    if subject.startswith("check:"):
        return f" despite the failing check {subject.split(':', 1)[1]}"
    return f" after issue {_number(subject)}"


_SHOWN_ON = {
    "gonogo_vote": "the go/no-go vote",
    "status_update": "a status update",
    "rollback_prompt": "the decision point",
}


def _reading(reading: dict[str, Any]) -> str:
    icon = "⚠️" if reading.get("ok") is None else "✅" if reading["ok"] else "❌"
    value = f"could not be read: {reading.get('error')}" if reading.get("ok") is None else reading.get("value")
    return f"{icon} {reading.get('name')} {value}"


def _checks_read(event: Event, release: Release) -> str:
    shown = str(event.data.get("shown_on"))
    where = {"command": "with /release checks", "timer": "(a check changed)"}.get(
        shown, f"for {_SHOWN_ON.get(shown, shown)}"
    )
    return f"read the checks {where}: " + "; ".join(_reading(r) for r in event.data.get("readings", []))


SENTENCES["checks.read"] = _checks_read
SENTENCES["rollback.check_asked"] = lambda e, r: (
    f"the check {e.data.get('check')} failing since {e.data.get('since')} met the rollback trigger "
    f"“{e.data.get('trigger')}”: the release manager and the final authority were asked"
)
SENTENCES["rollback.check_answered"] = lambda e, r: (
    f"answered the rollback question from the check {e.subject.split(':', 1)[1] if e.subject else ''}: "
    f"{_words(e.data.get('choice'))}"
)


def describe(event: Event, release: Release) -> str:
    """One timeline entry as a sentence (its actor, when any, goes in front of it)."""
    sentence = SENTENCES.get(event.kind)
    if sentence is not None:
        return sentence(event, release)
    details = "; ".join(f"{_words(k)}: {humane_seconds(_words(v))}" for k, v in event.data.items())
    subject = f" {event.subject}" if event.subject else ""
    return f"{_words(event.kind.replace('.', ' '))}{subject}" + (f" ({details})" if details else "")


# --- markdown ----------------------------------------------------------------------------------------------


DECISIONS = {
    "go_no_go": "go/no-go",
    "rollback_point": "rollback decision point",
    "forced_start": "start without a Go",
}


def decision_name(kind: str) -> str:
    """A decision's kind as people say it: `go/no-go`, `roll back after issue #3?`."""
    if kind.startswith("rollback_eval:"):
        return f"roll back after issue #{kind.split(':', 1)[1]}?"
    if kind.startswith("rollback_check:"):
        return "roll back on a failing check?"
    return DECISIONS.get(kind, _words(kind))


_LINK_SYNTAX = str.maketrans({"\\": "\\\\", "[": "\\[", "]": "\\]", "<": "\\<"})


def _one_line(value: object) -> str:
    """Text on one line: what people typed over several lines cannot start a heading, a rule or an entry,
    and its brackets are escaped, so it cannot make a link or an autolink either."""
    return " ".join(str(value).splitlines()).translate(_LINK_SYNTAX)


def _md(value: object) -> str:
    if isinstance(value, list | tuple):
        value = ", ".join(str(v) for v in value)
    return "—" if value in (None, "") else _one_line(value).replace("|", "\\|")


class _Clock:
    """Times as a reader of the report wants them: `17:12` on the window's first day, else with the date."""

    def __init__(self, tz: ZoneInfo, first_day: datetime) -> None:
        self.tz = tz
        self.day = first_day.astimezone(tz).date()

    def __call__(self, value: str | None, *, zone_name: bool = False) -> str:
        if not value:
            return "—"
        local = datetime.fromisoformat(value).astimezone(self.tz)
        text = f"{local:%H:%M}" if local.date() == self.day else f"{local:%a %d %b %H:%M}"
        return f"{text} {local.tzname()}" if zone_name else text

    def full(self, value: str | None) -> str:
        if not value:
            return "—"
        local = datetime.fromisoformat(value).astimezone(self.tz)
        return f"{local:%a %d %b %Y %H:%M} {local.tzname()}"


def to_markdown(data: dict[str, Any]) -> str:
    r = data["release"]
    tz = zone(r["timezone"])
    start = datetime.fromisoformat(r["window_start"])
    clock = _Clock(tz, start)
    end_local = datetime.fromisoformat(r["window_end"]).astimezone(tz)
    same_day = end_local.date() == start.astimezone(tz).date()
    window_end = f"{end_local:%H:%M %Z}" if same_day else clock.full(r["window_end"])
    window_start = f"{start.astimezone(tz):%a %d %b %Y %H:%M}" + ("" if same_day else f" {start.astimezone(tz):%Z}")
    out = [
        f"# {r['name']} {r['version']} — post-mortem report",
        "",
        f"- Release: `{r['id']}` · status **{_words(r['status'])}** · progress {r['progress']}%",
        f"- Window: {window_start} to {window_end} ({r['timezone']})",
        f"- Started: {clock.full(r['started_at'])} · ended: {clock.full(r['ended_at'])}",
        *(
            [
                f"- Attempt {r['attempt']}: the release was postponed by a No-Go and rescheduled; phases and "
                "votes below are this attempt's, earlier ones are in the decisions and the timeline"
            ]
            if r["attempt"] > 1
            else []
        ),
        "",
        "## Phases: plan vs actual",
        "",
        "| phase | status | planned | actual | against plan | by | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in data["phases"]:
        if p["started_at"] and p["finished_at"]:
            actual = f"{clock(p['started_at'])} to {clock(p['finished_at'])}"
        elif p["finished_at"]:
            actual = f"{_words(p['status'])} {clock(p['finished_at'])}"
        elif p["started_at"]:
            actual = f"since {clock(p['started_at'])}"
        else:
            actual = "—"
        out.append(
            f"| {_md(p['name'])} (`{p['id']}`) | {_words(p['status'])} | "
            f"{clock(p['planned_start'])} to {clock(p['planned_end'])} | {actual} | {_md(p['against_plan'])} | "
            f"{_md(p['finished_by'] or p['started_by'])} | {_md(p['note'])} |"
        )
    out += ["", f"Times are {end_local:%Z} ({r['timezone']}) on {start.astimezone(tz):%a %d %b %Y} unless dated."]
    out += _tasks_section(data, clock)
    tables: list[tuple[str, list[str], list[list[object]]]] = [
        (
            "Go/no-go checklist",
            ["#", "item", "done", "by", "at", "note"],
            [
                [t["number"], t["task"], "yes" if t["done"] else "open", t["done_by"], clock(t["at"]), t["note"]]
                for t in data["go_no_go_checklist"]
            ],
        ),
        (
            "Issues",
            [
                "number",
                "severity",
                "component",
                "region",
                "impact",
                "status",
                "investigator",
                "time to investigate",
                "time to resolve",
                "resolution",
            ],
            [
                [
                    i["number"],
                    i["severity"],
                    i["component"],
                    i["region"],
                    i["impact"],
                    _words(i["status"]),
                    i["investigator"],
                    _duration(i["seconds_to_investigate"]),
                    _duration(i["seconds_to_resolve"]),
                    i["resolution"],
                ]
                for i in data["issues"]
            ],
        ),
        (
            "Pages",
            [
                "number",
                "level",
                "paged",
                "reason",
                "status",
                "acknowledged by",
                "time to acknowledge",
                "levels reached",
            ],
            [
                [
                    p["number"],
                    p["level"],
                    p["targets"],
                    p["reason"],
                    "acknowledged" if p["status"] == "acked" else _words(p["status"]),
                    p["acked_by"],
                    _duration(p["seconds_to_ack"]),
                    ", ".join(f"L{level}" for level in p["levels_reached"]),
                ]
                for p in data["pages"]
            ],
        ),
        (
            "Votes",
            ["voter", "role", "vote", "reason", "at"],
            [[v["voter"], _words(v["role"]), vote_name(v["vote"]), v["reason"], clock(v["at"])] for v in data["votes"]],
        ),
        (
            "Decisions",
            ["what", "outcome", "rationale", "by", "at", "note"],
            [
                [
                    decision_name(d["kind"]),
                    _words(d["outcome"]),
                    d["rationale"],
                    d["decided_by"],
                    clock(d["at"]),
                    "overrode the tally" if d["overrode_tally"] else None,
                ]
                for d in data["decisions"]
            ],
        ),
    ]
    tables += _closing_tables(data, clock)
    for title, columns, rows in tables:
        out += ["", f"## {title}", ""]
        if not rows:
            out.append("None.")
        else:
            out.append("| " + " | ".join(columns) + " |")
            out.append("|" + "---|" * len(columns))
            out += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows]
        out += _after_table(title, data, clock)
    out += ["", "## Timeline", ""]
    for e in data["timeline"]:
        who = f"{e['actor']} " if e["actor"] and e["actor"] != SYSTEM_ACTOR and e["actor"] != "system" else ""
        out.append(f"- {clock(e['at'], zone_name=True)} — {who}{_one_line(e['text'])}")
    return "\n".join(out) + "\n"


Table = tuple[str, list[str], list[list[object]]]


def _tasks_section(data: dict[str, Any], clock: _Clock) -> list[str]:
    """## Tasks: each phase's checklist, done and left, and what was left open when it was marked done."""
    out = ["", "## Tasks", ""]
    phases = [p for p in data["phases"] if p["tasks"]]
    if not phases:
        return [*out, "None."]
    out += ["| phase | done | left | open when marked done |", "|---|---|---|---|"]
    for p in phases:
        out.append(
            f"| {_md(p['name'])} | {p['tasks_done']} of {len(p['tasks'])} | {p['tasks_left']} | "
            f"{_md('; '.join(p['open_at_finish']))} |"
        )
    out += ["", "| phase | # | task | done | by | at | note |", "|---|---|---|---|---|---|---|"]
    for p in phases:
        for t in p["tasks"]:
            out.append(
                "| "
                + " | ".join(
                    _md(cell)
                    for cell in (
                        p["id"],
                        t["number"],
                        t["task"],
                        "yes" if t["done"] else "open",
                        t["done_by"],
                        clock(t["at"]) if t["at"] else None,
                        t["note"],
                    )
                )
                + " |"
            )
    return out


def _announcement_status(a: dict[str, Any]) -> str:
    if a["status"] == "sent":
        late = a["late_seconds"]
        lateness = f", {format_duration(timedelta(seconds=late))} late" if late is not None and late >= 60 else ""
        return ("**delayed**" if a["delayed"] else "sent") + lateness
    if a["status"] in {"skipped", "failed"}:
        return f"**{a['status']}**"
    return _words(a["status"])


def _closing_tables(data: dict[str, Any], clock: _Clock) -> list[Table]:
    signoffs = data["signoffs"]
    return [
        (
            "Rollback",
            ["at", "what", "by"],
            [[clock(e["at"], zone_name=True), e["text"], _actor(e["actor"])] for e in data["rollback"]],
        ),
        (
            "Sign-offs",
            ["role", "criterion", "status", "by", "at", "comment"],
            [
                [
                    _words(s["role"]),
                    s["criterion"],
                    s["status"],
                    s["by"],
                    clock(s["at"]) if s["at"] else None,
                    s["comment"],
                ]
                for s in signoffs["roles"]
            ],
        ),
        (
            "Announcements",
            ["message", "channel", "due", "sent", "status", "note"],
            [
                [
                    a["name"],
                    a["channel"],
                    clock(a["due_at"]),
                    clock(a["sent_at"]) if a["sent_at"] else None,
                    _announcement_status(a),
                    a["error"],
                ]
                for a in data["announcements"]
            ],
        ),
    ]


def _actor(actor: str | None) -> str | None:
    return None if actor in (None, SYSTEM_ACTOR, "system") else actor


def _after_table(title: str, data: dict[str, Any], clock: _Clock) -> list[str]:
    """What a section says besides its table: the final approval after the sign-offs, then the handoff."""
    if title != "Sign-offs":
        return []
    signoffs = data["signoffs"]
    out = [
        "",
        f"- Requested: {clock.full(signoffs['requested_at'])} · final approval: {clock.full(signoffs['approved_at'])}"
        + (
            f" · deployment status: **{signoffs['deployment_status'].title()}**"
            if signoffs["deployment_status"]
            else ""
        ),
    ]
    handoff = data["handoff"]
    out += ["", "## Handoff", ""]
    if handoff is None:
        return [*out, "None."]
    out += [
        f"- To: {_md(_words(handoff['to']) if handoff['to'] else None)} · from: "
        f"{_md(_words(handoff['from']) if handoff['from'] else None)}",
        f"- Posted: {clock.full(handoff['posted_at'])} · accepted by {_md(handoff['accepted_by'])} at "
        f"{clock.full(handoff['accepted_at'])}",
    ]
    if handoff["watch"]:
        out.append(f"- Watch: {_md('; '.join(handoff['watch']))}")
    return out
