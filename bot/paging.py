"""Paging rules: `/page`, acknowledgements and the escalation ladder. Pure: (state, command, now) → Outcome.

A page notifies its targets by DM and the war room by a post, both with an *Acknowledge* button. A page to
an escalation level climbs the plan's ladder while nobody acknowledges: after the level's `ack_within`
the next level is paged. The last level is notified once more after its own wait, then the ladder stops
(the page is EXHAUSTED). A page to a role or a person is not a ladder: it is repeated once after 15m and
then stops the same way; climbing is a deliberate act (`/page 1 …` or the issue card's *Escalate*).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from bot.core.handoff import level_roles
from bot.core.text import clip
from bot.domain import (
    Actor,
    CancelTimer,
    Conflict,
    Effect,
    Event,
    External,
    NotAllowed,
    NotFound,
    Outcome,
    Page,
    PageStatus,
    Post,
    Refresh,
    Release,
    SetTimer,
    Severity,
    UsageError,
)
from bot.permissions import Action, authorize
from bot.plan import EscalationLevel, Plan
from bot.timeparse import format_duration
from bot.timers import timer_rule

PAGE_USAGE = (
    "Usage: `/page LEVEL REASON` (e.g. `/page 2 failover stuck`) · `/page ROLE REASON` (e.g. `/page dba …`)"
    " · "
    "`/page @person REASON` · `/page ack N` · `/page list` (add `--release ID` outside the war room)"
)
DEFAULT_WAIT = timedelta(minutes=15)
"""The wait of a last level without `ack_within`, and of a page to a role or person."""
CLIMB_RULE = "page.climb"
MAX_REASON = 2000

_USER = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
_GROUP = re.compile(r"^<!subteam\^(S[A-Z0-9]+)(?:\|[^>]*)?>$")
_LEVEL = re.compile(r"^(?:l|level|lvl)?([0-9]{1,3})$", re.IGNORECASE)
_NUMBER = re.compile(r"^#?([0-9]{1,9})$")


# --- commands and parsing ----------------------------------------------------------------------------------


class TargetKind(StrEnum):
    LEVEL = "level"
    ROLE = "role"
    PERSON = "person"


@dataclass(frozen=True, slots=True)
class CreatePage:
    kind: TargetKind
    target: str
    reason: str


@dataclass(frozen=True, slots=True)
class AckPage:
    number: int | None = None


@dataclass(frozen=True, slots=True)
class ListPages:
    pass


PageCommand = CreatePage | AckPage | ListPages


def parse_page_number(word: str, usage: str = PAGE_USAGE) -> int:
    """`3` or `#3` → 3; anything else is a UsageError."""
    match = _NUMBER.fullmatch(word.strip())
    if not match:
        raise UsageError(f"`{word[:40]}` is not a page number.", usage)
    return int(match.group(1))


def parse_target(word: str) -> tuple[TargetKind, str]:
    """A level (`2`, `L2`), a person or user group by mention (`<@U123|name>`, `<!subteam^S1|@sre>`), or a
    word: a role name or an ID, which only the plan can tell (`create_page`)."""
    if match := _LEVEL.fullmatch(word):
        return TargetKind.LEVEL, str(int(match.group(1)))
    if match := _USER.fullmatch(word) or _GROUP.fullmatch(word):
        return TargetKind.PERSON, match.group(1)
    role = word.lstrip("@")
    if word.startswith("<") or not role:
        raise UsageError(f"`{word[:60]}` is not a person, a role or a level.", PAGE_USAGE)
    return TargetKind.ROLE, role


def parse_page(text: str) -> PageCommand:
    """`/page LEVEL|ROLE|@user REASON`, `/page ack [N]`, `/page list`."""
    parts = text.strip().split(None, 1)
    if not parts:
        raise UsageError("Who should be paged, and why?", PAGE_USAGE)
    first = parts[0]
    rest = parts[1].strip() if len(parts) > 1 else ""
    if first.lower() in {"ack", "acknowledge"}:
        if not rest:
            return AckPage()
        words = rest.split()
        if len(words) > 1:
            raise UsageError("`/page ack` takes one page number.", PAGE_USAGE)
        return AckPage(parse_page_number(words[0]))
    if first.lower() in {"list", "ls"}:
        if rest:
            raise UsageError("`/page list` takes no arguments.", PAGE_USAGE)
        return ListPages()
    kind, target = parse_target(first)
    if not rest:
        raise UsageError(f"Say why you page {first[:60]}: `/page {first[:60]} REASON`.", PAGE_USAGE)
    return CreatePage(kind, target, clip(rest, MAX_REASON))


# --- the ladder --------------------------------------------------------------------------------------------


def levels(plan: Plan) -> list[EscalationLevel]:
    """The plan's escalation levels in order."""
    return sorted(plan.escalation, key=lambda lvl: lvl.level)


