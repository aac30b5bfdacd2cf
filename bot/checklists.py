"""Runbook checklists: a phase's tasks (plan `tasks`) and the go/no-go checklist, ticked and unticked.

Pure: (release, plan, actor, command, now) → Outcome. A checklist is a scope: a phase id, or
`GO_NO_GO_CHECKLIST`. Task numbers are 1-based, as the plan lists them. Who ticked what and when is on the
release (`Release.task_checks`) and on the timeline (`task.checked`, `task.unchecked`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.core.text import clip
from bot.domain import (
    GO_NO_GO,
    GO_NO_GO_CHECKLIST,
    NOT_STARTED,
    Actor,
    Conflict,
    Effect,
    Event,
    NotFound,
    Outcome,
    PhaseStatus,
    Post,
    Refresh,
    Release,
    TaskCheck,
    UsageError,
)
from bot.permissions import Action, authorize
from bot.plan import Plan

CHECKLIST_KEY = "checklist:{phase}"
"""Outbox key of a phase's checklist message in the war room (attempt 1; see `checklist_key`)."""
VOTE_KEY = "gonogo:vote"
"""The vote message's key, bot.votes.VOTE_KEY: repeated because bot.votes imports bot.rules, which imports this
module (tests/test_checklists.py checks that the two agree)."""
NOTE_LIMIT = 500

PHASE_TASKS_USAGE = "`/phase tasks ID` · `/phase check ID N [note]` · `/phase uncheck ID N`"
GONOGO_TASKS_USAGE = "`/gonogo checklist` · `/gonogo check N [note]` · `/gonogo uncheck N`"


@dataclass(frozen=True, slots=True)
class ShowTasks:
    """`/phase tasks ID` or `/gonogo checklist`: the checklist, privately."""

    scope: str


@dataclass(frozen=True, slots=True)
class TickTask:
    """Tick (`done=True`) or untick (`done=False`) task `number` of `scope`; `done=None` toggles (a button)."""

    scope: str
    number: int
    done: bool | None = True
    note: str = ""


def checklist_key(release: Release, phase_id: str) -> str:
    """The key of `phase_id`'s checklist message for the release's current attempt."""
    return release.attempt_key(CHECKLIST_KEY.format(phase=phase_id))


def items(plan: Plan, scope: str) -> list[str]:
    """The checklist's items as the plan lists them (empty when the scope has none)."""
    if scope == GO_NO_GO_CHECKLIST:
        return list(plan.go_no_go.checklist) if plan.go_no_go else []
    spec = plan.phase_spec(scope)
    return list(spec.tasks) if spec is not None else []


def open_tasks(release: Release, plan: Plan, scope: str) -> list[tuple[int, str]]:
    """(number, text) of the items of `scope` not ticked, in plan order."""
    ticked = release.checked(scope)
    return [(n, text) for n, text in enumerate(items(plan, scope), start=1) if n not in ticked]


def task_counts(release: Release, plan: Plan, scope: str) -> tuple[int, int]:
    """(ticked, total) for a checklist; ticks of items the plan no longer lists do not count."""
    total = len(items(plan, scope))
    return sum(1 for n in release.checked(scope) if 1 <= n <= total), total


TASK_NUMBER = re.compile(r"[0-9]{1,4}")
"""A task number as typed or carried by a button: ASCII digits only (`²` is a digit to `str.isdigit`, and
`int` refuses very long numbers), at most 4 of them — a checklist has at most 40 items."""


def parse_number(word: str, usage: str) -> int:
    """`3` or `#3` → 3; anything else is a UsageError naming what was typed."""
    cleaned = word.removeprefix("#")
    if not TASK_NUMBER.fullmatch(cleaned):
        raise UsageError(f"`{clip(word, 40)}` is not a task number: give its number as listed, e.g. `3`.", usage)
    return int(cleaned)


def _scope_name(release: Release, scope: str) -> str:
    if scope == GO_NO_GO_CHECKLIST:
        return "The go/no-go checklist"
    phase = release.phase(scope)
    return phase.name if phase is not None else scope


