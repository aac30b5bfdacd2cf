"""Issue cards, page notices and the issue modals, built in Python (they carry buttons and live state).

Builders render from the release as it is at delivery, so a Refresh of the same outbox key shows the new
state. Everything people typed (impact, error, reasons, notes) goes through `slack_escape`.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from bot.domain import Issue, IssueStatus, Page, PageStatus, Release, Severity
from bot.ids import ActionId, BlockId, CallbackId
from bot.paging import level_name, level_spec, wait_for
from bot.plan import Plan
from bot.timeparse import format_duration
from messages import blocks as bk
from messages.alert_cards import alert_notes
from messages.blocks import Message
from messages.render import builder, date_token, mention, mentions, slack_escape

SEVERITY_ICONS = {Severity.CRITICAL: "🔴", Severity.HIGH: "🟠", Severity.MEDIUM: "🟡", Severity.LOW: "🔵"}
MAX_OPTIONS = 100


def _esc(text: str, limit: int) -> str:
    return bk.truncate(slack_escape(text), limit)


def _ago(later: datetime, earlier: datetime) -> str:
    return format_duration(max(later - earlier, timedelta(0)))


def room_link(plan: Plan) -> str:
    """`<#C…>` for a war room given by ID; its name otherwise."""
    ref = plan.channel("war_room")
    return f"<#{ref}>" if ref[:1] in {"C", "G"} else ref


def where(issue: Issue) -> str:
    return slack_escape(issue.component) + (f" — {slack_escape(issue.region)}" if issue.region else "")


# --- the issue card ----------------------------------------------------------------------------------------


def _page_line(plan: Plan, page: Page, now: datetime) -> str:
    at = f"Level {page.last_notified_level}" if page.last_notified_level is not None else mentions(page.targets)
    if page.status is PageStatus.ACKED and page.acked_at:
        state = f"acknowledged by {mention(page.acked_by or '?')} after {_ago(page.acked_at, page.created_at)}"
    elif page.status is PageStatus.EXHAUSTED:
        state = "not acknowledged; the ladder is exhausted"
    elif page.escalate_at is None:
        state = "not acknowledged; stopped"
    else:
        state = "waiting for acknowledgement"
    return f"📟 Page #{page.number} · {at} · {state}"


@builder("issue_card")
def issue_card(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    """ISSUE DETECTED: severity, component, impact, error, investigator; buttons while it is open."""
    number = int(data.get("number", 0))
    issue = release.issue(number)
    if issue is None:
        return bk.message([bk.section(f"Issue #{number} is not recorded.")])
    tz = plan.release.timezone
    resolved = issue.status is IssueStatus.RESOLVED
    sev = issue.severity.value.capitalize()
    title = f"✅ RESOLVED — Issue #{number}" if resolved else f"🚨 ISSUE DETECTED — #{number}"
    lines = [
        f"*Severity:* {SEVERITY_ICONS[issue.severity]} {sev}",
        f"*Component:* {where(issue)}",
        f"*Impact:* {_esc(issue.impact, 1200)}",
        f"*Error:* {_esc(issue.error, 600) if issue.error else '—'}",
        f"*Investigating:* {mention(issue.investigator) if issue.investigator else '_nobody yet_'}",
    ]
    blocks = [bk.header(title), bk.section("\n".join(lines))]
    notes = [
        f"Reported by {mention(issue.reporter)} · {date_token(issue.reported_at, tz)} · "
        f"{slack_escape(release.name)} {slack_escape(release.version)}"
    ]
    notes += alert_notes(release, number)
    if data.get("copy") == "incidents":
        notes.append(f"Follow it in {room_link(plan)}.")
    for page in release.pages:
        if page.issue_number == number:
            notes.append(_page_line(plan, page, now))
    if resolved and issue.resolved_at:
        done = (
            f"✅ Resolved by {mention(issue.resolved_by or '?')} · {date_token(issue.resolved_at, tz)} · "
            f"after {_ago(issue.resolved_at, issue.reported_at)}"
        )
        if issue.resolution:
            done += f" · {_esc(issue.resolution, 800)}"
        notes.append(done)
    blocks += [bk.context(note) for note in notes[:10]]
    if not resolved:
        value = f"{release.id}:{number}"
        blocks.append(
            bk.actions(
                [
                    bk.button("👀 Investigating", ActionId.ISSUE_INVESTIGATE, value),
                    bk.button("⬆️ Escalate", ActionId.ISSUE_ESCALATE, value, style="danger"),
                    bk.button("✅ Resolve", ActionId.ISSUE_RESOLVE, value, style="primary"),
                ],
                block_id=BlockId.ISSUE_ACTIONS,
            )
        )
    state = "RESOLVED" if resolved else "ISSUE DETECTED"
    text = f"{state} #{number} · {sev} · {where(issue)}: {_esc(issue.impact, 300)}"
    return bk.message(blocks, text, keep_last=1)


@builder("issue_resolved")
def issue_resolved(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    """The resolution line in the card's thread."""
    number = int(data.get("number", 0))
    issue = release.issue(number)
    if issue is None or issue.resolved_at is None:
        return bk.message([bk.section(f"Issue #{number} is resolved.")])
    text = (
        f"✅ Issue #{number} resolved by {mention(issue.resolved_by or '?')} "
        f"after {_ago(issue.resolved_at, issue.reported_at)}."
    )
    if issue.resolution:
        text += f"\n> {_esc(issue.resolution, 2000)}"
    return bk.message([bk.section(text)])


