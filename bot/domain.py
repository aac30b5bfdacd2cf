"""The release's state, the commands that change it and the effects a change asks for.

Plain frozen dataclasses: the rules in `bot.rules` take these and `now` and return new ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from operator import attrgetter, indexOf
from typing import Any, TypeVar

T = TypeVar("T")


class ReleaseStatus(StrEnum):
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    POSTPONED = "postponed"
    ABORTED = "aborted"

    @property
    def finished(self) -> bool:
        return self in _RELEASE_FINISHED


_RELEASE_FINISHED = frozenset({ReleaseStatus.COMPLETED, ReleaseStatus.ROLLED_BACK, ReleaseStatus.ABORTED})
# built once: a member lookup on an enum class costs a few hundred nanoseconds, and views ask per phase
NOT_STARTED = frozenset({ReleaseStatus.SCHEDULED, ReleaseStatus.POSTPONED})
"""A release that may still be voted on and started."""

GO_NO_GO = "go_no_go"
"""Decision.kind of the go/no-go decision."""
RESCHEDULED = "rescheduled"
"""Outcome of the go/no-go Decision that ends an attempt: a postponed release was given a new window."""


class PhaseStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def finished(self) -> bool:
        return self in _PHASE_FINISHED


_PHASE_FINISHED = frozenset({PhaseStatus.DONE, PhaseStatus.SKIPPED})


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


SEVERITY_WORDS: dict[str, Severity] = {
    **{s.value: s for s in Severity},
    **{f"sev{n}": s for n, s in enumerate(Severity, start=1)},
    **{f"p{n}": s for n, s in enumerate(Severity, start=1)},
    "crit": Severity.CRITICAL,
    "med": Severity.MEDIUM,
}
"""What people (and plans) may write for a severity: the names, sev1-sev4, p1-p4."""


class IssueStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class PageStatus(StrEnum):
    OPEN = "open"
    ACKED = "acked"
    EXHAUSTED = "exhausted"


class SignOffStatus(StrEnum):
    SIGNED = "signed"
    REFUSED = "refused"


GO_NO_GO_CHECKLIST = "go_no_go"
"""`TaskCheck.scope` of the go/no-go checklist; phase ids are slugs, so none can be this."""


class Vote(StrEnum):
    GO = "go"
    NO_GO = "no_go"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a Slack user and the plan roles they hold (directly or through a user group)."""

    user_id: str
    roles: frozenset[str] = frozenset()
    scheduled: bool = False
    """True only for Warroom's own actors (SYSTEM, what timers act as; ALERTMANAGER and GRAFANA, what the
    authenticated alert hook acts as): no plan role and no Slack request can make an actor this."""

    @property
    def in_plan(self) -> bool:
        return bool(self.roles)


SYSTEM = Actor("warroom", scheduled=True)
ALERTMANAGER = Actor("alertmanager", scheduled=True)
"""Who reports and resolves issues from an authenticated Alertmanager webhook (no Slack request can be it)."""
GRAFANA = Actor("grafana", scheduled=True)
"""The same for Grafana alerting's webhook."""


@dataclass(frozen=True, slots=True)
class Phase:
    id: str
    name: str
    position: int
    planned_start: datetime
    planned_end: datetime
    owners: tuple[str, ...] = ()
    region: str | None = None
    status: PhaseStatus = PhaseStatus.PENDING
    started_at: datetime | None = None
    finished_at: datetime | None = None
    started_by: str | None = None
    finished_by: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Issue:
    number: int
    severity: Severity
    component: str
    impact: str
    reporter: str
    reported_at: datetime
    region: str | None = None
    error: str = ""
    status: IssueStatus = IssueStatus.OPEN
    investigator: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolution: str = ""
    channel: str | None = None
    ts: str | None = None


@dataclass(frozen=True, slots=True)
class AlertLink:
    """An alert (by its fingerprint) and the issue it opened: a repeat or regrouped delivery updates that issue."""

    fingerprint: str
    issue_number: int
    name: str
    status: str
    """`firing` or `resolved`, as Alertmanager last said."""
    starts_at: datetime
    ends_at: datetime | None = None
    summary: str = ""
    description: str = ""
    value: str = ""
    generator_url: str = ""
    source: str = "alertmanager"
    trigger: str = ""
    """The plan's rollback trigger this alert stands for ("" when it is none)."""
    lines: int = 0
    """How many update lines were posted about it (their outbox keys count up)."""


@dataclass(frozen=True, slots=True)
class Page:
    number: int
    level: int | None
    targets: tuple[str, ...]
    reason: str
    created_by: str
    created_at: datetime
    issue_number: int | None = None
    status: PageStatus = PageStatus.OPEN
    acked_by: str | None = None
    acked_at: datetime | None = None
    escalate_at: datetime | None = None
    last_notified_level: int | None = None


