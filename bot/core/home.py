"""What is waiting for one person in a release, for their App Home: pure, given the state and who they are.

A person is part of a release when the plan lists them, directly or through a user group (`Actor.roles`).
What waits for them, most urgent first: a page sent to them (or a group of theirs) that nobody acknowledged,
the go/no-go vote while it is open and they have not voted, their role's sign-off while it is asked for and
unanswered, and the open tasks of running phases they own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime

from bot.domain import Actor, PageStatus, PhaseStatus, Release
from bot.plan import Plan
from bot.votes import vote_ref, vote_state

PAGE = "page"
VOTE = "vote"
SIGNOFF = "signoff"
TASKS = "tasks"
KIND_ORDER = (PAGE, VOTE, SIGNOFF, TASKS)


@dataclass(frozen=True, slots=True)
class Task:
    number: int
    text: str


@dataclass(frozen=True, slots=True)
class Waiting:
    """One thing a person is asked to do in a release; `subject` names it (page number, role, phase id)."""

    kind: str
    release_id: str
    subject: str
    title: str
    detail: str = ""
    due: datetime | None = None
    tasks: tuple[Task, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Person:
    """Who opened the Home: their roles in one plan and the plan's user groups they belong to."""

    actor: Actor
    groups: frozenset[str] = frozenset()

    def targeted_by(self, targets: tuple[str, ...]) -> bool:
        return self.actor.user_id in targets or bool(self.groups & set(targets))


def waiting_for(plan: Plan, release: Release, person: Person) -> list[Waiting]:
    """What `person` is asked to do in `release` under `plan`, most urgent first."""
    items: list[Waiting] = []
    roles = person.actor.roles
    for page in release.pages:
        if page.status is not PageStatus.ACKED and person.targeted_by(page.targets):
            issue = f" (issue #{page.issue_number})" if page.issue_number is not None else ""
            items.append(Waiting(PAGE, release.id, str(page.number), f"Page #{page.number}{issue}", page.reason))
    spec = plan.go_no_go
    voted = any(b.voter == person.actor.user_id for b in release.ballots)
    if spec is not None and vote_state(release, plan) == "open" and roles & set(spec.voters) and not voted:
        items.append(Waiting(VOTE, release.id, vote_ref(release), "Go/no-go vote", due=plan.at(spec.deadline)))
    if release.signoffs_requested_at is not None and release.approved_at is None:
        for signoff in plan.signoffs:
            if signoff.role in roles and release.signoff(signoff.role) is None:
                items.append(Waiting(SIGNOFF, release.id, signoff.role, "Sign-off", signoff.criterion))
    for phase in release.phases:
        phase_spec = plan.phase_spec(phase.id)
        if phase.status is not PhaseStatus.IN_PROGRESS or phase_spec is None or not roles & set(phase_spec.owner):
            continue
        done = release.checked(phase.id)
        open_tasks = tuple(Task(n, t) for n, t in enumerate(phase_spec.tasks, 1) if n not in done)
        if open_tasks:
            items.append(Waiting(TASKS, release.id, phase.id, phase.name, tasks=open_tasks))
    return sorted(items, key=lambda i: KIND_ORDER.index(i.kind))


def digest(items: list[Waiting]) -> str:
    """A short fingerprint of what waits for someone: their Home is published again when it changes."""
    raw = json.dumps([asdict(i) for i in items], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]
