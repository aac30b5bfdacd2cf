"""Issue rules and `/issue` parsing. Pure: text or (state, command, now) in; a command or an Outcome out.

An issue is reported by anyone; it is posted as the ISSUE DETECTED card under outbox key `issue:N`, which
buttons and later changes re-render in place. Critical issues also go to the `incidents` channel and page
escalation level 1 at once.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime
from operator import attrgetter

from bot import evaluation
from bot.core.text import check_typed, clip
from bot.domain import (
    SEVERITY_WORDS,
    Actor,
    Conflict,
    Effect,
    Event,
    Issue,
    IssueStatus,
    NotFound,
    Outcome,
    PageStatus,
    Post,
    Refresh,
    Release,
    Severity,
    UsageError,
)
from bot.lifecycle import evaluation_key, pending_evaluations
from bot.paging import climb, level_name, level_spec, level_targets, levels, open_page, stop_pages_for_issue
from bot.permissions import Action, authorize
from bot.plan import Plan
from bot.votes import vote_refresh

ISSUE_USAGE = (
    "Usage: `/issue SEVERITY COMPONENT [REGION] IMPACT [| ERROR]` "
    "(e.g. `/issue high api region1 5xx errors on /appointments | Database connection timeout`) · "
    "`/issue` alone opens a form · `/issue list` · `/issue resolve N [note]`. "
    "Severities: critical, high, medium, low (or sev1-sev4, p1-p4)."
)
SEVERITIES = SEVERITY_WORDS
MAX_IMPACT = 2000
MAX_ERROR = 1000
MAX_COMPONENT = 100
MAX_REGION = 64


# --- commands ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportIssue:
    severity: Severity
    component: str
    impact: str
    region: str | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class ResolveIssue:
    number: int
    note: str = ""


@dataclass(frozen=True, slots=True)
class InvestigateIssue:
    number: int


@dataclass(frozen=True, slots=True)
class EscalateIssue:
    number: int


@dataclass(frozen=True, slots=True)
class ListIssues:
    pass


@dataclass(frozen=True, slots=True)
class OpenIssueForm:
    pass


IssueCommand = ReportIssue | ResolveIssue | InvestigateIssue | EscalateIssue | ListIssues | OpenIssueForm


# --- parsing -----------------------------------------------------------------------------------------------


def parse_severity(word: str) -> Severity:
    """`high`, `High`, `sev2`, `P2` → Severity.HIGH; anything else is a UsageError."""
    found = SEVERITIES.get(word.strip().lower())
    if found is None:
        raise UsageError(
            f"`{word[:40]}` is not a severity. Use critical, high, medium or low (or sev1-sev4, p1-p4).",
            ISSUE_USAGE,
        )
    return found


def parse_issue_number(word: str) -> int:
    """`3` or `#3` → 3."""
    text = word.strip().removeprefix("#")
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise UsageError(f"`{word[:40]}` is not an issue number.", ISSUE_USAGE)
    return int(text)


_VERBS = {
    "resolve": ResolveIssue,
    "close": ResolveIssue,
    "investigate": InvestigateIssue,
    "escalate": EscalateIssue,
}


def parse_issue(text: str, regions: Collection[str] = ()) -> IssueCommand:
    """Parse `/issue` text. The third word is a region only when `regions` (the plan's) contains it."""
    stripped = text.strip()
    if not stripped:
        return OpenIssueForm()
    head, _, rest = stripped.partition(" ")
    verb = head.lower()
    rest = rest.strip()
    if verb in {"list", "ls", "open"}:
        if rest:
            raise UsageError(f"`/issue {verb}` takes no arguments.", ISSUE_USAGE)
        return ListIssues()
    if verb in _VERBS:
        if not rest:
            raise UsageError(f"Which issue? `/issue {verb} N`.", ISSUE_USAGE)
        number_word, _, note = rest.partition(" ")
        number = parse_issue_number(number_word)
        if _VERBS[verb] is ResolveIssue:
            return ResolveIssue(number, clip(note.strip(), MAX_IMPACT))
        if note.strip():
            raise UsageError(f"`/issue {verb} N` takes only an issue number.", ISSUE_USAGE)
        return _VERBS[verb](number)  # type: ignore[no-any-return]
    return parse_report(stripped, regions)


def parse_report(text: str, regions: Collection[str] = ()) -> ReportIssue:
    """`SEVERITY COMPONENT [REGION] IMPACT [| ERROR]`; a `|` inside a mention (`<@U…|name>`) is not the bar."""
    main, bar, error = _partition_bar(text)
    parts = main.split(None, 2)
    if not parts:
        raise UsageError("Say how severe the issue is, which component and what the impact is.", ISSUE_USAGE)
    severity = parse_severity(parts[0])
    if len(parts) < 2:
        raise UsageError("Which component is affected? Then describe the impact.", ISSUE_USAGE)
    component = parts[1]
    rest = parts[2].strip() if len(parts) > 2 else ""
    region: str | None = None
    wanted = {r.lower(): r for r in regions}
    if rest and wanted:
        first, _, after = rest.partition(" ")
        if first.lower() in wanted:
            region, rest = wanted[first.lower()], after.strip()
    if not rest:
        raise UsageError("Describe the impact: what do users see?", ISSUE_USAGE)
    error_text = clip(error.strip(), MAX_ERROR) if bar else ""
    return ReportIssue(severity, component, clip(rest, MAX_IMPACT), region, error_text)


def _partition_bar(text: str) -> tuple[str, str, str]:
    depth = 0
    for i, char in enumerate(text):
        if char == "<":
            depth += 1
        elif char == ">":
            depth = max(depth - 1, 0)
        elif char == "|" and depth == 0:
            return text[:i], "|", text[i + 1 :]
    return text, "", ""


# --- checking against the plan -----------------------------------------------------------------------------


def check_component(plan: Plan, value: str) -> str:
    """The plan's spelling of a component; any component when the plan lists none."""
    value = value.strip()
    if not value:
        raise UsageError("Which component is affected?", ISSUE_USAGE)
    if not plan.components:
        return clip(value, MAX_COMPONENT)
    known = {c.lower(): c for c in plan.components}
    if value.lower() not in known:
        raise UsageError(
            f"`{value[:60]}` is not a component of this release. Components: {', '.join(plan.components)}.",
            ISSUE_USAGE,
        )
    return known[value.lower()]


def check_region(plan: Plan, value: str | None) -> str | None:
    """The plan's spelling of a region (None: no region); any region when the plan lists none."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if not plan.regions:
        return clip(value, MAX_REGION)
    known = {r.lower(): r for r in plan.regions}
    if value.lower() not in known:
        raise UsageError(
            f"`{value[:60]}` is not a region of this release. Regions: {', '.join(plan.regions)}.",
            ISSUE_USAGE,
        )
    return known[value.lower()]


def form_report(
    plan: Plan,
    *,
    severity: str | None,
    component: str | None,
    region: str | None,
    impact: str | None,
    error: str | None,
) -> tuple[ReportIssue | None, dict[str, str]]:
    """The modal's fields as a report, or the problems per field (keys are the fields' block ids)."""
    problems: dict[str, str] = {}
    for field, typed in (("component", component), ("region", region), ("impact", impact), ("error", error)):
        try:
            check_typed(typed or "")
        except UsageError as exc:
            problems[field] = exc.message
    if problems:
        return None, problems
    sev: Severity | None = None
    comp = reg = None
    try:
        sev = parse_severity(severity or "")
    except UsageError as exc:
        problems["severity"] = exc.message
    try:
        comp = check_component(plan, component or "")
    except UsageError as exc:
        problems["component"] = exc.message
    try:
        reg = check_region(plan, region)
    except UsageError as exc:
        problems["region"] = exc.message
    if not (impact or "").strip():
        problems["impact"] = "Describe the impact: what do users see?"
    if problems or sev is None or comp is None:
        return None, problems
    impact_text, error_text = clip((impact or "").strip(), MAX_IMPACT), clip((error or "").strip(), MAX_ERROR)
    return ReportIssue(sev, comp, impact_text, reg, error_text), {}


# --- rules -------------------------------------------------------------------------------------------------


def card_key(number: int) -> str:
    """The outbox key of an issue's card in the war room (buttons and changes re-render it)."""
    return f"issue:{number}"