def require_checklist(release: Release, plan: Plan, scope: str) -> list[str]:
    """The items of `scope`, or an error (with the usage) saying why there is no such checklist."""
    if scope == GO_NO_GO_CHECKLIST:
        usage = f"Usage: {GONOGO_TASKS_USAGE}"
        if plan.go_no_go is None:
            raise NotFound("This release has no go/no-go vote in its plan, so it has no go/no-go checklist.", usage)
        if not plan.go_no_go.checklist:
            raise Conflict("The plan's go/no-go checklist is empty: list items under `go_no_go.checklist`.", usage)
        return list(plan.go_no_go.checklist)
    usage = f"Usage: {PHASE_TASKS_USAGE}"
    phase = release.phase(scope)
    if phase is None:
        known = ", ".join(p.id for p in release.phases)
        raise NotFound(f"There is no phase {scope!r} in {release.id}. Phases: {known}", usage)
    found = items(plan, scope)
    if not found:
        with_tasks = [p.id for p in plan.phases if p.tasks]
        hint = f" Phases with tasks: {', '.join(with_tasks)}." if with_tasks else " No phase of this plan lists tasks."
        raise Conflict(f"{phase.name} has no tasks in the plan (`tasks:` under the phase).{hint}", usage)
    return found


def closed_reason(release: Release, plan: Plan, scope: str) -> str | None:
    """Why the checklist can no longer be ticked, or None while it can."""
    if release.status.finished:
        return f"Release {release.id} is {release.status.value.replace('_', ' ')}; its checklists are closed."
    if scope == GO_NO_GO_CHECKLIST:
        decision = release.decision(GO_NO_GO)
        if decision is not None and decision.outcome in {"go", "no_go"}:
            label = "Go" if decision.outcome == "go" else "No-Go"
            return f"The go/no-go was decided ({label} at {decision.at:%H:%M} UTC); its checklist is closed."
        if release.status not in NOT_STARTED:
            return "The release has started, so the go/no-go checklist is closed."
        return None
    phase = release.phase(scope)
    if phase is not None and phase.status.finished:
        when = f" at {phase.finished_at:%H:%M} UTC" if phase.finished_at else ""
        return f"{phase.name} is {phase.status.value}{when}; its checklist is closed."
    return None


def refresh_effects(release: Release, scope: str) -> tuple[Effect, ...]:
    """The messages that show this checklist: the phase's checklist message, or the vote once posted."""
    if scope == GO_NO_GO_CHECKLIST:
        return (Refresh(release.attempt_key(VOTE_KEY)),) if release.vote_opened_at is not None else ()
    return (Refresh(checklist_key(release, scope)),)


def tick_task(release: Release, plan: Plan, actor: Actor, command: TickTask, now: datetime) -> Outcome:
    """Tick or untick one item; the messages that show the checklist update in place."""
    scope = command.scope
    go_no_go = scope == GO_NO_GO_CHECKLIST
    authorize(plan, actor, Action.TICK_GO_NO_GO if go_no_go else Action.TICK_TASK)
    usage = f"Usage: {GONOGO_TASKS_USAGE if go_no_go else PHASE_TASKS_USAGE}"
    listed = require_checklist(release, plan, scope)
    name = _scope_name(release, scope)
    if not 1 <= command.number <= len(listed):
        raise UsageError(
            f"{name} has {len(listed)} item{'s' if len(listed) != 1 else ''}: "
            f"the number must be from 1 to {len(listed)} (got {command.number}).",
            usage,
        )
    closed = closed_reason(release, plan, scope)
    if closed is not None:
        raise Conflict(closed, usage)
    number, task = command.number, listed[command.number - 1]
    current = release.checked(scope).get(number)
    done = current is None if command.done is None else command.done
    where = "`/gonogo" if go_no_go else "`/phase"
    ref = f"{number}" if go_no_go else f"{scope} {number}"
    if done and current is not None:
        raise Conflict(
            f"{name}, item {number} ({task}) is already ticked, by <@{current.done_by}> at {current.at:%H:%M} UTC. "
            f"To untick it: {where} uncheck {ref}`.",
            usage,
        )
    if not done and current is None:
        raise Conflict(f"{name}, item {number} ({task}) is not ticked, so there is nothing to untick.", usage)
    if done:
        note = clip(command.note.strip(), NOTE_LIMIT)
        updated = release.with_task_check(TaskCheck(scope, number, actor.user_id, now, note))
        event = Event("task.checked", now, actor.user_id, scope, {"number": number, "task": task, "note": note})
    else:
        updated = release.without_task_check(scope, number)
        event = Event("task.unchecked", now, actor.user_id, scope, {"number": number, "task": task})
    ticked, total = task_counts(updated, plan, scope)
    verb = "Ticked" if done else "Unticked"
    reply = f"{verb} {number}. {task} — {name}: {ticked} of {total} done."
    return Outcome(updated, (event,), refresh_effects(updated, scope), reply)