@dataclass(frozen=True, slots=True)
class Ballot:
    voter: str
    role: str
    vote: Vote
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Decision:
    kind: str
    outcome: str
    rationale: str
    decided_by: str
    at: datetime
    overrode_tally: bool = False


@dataclass(frozen=True, slots=True)
class TaskCheck:
    """A ticked checklist item: task `number` (1-based, as the plan lists them) of `scope`, a phase id or
    `GO_NO_GO_CHECKLIST`. Unticking removes it; who ticked and when stay on the timeline."""

    scope: str
    number: int
    done_by: str
    at: datetime
    note: str = ""


@dataclass(frozen=True, slots=True)
class SignOff:
    """One role's answer to its sign-off (plan `signoffs`): signed, or refused with a reason in `comment`."""

    role: str
    status: SignOffStatus
    by: str
    at: datetime
    comment: str = ""


@dataclass(frozen=True, slots=True)
class CheckState:
    """The last reading of one of the plan's checks (SPEC §4 `checks:`), and how long it has been failing.

    `ok` is None when the check could not be read (`error` says why); `failing_since` is when the current
    stretch of failing readings began, `asked_at` when that stretch raised the rollback question.
    """

    name: str
    read_at: datetime
    value: float | None = None
    ok: bool | None = None
    error: str = ""
    failing_since: datetime | None = None
    asked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Release:
    """The aggregate a command changes; one database transaction loads and saves it."""

    id: str
    name: str
    version: str
    timezone: str
    window_start: datetime
    window_end: datetime
    status: ReleaseStatus = ReleaseStatus.SCHEDULED
    started_at: datetime | None = None
    ended_at: datetime | None = None
    revision: int = 0
    phases: tuple[Phase, ...] = ()
    issues: tuple[Issue, ...] = ()
    pages: tuple[Page, ...] = ()
    ballots: tuple[Ballot, ...] = ()
    decisions: tuple[Decision, ...] = ()
    vote_opened_at: datetime | None = None
    vote_channel: str | None = None
    vote_ts: str | None = None
    task_checks: tuple[TaskCheck, ...] = ()
    signoffs: tuple[SignOff, ...] = ()
    signoffs_requested_at: datetime | None = None
    approved_at: datetime | None = None
    """When the last required sign-off was given: the final approval time."""
    handoff_posted_at: datetime | None = None
    handoff_accepted_by: str | None = None
    handoff_accepted_at: datetime | None = None
    alerts: tuple[AlertLink, ...] = ()
    checks: tuple[CheckState, ...] = ()
    """The plan's checks as last read from Prometheus (see bot/core/checks.py)."""

    def check(self, name: str) -> CheckState | None:
        return next((c for c in self.checks if c.name == name), None)

    def phase(self, phase_id: str) -> Phase | None:
        return next((p for p in self.phases if p.id == phase_id), None)

    def issue(self, number: int) -> Issue | None:
        return next((i for i in self.issues if i.number == number), None)

    def page(self, number: int) -> Page | None:
        return next((p for p in self.pages if p.number == number), None)

    @property
    def open_issues(self) -> tuple[Issue, ...]:
        open_ = IssueStatus.OPEN
        return tuple(i for i in self.issues if i.status is open_)

    def checked(self, scope: str) -> dict[int, TaskCheck]:
        """The ticked items of a checklist (a phase id or `GO_NO_GO_CHECKLIST`) by task number."""
        return {c.number: c for c in self.task_checks if c.scope == scope}

    def with_task_check(self, check: TaskCheck) -> Release:
        """The release with `check` added or replaced (by scope and number), one revision on."""
        checks = _upsert(self.task_checks, check, attrgetter("scope", "number"))
        return replace(self, task_checks=checks, revision=self.revision + 1)

    def without_task_check(self, scope: str, number: int) -> Release:
        """The release with task `number` of `scope` unticked, one revision on."""
        checks = tuple(c for c in self.task_checks if (c.scope, c.number) != (scope, number))
        return replace(self, task_checks=checks, revision=self.revision + 1)

    def signoff(self, role: str) -> SignOff | None:
        return next((s for s in self.signoffs if s.role == role), None)

    def with_signoff(self, signoff: SignOff) -> Release:
        """The release with `signoff` added or replaced (by role), one revision on."""
        return replace(self, signoffs=_upsert(self.signoffs, signoff, attrgetter("role")), revision=self.revision + 1)

    def decision(self, kind: str) -> Decision | None:
        found = [d for d in self.decisions if d.kind == kind]
        return found[-1] if found else None

    def with_issue(self, issue: Issue) -> Release:
        """The release with `issue` added or replaced (by number), one revision on."""
        return replace(self, issues=_upsert(self.issues, issue, attrgetter("number")), revision=self.revision + 1)

    def alert(self, fingerprint: str) -> AlertLink | None:
        return next((a for a in self.alerts if a.fingerprint == fingerprint), None)

    def with_alert(self, link: AlertLink) -> Release:
        """The release with `link` added or replaced (by fingerprint), one revision on."""
        return replace(self, alerts=_upsert(self.alerts, link, attrgetter("fingerprint")), revision=self.revision + 1)

    def with_page(self, page: Page) -> Release:
        """The release with `page` added or replaced (by number), one revision on."""
        return replace(self, pages=_upsert(self.pages, page, attrgetter("number")), revision=self.revision + 1)

    @property
    def attempt(self) -> int:
        """1 for the first window; one more each time the release was postponed and given a new window."""
        return 1 + sum(1 for d in self.decisions if d.kind == GO_NO_GO and d.outcome == RESCHEDULED)

    def attempt_key(self, key: str) -> str:
        """An outbox key for the current attempt; see `attempt_key`."""
        return attempt_key(key, self.attempt)