def level_spec(plan: Plan, number: int) -> EscalationLevel | None:
    return next((lvl for lvl in plan.escalation if lvl.level == number), None)


def wait_for(plan: Plan, level: int | None) -> timedelta:
    """How long a page at `level` (None: a role or person) waits for an acknowledgement."""
    spec = level_spec(plan, level) if level is not None else None
    return spec.ack_within if spec is not None and spec.ack_within is not None else DEFAULT_WAIT


def level_name(plan: Plan, level: int, release: Release | None = None) -> str:
    """`Level 2 (DevOps Lead / DBA)`; with `release`, a first level the handoff moved names the day team."""
    spec = level_spec(plan, level)
    notify = level_roles(plan, release, spec) if spec and release else (list(spec.notify) if spec else [])
    roles = ", ".join(r.replace("_", " ") for r in notify)
    moved = spec is not None and notify != list(spec.notify)
    label = roles if moved else (spec.name if spec and spec.name else roles)
    return f"Level {level}" + (f" ({label})" if label else "")


def level_targets(plan: Plan, release: Release, spec: EscalationLevel) -> tuple[str, ...]:
    """The people and groups a page at level `spec` notifies now (see `level_roles`)."""
    return tuple(plan.members(level_roles(plan, release, spec)))


def timer_key(number: int) -> str:
    return f"page:{number}:climb"


def dedup_key(release_id: str, number: int) -> str:
    """The stable id of a page outside Slack (PagerDuty's dedup_key)."""
    return f"warroom-{release_id}-page-{number}"


def stage_of(level: int | None, again: bool = False) -> str:
    """The name of one round of notifications, unique per page: `L1`, `L2`, `L3-again`, `direct`…"""
    base = f"L{level}" if level is not None else "direct"
    return f"{base}-again" if again else base


def room_key(number: int, stage: str) -> str:
    return f"page:{number}:{stage}:room"


def _notify(page: Page, stage: str, targets: tuple[str, ...], data: dict[str, Any]) -> list[Effect]:
    """A DM to each target (user groups are expanded at delivery) and one war-room post mentioning them."""
    base = {"page": page.number, "stage": stage, "targets": list(targets), **data}
    effects: list[Effect] = [
        Post(target, "page_dm", {**base, "to": target}, key=f"page:{page.number}:{stage}:dm:{target}")
        for target in targets
    ]
    effects.append(Post("war_room", "page_notice", base, key=room_key(page.number, stage)))
    return effects


def _card(page: Page) -> list[Effect]:
    """The issue card shows its pages, so it follows their changes."""
    return [Refresh(f"issue:{page.issue_number}")] if page.issue_number is not None else []


def _pagerduty(plan: Plan, release: Release, page: Page, action: str) -> list[Effect]:
    if plan.integrations.pagerduty is None:
        return []
    data: dict[str, Any] = {"dedup_key": dedup_key(release.id, page.number), "page": page.number}
    if action == "trigger":
        issue = release.issue(page.issue_number) if page.issue_number is not None else None
        severity = (
            {
                Severity.CRITICAL: "critical",
                Severity.HIGH: "error",
                Severity.MEDIUM: "warning",
                Severity.LOW: "info",
            }[issue.severity]
            if issue
            else "error"
        )
        data.update(
            summary=f"{release.name} {release.version}: {page.reason}"[:1024],
            severity=severity,
            source=f"warroom/{release.id}",
            component=issue.component if issue else None,
            custom_details={
                "page": page.number,
                "level": page.level,
                "targets": list(page.targets),
                "paged_by": page.created_by,
                "issue": page.issue_number,
            },
        )
    return [External("pagerduty", action, data)]