def incident_key(number: int) -> str:
    return f"issue:{number}:incidents"


def _refresh(plan: Plan, issue: Issue) -> list[Effect]:
    effects: list[Effect] = [Refresh(card_key(issue.number))]
    if issue.severity is Severity.CRITICAL and "incidents" in plan.channels:
        effects.append(Refresh(incident_key(issue.number)))
    return effects


def _find(release: Release, number: int) -> Issue:
    issue = release.issue(number)
    if issue is None:
        open_ones = ", ".join(f"#{i.number}" for i in release.open_issues) or "none"
        raise NotFound(f"There is no issue #{number} in {release.id}. Open issues: {open_ones}.", ISSUE_USAGE)
    return issue


def _open(release: Release, number: int) -> Issue:
    issue = _find(release, number)
    if issue.status is not IssueStatus.OPEN:
        raise Conflict(f"Issue #{number} is already resolved (by <@{issue.resolved_by}>).")
    return issue


def decide_issue(release: Release, plan: Plan, actor: Actor, command: IssueCommand, now: datetime) -> Outcome:
    """Run a parsed `/issue` command or button."""
    match command:
        case ReportIssue():
            return report_issue(release, plan, actor, command, now)
        case ResolveIssue():
            return resolve_issue(release, plan, actor, command, now)
        case InvestigateIssue():
            return investigate_issue(release, plan, actor, command, now)
        case EscalateIssue():
            return escalate_issue(release, plan, actor, command, now)
        case _:
            raise UsageError("That `/issue` command changes nothing.", ISSUE_USAGE)