# --- phases: the checklist message, finishing with open tasks, progress -------------------------------------


class OpenTasks(Conflict):
    """`/phase done` of a phase whose tasks are not all ticked: it asks first (see `handlers.checklists`)."""

    def __init__(self, release_id: str, phase_id: str, phase_name: str, left: list[tuple[int, str]], note: str):
        listed = "; ".join(f"{n}. {text}" for n, text in left[:10]) + (" …" if len(left) > 10 else "")
        super().__init__(
            f"{phase_name} still has {len(left)} open task{'s' if len(left) != 1 else ''}: {listed}. "
            f"Tick them with `/phase check {phase_id} N`, or finish anyway (they are recorded as left open): "
            f"`/phase done {phase_id} --force [note]`."
        )
        self.release_id = release_id
        self.phase_id = phase_id
        self.phase_name = phase_name
        self.left = left
        self.note = note


def left_open(release: Release, plan: Plan, phase_id: str, *, force: bool, note: str) -> dict[str, list[Any]]:
    """What `phase.done` records about tasks left open ({} when all are ticked or there are none).

    Raises OpenTasks unless `force`: finishing with open tasks is confirmed first."""
    left = open_tasks(release, plan, phase_id)
    if not left:
        return {}
    if not force:
        phase = release.phase(phase_id)
        raise OpenTasks(release.id, phase_id, phase.name if phase else phase_id, left, note)
    return {"open_tasks": [text for _, text in left], "open_task_numbers": [n for n, _ in left]}


def phase_checklist_effects(
    release: Release, plan: Plan, phase_id: str, *, started: bool, previous: PhaseStatus
) -> tuple[Effect, ...]:
    """A phase with tasks: its checklist message is posted when it starts (once: a retried phase keeps its
    message) and updated whenever the phase changes after that."""
    if not items(plan, phase_id):
        return ()
    key = checklist_key(release, phase_id)
    refresh = (Refresh(key),) if previous is not PhaseStatus.PENDING or not started else ()
    post = (Post("war_room", "phase_checklist", {"phase": phase_id}, key=key),) if started else ()
    return post + refresh


def task_fraction(release: Release, plan: Plan, phase_id: str) -> float:
    """The share of a running phase's tasks that are ticked (0 for a phase without tasks)."""
    phase = release.phase(phase_id)
    if phase is None or phase.status is not PhaseStatus.IN_PROGRESS:
        return 0.0
    ticked, total = task_counts(release, plan, phase_id)
    return ticked / total if total else 0.0


# --- parsing `/phase tasks|check|uncheck` and `/gonogo checklist|check|uncheck` --------------------------------

SHOW_WORDS = frozenset({"tasks", "checklist"})
TICK_WORDS = {"check": True, "tick": True, "uncheck": False, "untick": False}


def parse_tasks(verb: str, rest: str, usage: str, *, scope: str | None = None) -> ShowTasks | TickTask:
    """`tasks ID` / `check ID N [note]` / `uncheck ID N`; with `scope` given (the go/no-go checklist) no ID.

    `verb` is one of SHOW_WORDS or TICK_WORDS (lower case)."""
    parts = rest.split(None, 1 if scope is not None else 2)
    if scope is None:
        if not parts:
            raise UsageError(f"Which phase? `/phase {verb} ID{'' if verb in SHOW_WORDS else ' N'}`.", usage)
        scope, parts = parts[0].lower(), parts[1:]
        if scope == GO_NO_GO_CHECKLIST:
            raise UsageError("The go/no-go checklist is ticked with `/gonogo check N`.", usage)
        parts = " ".join(parts).split(None, 1)
    if verb in SHOW_WORDS:
        if parts:
            extra = clip(" ".join(parts), 40)
            raise UsageError(f"`{verb}` takes nothing more here (got extra text: {extra!r}).", usage)
        return ShowTasks(scope)
    done = TICK_WORDS[verb]
    if not parts:
        where = "" if scope == GO_NO_GO_CHECKLIST else f"{scope} "
        raise UsageError(f"Which task? Give its number: `{verb} {where}N`.", usage)
    number = parse_number(parts[0], usage)
    note = parts[1].strip() if len(parts) > 1 else ""
    if note and not done:
        raise UsageError(f"`{verb}` takes only the task number (got extra text: {clip(note, 40)!r}).", usage)
    return TickTask(scope, number, done, clip(note, NOTE_LIMIT))