# --- pages -------------------------------------------------------------------------------------------------


def _ack_block(release: Release, page: Page) -> dict[str, Any]:
    if page.status is PageStatus.ACKED and page.acked_at:
        return bk.context(
            f"✅ Acknowledged by {mention(page.acked_by or '?')} after {_ago(page.acked_at, page.created_at)}"
        )
    return bk.actions(
        [bk.button("✋ Acknowledge", ActionId.PAGE_ACK, f"{release.id}:{page.number}", style="primary")],
        block_id=BlockId.PAGE_ACTIONS,
    )


def _issue_line(release: Release, page: Page) -> str:
    issue = release.issue(page.issue_number) if page.issue_number is not None else None
    if issue is None:
        return ""
    return f"\nIssue #{issue.number}: {SEVERITY_ICONS[issue.severity]} {issue.severity.value} · {where(issue)}"


def _next_step(plan: Plan, page: Page, level: int | None) -> str:
    wait = format_duration(wait_for(plan, level))
    if page.level is None or level is None:
        return f"Not acknowledged within {wait} → notified once more, then nobody else is paged automatically."
    if level_spec(plan, level + 1) is not None:
        return f"Not acknowledged within {wait} → {level_name(plan, level + 1)} is paged."
    return f"Not acknowledged within {wait} → Level {level} is notified once more, then the ladder stops."


def _page_or_stub(release: Release, data: dict[str, Any]) -> Page | None:
    return release.page(int(data.get("page", 0)))