def open_page(
    release: Release,
    plan: Plan,
    by: str,
    now: datetime,
    *,
    level: int | None,
    targets: tuple[str, ...],
    reason: str,
    issue_number: int | None = None,
    label: str = "",
) -> Outcome:
    """Create page N+1: notify the targets, tell the war room, start the ladder's clock."""
    if not targets:
        raise UsageError(f"Nobody to page: {label or 'the target'} lists no people in the plan.", PAGE_USAGE)
    number = max((p.number for p in release.pages), default=0) + 1
    wait = wait_for(plan, level)
    page = Page(
        number=number,
        level=level,
        targets=targets,
        reason=reason,
        created_by=by,
        created_at=now,
        issue_number=issue_number,
        escalate_at=now + wait,
        last_notified_level=level,
    )
    updated = release.with_page(page)
    stage = stage_of(level)
    event = Event(
        "page.created",
        now,
        by,
        f"page:{number}",
        {"level": level, "targets": list(targets), "reason": reason, "issue": issue_number, "to": label},
    )
    effects: list[Effect] = _notify(
        page,
        stage,
        targets,
        {"kind": "created", "level": level, "by": by, "label": label, "wait": format_duration(wait)},
    )
    effects.append(SetTimer(timer_key(number), now + wait, CLIMB_RULE, {"page": number, "level": level}))
    effects += _card(page)
    effects += _pagerduty(plan, updated, page, "trigger")
    who = label or ", ".join(_mention(t) for t in targets)
    reply = f"Page #{number} sent to {who}. It is acknowledged with its button or `/page ack {number}`."
    return Outcome(updated, (event,), tuple(effects), reply)


def _mention(member: str) -> str:
    """How a reply names a target: a person by mention, a user group by its ID (a reply notifies nobody)."""
    return f"user group {member}" if member.startswith("S") else f"<@{member}>"


def climb(release: Release, plan: Plan, page: Page, now: datetime, *, by: str | None = None) -> Outcome:
    """Move an open page one rung up: to the next level, or (at the top, or off the ladder) a last notice."""
    current = page.last_notified_level
    nxt = level_spec(plan, current + 1) if current is not None and page.level is not None else None
    if nxt is not None and current is not None:
        targets = level_targets(plan, release, nxt)
        wait = wait_for(plan, nxt.level)
        changed = replace(
            page,
            targets=tuple(dict.fromkeys((*page.targets, *targets))),
            last_notified_level=nxt.level,
            escalate_at=now + wait,
        )
        updated = release.with_page(changed)
        data = {"from": current, "to": nxt.level, "manual": by is not None, "targets": list(targets)}
        events = [Event("page.escalated", now, by, f"page:{page.number}", data)]
        note = {
            "kind": "escalated",
            "level": nxt.level,
            "from_level": current,
            "waited": format_duration(wait_for(plan, current)),
            "by": by,
            "label": level_name(plan, nxt.level),
            "wait": format_duration(wait),
        }
        effects: list[Effect] = _notify(changed, stage_of(nxt.level), targets, note)
        effects.append(
            SetTimer(timer_key(page.number), now + wait, CLIMB_RULE, {"page": page.number, "level": nxt.level})
        )
        effects += _card(changed)
        if not targets:
            # a level whose roles have no people must not stall the ladder silently: the notice says so
            events.append(Event("page.level_empty", now, None, f"page:{page.number}", {"level": nxt.level}))
        reply = f"Page #{page.number} escalated to Level {nxt.level}."
        return Outcome(updated, tuple(events), tuple(effects), reply)
    if by is not None:
        top = f"the top level (Level {current})" if current is not None else "a role or a person, not a level"
        raise Conflict(
            f"Page #{page.number} went to {top}; there is no level to escalate to. "
            f"Page a level with `/page LEVEL REASON`."
        )
    # the last rung: notify the same people once more, then stop and say so
    changed = replace(page, status=PageStatus.EXHAUSTED, escalate_at=None)
    updated = release.with_page(changed)
    spec = level_spec(plan, current) if current is not None else None
    targets = level_targets(plan, release, spec) if spec is not None else page.targets
    waited = format_duration(wait_for(plan, current))
    final = (
        Event("page.renotified", now, None, f"page:{page.number}", {"level": current, "targets": list(targets)}),
        Event("page.exhausted", now, None, f"page:{page.number}", {"level": current, "waited": waited}),
    )
    note = {"kind": "again", "level": current, "waited": waited, "by": None}
    effects = [*_notify(changed, stage_of(current, again=True), targets, note), *_card(changed)]
    return Outcome(updated, final, tuple(effects))