def parse_toggle(value: str) -> tuple[str, str, int, bool | None]:
    """A TASK_TOGGLE value `RELEASE:SCOPE:N`, optionally with `:tick` or `:untick` (what the button showed,
    so a second click on a stale message does not undo the first) → (release, scope, number, done)."""
    parts = value.split(":")
    if (
        len(parts) not in {3, 4}
        or not TASK_NUMBER.fullmatch(parts[2])
        or (len(parts) == 4 and parts[3] not in {"tick", "untick"})
    ):
        raise UsageError("This button names no checklist item; use `/phase tasks ID` to see the checklist.")
    done = None if len(parts) == 3 else parts[3] == "tick"
    return parts[0], parts[1], int(parts[2]), done


def confirm_value(release_id: str, phase_id: str, note: str) -> str:
    """The value of *Finish anyway*: `RELEASE:PHASE`, with the note typed with `/phase done` kept for the click."""
    value = f"{release_id}:{phase_id}"
    return value + f":{note.strip()[:1800]}" if note.strip() else value


def parse_confirm(value: str) -> tuple[str, str, str]:
    """A PHASE_DONE_CONFIRM value `RELEASE:PHASE` (optionally `:NOTE`, the note typed with `/phase done`)."""
    parts = value.split(":", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise UsageError("This button names no phase; finish it with `/phase done ID --force [note]`.")
    return parts[0], parts[1], parts[2] if len(parts) > 2 else ""


def toggle_value(release: Release, scope: str, number: int, *, done: bool) -> str:
    """The value of a tick (`done`) or untick button."""
    return f"{release.id}:{scope}:{number}:{'tick' if done else 'untick'}"


# --- what messages show of a checklist ------------------------------------------------------------------------

SUMMARY_DONE = 3
"""Ticked tasks a one-line summary names (the latest in plan order); the earlier ones are counted."""
SUMMARY_OPEN = 3
"""Open tasks a one-line summary names (the next ones); the later ones are counted."""


def no_tasks() -> dict[str, Any]:
    """`task_view` of a checklist without items (most phases)."""
    return {
        "tasks": [],
        "tasks_done": 0,
        "tasks_total": 0,
        "tasks_open": [],
        "tasks_summary": [],
        "tasks_earlier": 0,
        "tasks_later": 0,
    }


def task_view(release: Release, plan: Plan, scope: str, checked: dict[int, TaskCheck] | None = None) -> dict[str, Any]:
    """Template data of a checklist (documented in the README): every task, the counts, the open ones, and
    a short summary for one line (`summary`: the last ticked and the next open tasks, with icons).

    `checked` is `release.checked(scope)`, when the caller has it already (see `checks_by_scope`)."""
    listed = items(plan, scope)
    if not listed:  # ticks of items the plan no longer lists are not shown
        return no_tasks()
    if checked is None:
        checked = release.checked(scope)
    tasks = [
        {
            "number": n,
            "text": text,
            "done": n in checked,
            "by": checked[n].done_by if n in checked else None,
            "at": checked[n].at if n in checked else None,
            "note": checked[n].note if n in checked else "",
        }
        for n, text in enumerate(listed, start=1)
    ]
    done = [t for t in tasks if t["done"]]
    left = [t for t in tasks if not t["done"]]
    summary = [{"icon": "✅", **t} for t in done[-SUMMARY_DONE:]] + [{"icon": "⏳", **t} for t in left[:SUMMARY_OPEN]]
    return {
        "tasks": tasks,
        "tasks_done": len(done),
        "tasks_total": len(tasks),
        "tasks_open": left,
        "tasks_summary": summary,
        "tasks_earlier": max(0, len(done) - SUMMARY_DONE),
        "tasks_later": max(0, len(left) - SUMMARY_OPEN),
    }


def checks_by_scope(release: Release) -> dict[str, dict[int, TaskCheck]]:
    """`release.checked(scope)` of every scope at once, for views of all the phases."""
    grouped: dict[str, dict[int, TaskCheck]] = {}
    for check in release.task_checks:
        grouped.setdefault(check.scope, {})[check.number] = check
    return grouped