def report_issue(release: Release, plan: Plan, actor: Actor, command: ReportIssue, now: datetime) -> Outcome:
    """Record issue N+1 and post its card; a critical one also goes to incidents and pages level 1."""
    authorize(plan, actor, Action.REPORT_ISSUE)
    component = check_component(plan, command.component)
    region = check_region(plan, command.region)
    if not command.impact.strip():
        raise UsageError("Describe the impact: what do users see?", ISSUE_USAGE)
    number = max(map(attrgetter("number"), release.issues), default=0) + 1
    issue = Issue(
        number=number,
        severity=command.severity,
        component=component,
        impact=command.impact.strip(),
        reporter=actor.user_id,
        reported_at=now,
        region=region,
        error=command.error.strip(),
    )
    updated = release.with_issue(issue)
    data = {
        "severity": issue.severity.value,
        "component": component,
        "region": region,
        "impact": issue.impact,
    }
    if issue.error:
        data["error"] = issue.error
    events = [Event("issue.reported", now, actor.user_id, f"issue:{number}", data)]
    effects: list[Effect] = [Post("war_room", "issue_card", {"number": number}, key=card_key(number))]
    reply = f"Issue #{number} ({issue.severity.value}) is posted in the war room."
    if issue.severity is Severity.CRITICAL:
        effects.extend(vote_refresh(updated, plan))  # the vote shows open critical issues live
        if "incidents" in plan.channels:
            effects.append(
                Post(
                    "incidents",
                    "issue_card",
                    {"number": number, "copy": "incidents"},
                    key=incident_key(number),
                )
            )
        first = levels(plan)[0] if plan.escalation else None
        if first is not None:
            paged = open_page(
                updated,
                plan,
                actor.user_id,
                now,
                level=first.level,
                targets=level_targets(plan, updated, first),
                reason=_page_reason(issue),
                issue_number=number,
                label=level_name(plan, first.level, updated),
            )
            updated = paged.release
            events += paged.events
            # the card is not posted yet and will show the page when it is: no update needed
            effects += [e for e in paged.effects if e != Refresh(card_key(number))]
            reply += f" Critical: escalation level {first.level} is paged now."
        else:
            reply += " Critical, but the plan has no escalation levels: page people with `/page ROLE REASON`."
        asked = evaluation.ask(updated, issue, now)
        if asked.effects:
            updated = asked.release
            events += asked.events
            effects += asked.effects
            reply += " The release manager is asked in the war room: continue or roll back?"
    return Outcome(updated, tuple(events), tuple(effects), reply)


def _page_reason(issue: Issue) -> str:
    where = issue.component + (f" {issue.region}" if issue.region else "")
    return f"{issue.severity.value.capitalize()} issue #{issue.number} ({where}): {issue.impact}"[:2000]