@timer_rule(CLIMB_RULE)
def on_page_timeout(release: Release, plan: Plan, now: datetime, data: dict[str, Any]) -> Outcome:
    """A page's wait ran out: climb if it is still open and still where this timer put it."""
    page = release.page(int(data.get("page", 0)))
    if page is None or not page_is_climbing(page) or page.last_notified_level != data.get("level"):
        return Outcome(release)  # acknowledged, stopped, or moved on by another timer
    if page.issue_number is not None:
        issue = release.issue(page.issue_number)
        if issue is not None and issue.resolved_at is not None:
            return Outcome(release)
    return climb(release, plan, page, now)


# --- commands ----------------------------------------------------------------------------------------------


def decide_page(release: Release, plan: Plan, actor: Actor, command: PageCommand, now: datetime) -> Outcome:
    """Run a parsed `/page` command."""
    match command:
        case CreatePage():
            return create_page(release, plan, actor, command, now)
        case AckPage():
            return ack_page(release, plan, actor, command, now)
        case _:
            raise UsageError("`/page list` only shows pages.", PAGE_USAGE)


def create_page(release: Release, plan: Plan, actor: Actor, command: CreatePage, now: datetime) -> Outcome:
    """`/page LEVEL|ROLE|@user REASON` by someone in the plan."""
    authorize(plan, actor, Action.PAGE)
    level: int | None = None
    label = ""
    match command.kind:
        case TargetKind.LEVEL:
            level = int(command.target)
            spec = level_spec(plan, level)
            if spec is None:
                known = ", ".join(str(lvl.level) for lvl in levels(plan)) or "none (the plan has no escalation:)"
                raise UsageError(f"There is no escalation level {level}. Levels: {known}.", PAGE_USAGE)
            targets = level_targets(plan, release, spec)
            label = level_name(plan, level, release)
        case TargetKind.ROLE:
            roles = {role.casefold(): role for role in plan.people}
            role = roles.get(command.target.casefold())
            if role is not None:
                targets = tuple(plan.members([role]))
                label = role.replace("_", " ")
            elif command.target in plan.members(list(plan.people)):
                targets = (command.target,)  # a person or user group the plan lists, by ID
            else:
                raise _not_in_plan(plan, command.target)
        case _:
            # a person named by mention is a workspace member; a user group must be one of the plan's
            if command.target.startswith("S") and command.target not in plan.members(list(plan.people)):
                raise _not_in_plan(plan, command.target, group=True)
            targets = (command.target,)
    return open_page(
        release, plan, actor.user_id, now, level=level, targets=targets, reason=command.reason, label=label
    )


def _not_in_plan(plan: Plan, target: str, *, group: bool = False) -> UsageError:
    roles = ", ".join(sorted(plan.people)) or "none"
    what = (
        f"The user group {target[:60]} is not in this plan."
        if group
        else f"The plan has no role {target[:60]!r} and lists no person or user group by that name."
    )
    return UsageError(
        f"{what} Roles: {roles}. Page a role, an escalation level (`/page 1 REASON`) or a person by mention (`@name`).",
        PAGE_USAGE,
    )