@builder("page_notice")
def page_notice(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    """The war room's view of one round of a page: who is paged, why, and what happens next."""
    page = _page_or_stub(release, data)
    if page is None:
        return bk.message([bk.section(f"Page #{data.get('page')} is not recorded.")])
    kind = data.get("kind", "created")
    level = data.get("level")
    targets = [str(t) for t in data.get("targets", [])]
    who = mentions(targets)
    n = page.number
    if kind == "escalated":
        if data.get("by"):
            head = f"⬆️ *Page #{n} escalated to Level {level}* by {mention(str(data['by']))}: {who}"
        else:
            head = (
                f"⬆️ *Escalated to Level {level}* — no acknowledgement from Level {data.get('from_level')} "
                f"within {data.get('waited')}. Page #{n}: {who}"
            )
    elif kind == "again":
        if level is not None:
            head = (
                f"🔁 *Page #{n}: still no acknowledgement* — Level {level} notified again "
                f"after {data.get('waited')}. "
                f"The escalation ladder is exhausted; nobody else is paged automatically."
            )
        else:
            head = (
                f"🔁 *Page #{n}: still no acknowledgement* — {who} notified again "
                f"after {data.get('waited')}. "
                "Nobody else is paged automatically; `/page 1 REASON` starts the escalation ladder."
            )
    else:
        label = slack_escape(data.get("label") or "")
        head = f"📟 *Page #{n}*{' → ' + label if label else ''}: {who} · paged by {mention(page.created_by)}"
    blocks = [bk.section(f"{head}\n> {_esc(page.reason, 1500)}{_issue_line(release, page)}")]
    if kind != "again" and page.status is PageStatus.OPEN and page.escalate_at is not None:
        blocks.append(bk.context(_next_step(plan, page, level if isinstance(level, int) else None)))
    elif kind == "again" and page.status is not PageStatus.ACKED:
        blocks.append(bk.context(f"Acknowledge with the button or `/page ack {n}`."))
    blocks.append(_ack_block(release, page))
    plain_head = head.replace("*", "")
    return bk.message(blocks, f"{plain_head} — {_esc(page.reason, 300)}", keep_last=1)


@builder("page_dm")
def page_dm(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    """What a paged person receives by DM (or a user group in the war room when it cannot be expanded)."""
    page = _page_or_stub(release, data)
    if page is None:
        return bk.message([bk.section(f"Page #{data.get('page')} is not recorded.")])
    to = str(data.get("to") or "")
    kind = data.get("kind", "created")
    level = data.get("level")
    greeting = f"{mention(to)} " if to.startswith("S") else ""
    if kind == "escalated" and not data.get("by"):
        head = (
            f"📟 {greeting}*You are paged* (Level {level}): Level {data.get('from_level')} "
            f"did not acknowledge within {data.get('waited')}."
        )
    elif kind == "again":
        head = f"🔁 {greeting}*Reminder: you are still paged* — nobody has acknowledged page #{page.number} yet."
    else:
        rung = f" (Level {level})" if level is not None else ""
        head = f"📟 {greeting}*You are paged*{rung} by {mention(str(data.get('by') or page.created_by))}."
    body = (
        f"{head}\n*{slack_escape(release.name)} {slack_escape(release.version)}* · page #{page.number}\n"
        f"> {_esc(page.reason, 1500)}{_issue_line(release, page)}\n"
        f"Acknowledge so the war room knows you have it, then join {room_link(plan)}."
    )
    blocks = [bk.section(body), _ack_block(release, page)]
    return bk.message(blocks, f"You are paged (page #{page.number}): {_esc(page.reason, 300)}", keep_last=1)


@builder("page_acked")
def page_acked(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    """One line in the war room when a page is acknowledged."""
    page = _page_or_stub(release, data)
    by = mention(str(data.get("by") or (page.acked_by if page else "") or "?"))
    seconds = int(data.get("seconds", 0))
    level = f" (Level {page.last_notified_level})" if page and page.last_notified_level is not None else ""
    after = format_duration(timedelta(seconds=seconds))
    text = f"✅ Page #{data.get('page')}{level} acknowledged by {by} after {after}."
    return bk.message([bk.section(text)])


@builder("pagerduty_failed")
def pagerduty_failed(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    """A warning in the war room: PagerDuty did not take an event (the Slack page went out regardless)."""
    text = (
        f"⚠️ PagerDuty `{slack_escape(data.get('action', '?'))}` "
        f"for page #{slack_escape(data.get('page', '?'))} "
        f"failed: {_esc(str(data.get('error', 'unknown error')), 500)}. The Slack page went out; "
        "check PagerDuty by hand."
    )
    return bk.message([bk.section(text)])


# --- lists -------------------------------------------------------------------------------------------------


def issue_list(plan: Plan, release: Release, now: datetime) -> Message:
    """Open issues, most severe first (the `/issue list` reply)."""
    order = list(Severity)
    issues = sorted(release.open_issues, key=lambda i: (order.index(i.severity), i.number))
    if not issues:
        return bk.message([bk.section(f"No open issues in {slack_escape(release.name)}. 🎉")])
    blocks = [bk.header(f"Open issues — {release.name} ({len(issues)})")]
    shown = issues[: bk.MAX_BLOCKS - 3]  # the header, the count of the rest and the hint take the others
    for issue in shown:
        who = mention(issue.investigator) if issue.investigator else "nobody investigating"
        blocks.append(
            bk.section(
                f"{SEVERITY_ICONS[issue.severity]} *#{issue.number}* {issue.severity.value} · "
                f"{where(issue)} · "
                f"{_esc(issue.impact, 600)}\n{who} · open {_ago(now, issue.reported_at)}"
            )
        )
    rest = issues[len(shown) :]
    if rest:
        severities = ", ".join(dict.fromkeys(i.severity.value for i in rest))
        blocks.append(
            bk.context(
                f"{bk.ELLIPSIS} and {len(rest)} more open issues ({severities}) not shown — "
                "`/release report` lists them all"
            )
        )
    blocks.append(bk.context("Resolve with `/issue resolve N [note]` or the card's button."))
    return bk.message(blocks)


def page_list(plan: Plan, release: Release, now: datetime) -> Message:
    """Unacknowledged pages (the `/page list` reply)."""
    pages = [p for p in release.pages if p.status is not PageStatus.ACKED]
    if not pages:
        return bk.message([bk.section("No unacknowledged pages.")])
    blocks = [bk.header(f"Unacknowledged pages ({len(pages)})")]
    for page in pages:
        blocks.append(bk.section(f"{_page_line(plan, page, now)}\n> {_esc(page.reason, 600)}"))
    blocks.append(bk.context("Acknowledge with `/page ack N`."))
    return bk.message(blocks)


# --- modals ------------------------------------------------------------------------------------------------


def _text(value: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": bk.truncate(value, 75), "emoji": True}


def _options(values: list[str]) -> list[dict[str, Any]]:
    return [{"text": _text(v), "value": v[:150]} for v in values[:MAX_OPTIONS]]


def _input(
    block_id: str, label: str, element: dict[str, Any], *, optional: bool = False, hint: str = ""
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": _text(label),
        "element": element,
        "optional": optional,
    }
    if hint:
        block["hint"] = {"type": "plain_text", "text": hint[:150]}
    return block


def _select(options: list[str], placeholder: str) -> dict[str, Any]:
    return {
        "type": "static_select",
        "action_id": "value",
        "placeholder": _text(placeholder),
        "options": _options(options),
    }


def _text_input(*, multiline: bool = False, max_length: int = 2000, placeholder: str = "") -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": "value",
        "multiline": multiline,
        "max_length": max_length,
    }
    if placeholder:
        element["placeholder"] = _text(placeholder)
    return element


def issue_modal(plan: Plan, release_id: str, channel_id: str) -> dict[str, Any]:
    """The `/issue` form: severity, component, region, impact, error."""
    severities = [s.value for s in Severity]
    components = list(plan.components or [])
    component = (
        _select(components, "Which component?")
        if components and len(components) <= MAX_OPTIONS
        else _text_input(max_length=100, placeholder="e.g. api")
    )
    blocks = [
        _input(BlockId.SEVERITY, "Severity", _select(severities, "How bad is it?")),
        _input(BlockId.COMPONENT, "Component", component),
    ]
    regions = list(plan.regions or [])
    region = (
        _select(regions, "Which region?")
        if regions and len(regions) <= MAX_OPTIONS
        else _text_input(max_length=64, placeholder="e.g. region1")
    )
    blocks += [
        _input(BlockId.REGION, "Region", region, optional=True),
        _input(BlockId.IMPACT, "Impact", _text_input(multiline=True, placeholder="What do users see?")),
        _input(
            BlockId.ERROR,
            "Error",
            _text_input(max_length=1000, placeholder="e.g. Database connection timeout"),
            optional=True,
        ),
    ]
    return {
        "type": "modal",
        "callback_id": CallbackId.ISSUE_MODAL,
        "title": _text("Report an issue"),
        "submit": _text("Report"),
        "close": _text("Cancel"),
        "private_metadata": json.dumps({"release": release_id, "channel": channel_id}),
        "blocks": blocks,
    }


def resolve_modal(release: Release, number: int, channel_id: str) -> dict[str, Any]:
    """Asks for an optional resolution note."""
    issue = release.issue(number)
    about = f"#{number}: {issue.severity.value} · {issue.component}" if issue else f"#{number}"
    return {
        "type": "modal",
        "callback_id": CallbackId.RESOLVE_MODAL,
        "title": _text(f"Resolve issue #{number}"),
        "submit": _text("Resolve"),
        "close": _text("Cancel"),
        "private_metadata": json.dumps({"release": release.id, "issue": number, "channel": channel_id}),
        "blocks": [
            bk.section(f"Resolve issue {slack_escape(about)}"),
            _input(
                BlockId.NOTE,
                "Resolution note",
                _text_input(multiline=True, placeholder="What fixed it?"),
                optional=True,
            ),
        ],
    }