def investigate_issue(release: Release, plan: Plan, actor: Actor, command: InvestigateIssue, now: datetime) -> Outcome:
    """The clicker is now investigating; the card shows it."""
    authorize(plan, actor, Action.INVESTIGATE_ISSUE)
    issue = _open(release, command.number)
    if issue.investigator == actor.user_id:
        return Outcome(release, reply=f"You are already investigating issue #{issue.number}.")
    changed = replace(issue, investigator=actor.user_id)
    event = Event("issue.investigating", now, actor.user_id, f"issue:{issue.number}", {"previous": issue.investigator})
    return Outcome(
        release.with_issue(changed),
        (event,),
        tuple(_refresh(plan, changed)),
        f"You are investigating issue #{issue.number}.",
    )


def escalate_issue(release: Release, plan: Plan, actor: Actor, command: EscalateIssue, now: datetime) -> Outcome:
    """Page the next escalation level for this issue: its open page climbs now, or a new page starts."""
    authorize(plan, actor, Action.PAGE)
    issue = _open(release, command.number)
    if not plan.escalation:
        raise Conflict("The plan has no escalation levels; page people with `/page ROLE REASON`.")
    pages = [p for p in release.pages if p.issue_number == issue.number and p.level is not None]
    climbing = [p for p in pages if p.status is PageStatus.OPEN and p.escalate_at is not None]
    if climbing:
        outcome = climb(release, plan, climbing[-1], now, by=actor.user_id)
        level = outcome.release.page(climbing[-1].number).last_notified_level  # type: ignore[union-attr]
    else:
        reached = max((p.last_notified_level or 0 for p in pages), default=0)
        nxt = level_spec(plan, reached + 1)
        if nxt is None:
            raise Conflict(f"Every escalation level has been paged for issue #{issue.number} (up to Level {reached}).")
        level = nxt.level
        outcome = open_page(
            release,
            plan,
            actor.user_id,
            now,
            level=level,
            targets=level_targets(plan, release, nxt),
            reason=_page_reason(issue),
            issue_number=issue.number,
            label=level_name(plan, level, release),
        )
    event = Event("issue.escalated", now, actor.user_id, f"issue:{issue.number}", {"level": level})
    return Outcome(
        outcome.release,
        (*outcome.events, event),
        outcome.effects,
        f"Issue #{issue.number} escalated: Level {level} is paged.",
    )


def resolve_issue(release: Release, plan: Plan, actor: Actor, command: ResolveIssue, now: datetime) -> Outcome:
    """Close an issue with an optional note; the card updates and a resolution line goes in its thread."""
    authorize(plan, actor, Action.RESOLVE_ISSUE)
    issue = _open(release, command.number)
    note = clip(check_typed(command.note).strip(), MAX_IMPACT)
    changed = replace(issue, status=IssueStatus.RESOLVED, resolved_at=now, resolved_by=actor.user_id, resolution=note)
    seconds = int((now - issue.reported_at).total_seconds())
    event = Event(
        "issue.resolved",
        now,
        actor.user_id,
        f"issue:{issue.number}",
        {"seconds_to_resolve": seconds, "note": note, "severity": issue.severity.value},
    )
    stopped = stop_pages_for_issue(release.with_issue(changed), plan, issue.number, now)
    effects: list[Effect] = [
        *_refresh(plan, changed),
        Post(
            "war_room",
            "issue_resolved",
            {"number": issue.number},
            key=f"issue:{issue.number}:resolved",
            thread_of=card_key(issue.number),
        ),
        *stopped.effects,
    ]
    if issue.severity is Severity.CRITICAL:
        effects.extend(vote_refresh(stopped.release, plan))  # the vote shows open critical issues live
    if issue.number in pending_evaluations(release):
        effects.append(Refresh(evaluation_key(issue.number)))  # the prompt shows the issue is resolved
    return Outcome(stopped.release, (event, *stopped.events), tuple(effects), f"Issue #{issue.number} is resolved.")


# --- buttons -----------------------------------------------------------------------------------------------


def parse_ref(value: str) -> tuple[str, int]:
    """A button value `release_id:number` → (release_id, number)."""
    release_id, _, number = (value or "").rpartition(":")
    if not release_id or not number.isascii() or not number.isdigit():
        raise UsageError(f"This button does not name an item ({value[:60]!r}); it may be from an older version.")
    return release_id, int(number)


def check_resolvable(release: Release, plan: Plan, actor: Actor, number: int) -> Issue:
    """Before opening the resolve form: may the actor resolve, and is the issue still open?"""
    authorize(plan, actor, Action.RESOLVE_ISSUE)
    return _open(release, number)