def ack_page(release: Release, plan: Plan, actor: Actor, command: AckPage, now: datetime) -> Outcome:
    """Acknowledge a page: the ladder stops, the war room hears who took it and how long it took."""
    number = command.number
    if number is None:
        mine = [p for p in release.pages if p.status is not PageStatus.ACKED and actor.user_id in p.targets]
        waiting = mine or [p for p in release.pages if p.status is not PageStatus.ACKED]
        if len(waiting) != 1:
            which = ", ".join(f"#{p.number}" for p in waiting) or "none"
            raise UsageError(f"Say which page: `/page ack N` (unacknowledged: {which}).", PAGE_USAGE)
        number = waiting[0].number
    page = release.page(number)
    if page is None:
        open_ones = ", ".join(f"#{p.number}" for p in release.pages if p.status is not PageStatus.ACKED) or "none"
        raise NotFound(f"There is no page #{number}. Unacknowledged pages: {open_ones}.", PAGE_USAGE)
    # the person paged may always take their own page, even when the plan does not list them
    if actor.user_id not in page.targets:
        try:
            authorize(plan, actor, Action.ACK_PAGE)
        except NotAllowed as exc:
            raise NotAllowed(f"{exc.message} (Page #{page.number} was sent to others.)") from None
    if page.status is PageStatus.ACKED:
        raise Conflict(f"Page #{page.number} was already acknowledged by <@{page.acked_by}>.")
    changed = replace(page, status=PageStatus.ACKED, acked_by=actor.user_id, acked_at=now, escalate_at=None)
    updated = release.with_page(changed)
    seconds = int((now - page.created_at).total_seconds())
    event = Event(
        "page.acked",
        now,
        actor.user_id,
        f"page:{page.number}",
        {"seconds_to_ack": seconds, "level": page.last_notified_level, "was": page.status.value},
    )
    effects: list[Effect] = [CancelTimer(timer_key(page.number))]
    effects += [Refresh(room_key(page.number, stage)) for stage in _stages(page)]
    effects.append(
        Post(
            "war_room",
            "page_acked",
            {"page": page.number, "by": actor.user_id, "seconds": seconds},
            key=f"page:{page.number}:acked",
        )
    )
    effects += _card(changed)
    effects += _pagerduty(plan, updated, changed, "acknowledge")
    return Outcome(updated, (event,), tuple(effects), f"You acknowledged page #{page.number}; the ladder stopped.")


def _stages(page: Page) -> list[str]:
    """Every notification round a page went through (their war-room posts carry the Ack button)."""
    if page.level is None:
        stages = [stage_of(None)]
        top = None
    else:
        top = page.last_notified_level or page.level
        stages = [stage_of(level) for level in range(page.level, top + 1)]
    if page.status is PageStatus.EXHAUSTED:
        stages.append(stage_of(top, again=True))
    return stages


def stop_pages_for_issue(release: Release, plan: Plan, issue_number: int, now: datetime) -> Outcome:
    """An issue was resolved: its pages stop climbing (and PagerDuty resolves them). Not an ack."""
    return stop_pages(
        release, plan, now, which=lambda p: p.issue_number == issue_number, reason=f"issue #{issue_number} resolved"
    )


def stop_pages(release: Release, plan: Plan, now: datetime, *, which: Callable[[Page], bool], reason: str) -> Outcome:
    """The pages `which` selects stop climbing and repeating (and PagerDuty resolves them). Not an ack."""
    events: list[Event] = []
    effects: list[Effect] = []
    for page in release.pages:
        if not which(page):
            continue
        if page.status is PageStatus.OPEN:
            events.append(Event("page.stopped", now, None, f"page:{page.number}", {"reason": reason}))
            effects.append(CancelTimer(timer_key(page.number)))
            stopped = replace(page, escalate_at=None)
            release = release.with_page(stopped)
            # the war-room notices promised a next step that will not come; the issue card lists the page
            effects += [Refresh(room_key(page.number, stage)) for stage in _stages(stopped)]
            effects += [e for e in _card(stopped) if e not in effects]
        effects += _pagerduty(plan, release, page, "resolve")
    return Outcome(release, tuple(events), tuple(effects))


def page_is_climbing(page: Page) -> bool:
    """True while a timer may still notify someone about this page."""
    return page.status is PageStatus.OPEN and page.escalate_at is not None