def _upsert(items: tuple[T, ...], item: T, key: Callable[[T], object]) -> tuple[T, ...]:
    """`items` with `item` in the place of the one with its key, or appended. The search runs in C (an
    `attrgetter` key) and builds no index: a release's issues grow all day, and each command changes one."""
    try:
        at = indexOf(map(key, items), key(item))
    except ValueError:
        return (*items, item)
    return (*items[:at], item, *items[at + 1 :])


def attempt_key(key: str, attempt: int) -> str:
    """The key of a message of the given attempt: the first keeps the plain key, later ones get a suffix,
    so a message sent for an earlier window (a notice, the vote) is sent again for the new one."""
    return key if attempt == 1 else f"{key}:attempt{attempt}"


# --- timeline events and effects ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the post-mortem timeline."""

    kind: str
    at: datetime
    actor: str | None = None
    subject: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Post:
    """Post a message rendered from `template` with `data` to `channel` (a plan channel key or an ID).

    `key` makes it idempotent within the release; `due_at` defers it (None: now); `thread_of` names the
    key of an earlier post to reply under; `grace` bounds how late it may still go out.
    """

    channel: str
    template: str
    data: dict[str, Any] = field(default_factory=dict)
    key: str | None = None
    due_at: datetime | None = None
    thread_of: str | None = None
    grace_seconds: int | None = None
    kind: str = "post"


@dataclass(frozen=True, slots=True)
class Refresh:
    """Re-render a message the bot already posted (an issue card, the vote) and update it in place."""

    key: str


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Run `rule` (a timer command name) at `at`; `key` is unique in the release and replaces an older one."""

    key: str
    at: datetime
    rule: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CancelTimer:
    key: str


@dataclass(frozen=True, slots=True)
class CancelPosts:
    """Drop still-pending posts whose key starts with `prefix` and whose time is after `after`."""

    after: datetime
    reason: str
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class External:
    """A call to a system other than Slack (PagerDuty); delivered after commit, failures reported."""

    system: str
    action: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RefreshHome:
    """Publish the App Home again for `users` (Slack user IDs), or, when empty, for everyone of the release
    who opened it, whatever their Home shows waiting; after commit, paced, never stored (bot/home.py).

    Without it, a change re-publishes only the Homes whose waiting items changed."""

    users: tuple[str, ...] = ()


Effect = Post | Refresh | SetTimer | CancelTimer | CancelPosts | External | RefreshHome


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a rule decided: the new state, timeline events, effects, and a private reply for the actor."""

    release: Release
    events: tuple[Event, ...] = ()
    effects: tuple[Effect, ...] = ()
    reply: str = ""


class DomainError(Exception):
    """A command that cannot be carried out; the message tells the person what to do instead."""

    def __init__(self, message: str, usage: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage

    def __str__(self) -> str:
        return f"{self.message}\n{self.usage}" if self.usage else self.message


class NotAllowed(DomainError):
    """The actor's roles do not permit the action."""


class UsageError(DomainError):
    """The command's text could not be understood."""


class NotFound(DomainError):
    """A phase, issue, page or release that does not exist."""


class NotSaved(DomainError):
    """The database could not save the change (disk full, database gone): the transaction rolled back."""

    def __init__(self, cause: str) -> None:
        super().__init__(
            f"The database could not save this ({cause}), so nothing was changed. "
            "Try again in a few minutes, and tell whoever runs Warroom."
        )


class Conflict(DomainError):
    """The command does not fit the current state (a phase already done, a vote already decided)."""
