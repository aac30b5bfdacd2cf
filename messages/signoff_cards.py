"""Python-built sign-off, handoff and follow-up messages (registered with `@builder`) and the refusal modal.

The sign-off table and the handoff are re-rendered from the release on every Refresh, so they always
show the current state; their buttons go once there is nothing left to click.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.core.handoff import oncall_roles, unanswered_pages
from bot.core.signoffs import missing, outcome_of
from bot.domain import PageStatus, Release, ReleaseStatus, Severity, SignOffStatus
from bot.ids import ActionId, BlockId, CallbackId
from bot.plan import Plan
from bot.timeparse import format_offset
from bot.votes import role_title
from messages import blocks as bk
from messages.blocks import Message
from messages.render import builder, date_token, mentions, phase_view, slack_escape, time_token

ISSUES_SHOWN = 15
PAGES_SHOWN = 10
TEXT_SHOWN = 200
OUTCOME_LABELS = {"success": "✅ Success", "rollback": "↩️ Rollback"}
SEVERITY_ICONS = {Severity.CRITICAL: "🔴", Severity.HIGH: "🟠", Severity.MEDIUM: "🟡", Severity.LOW: "⚪"}


def _name(release: Release) -> str:
    return slack_escape(f"{release.name} {release.version}")


def _who(user: str | None) -> str:
    if not user:
        return "—"
    return "Warroom" if user == "warroom" else str(mentions([user]))


def _role(plan: Plan, role: str) -> str:
    """`*Qa lead* (<@U…>)`: the role and its people."""
    return f"*{slack_escape(role_title(role))}* ({mentions(plan.members([role]))})"


def ref(release: Release, role: str | None = None) -> str:
    """A button's value: `RELEASE:ROLE` (sign-off buttons) or `RELEASE` (the handoff)."""
    return release.id if role is None else f"{release.id}:{role}"


def parse_ref(value: str) -> tuple[str, str]:
    """(release id, role) from a sign-off button's value; the role is empty for a handoff button."""
    release_id, _, role = value.partition(":")
    return release_id, role


def _deployment_status(release: Release) -> str:
    outcome = OUTCOME_LABELS[outcome_of(release)]
    when = f" ({release.status.value.replace('_', ' ')} {date_token(release.ended_at, release.timezone)})"
    return f"*Deployment status:* {outcome}" + (when if release.ended_at else "")


# --- sign-offs ---------------------------------------------------------------------------------------------


def _signoff_line(plan: Plan, release: Release, role: str, criterion: str) -> str:
    given = release.signoff(role)
    tz = release.timezone
    head = f"{_role(plan, role)} — {slack_escape(criterion)}"
    if given is None:
        return f"{head}\n⏳ waiting"
    if given.status is SignOffStatus.SIGNED:
        line = f"✅ signed by {_who(given.by)} at {time_token(given.at, tz)}"
        return f"{head}\n{line}" + (f": _{slack_escape(bk.truncate(given.comment, 500))}_" if given.comment else "")
    reason = slack_escape(bk.truncate(given.comment, 500))
    return f"{head}\n⛔ refused by {_who(given.by)} at {time_token(given.at, tz)}: _{reason}_"


@builder("signoffs")
def signoff_table(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    """The Go-Live Approval table: each role, its criterion and its answer; *Sign* per role, *Refuse* below."""
    tz = release.timezone
    waiting = missing(release, plan)
    signed = len(plan.signoffs) - len(waiting)
    blocks: list[dict[str, Any]] = [bk.header(f"Sign-offs: {release.name} {release.version}")]
    if release.approved_at is not None:
        progress = f"*Final approval time:* {date_token(release.approved_at, tz)} — all {signed} sign-offs given."
    else:
        progress = f"⏳ {signed} of {len(plan.signoffs)} signed. Each role's people sign for it."
    blocks.append(bk.section(f"{_deployment_status(release)}\n{progress}"))
    if plan.success_criteria:
        criteria = "\n".join(f"☐ {slack_escape(c)}" for c in plan.success_criteria)
        blocks += bk.sections(f"*Success criteria*\n{criteria}")
    blocks.append(bk.divider())
    open_table = release.approved_at is None and release.status in {ReleaseStatus.COMPLETED, ReleaseStatus.ROLLED_BACK}
    refusals: list[dict[str, Any]] = []
    for spec in plan.signoffs:
        line = _signoff_line(plan, release, spec.role, spec.criterion)
        given = release.signoff(spec.role)
        if open_table and (given is None or given.status is not SignOffStatus.SIGNED):
            sign = bk.button("✅ Sign", ActionId.SIGNOFF_SIGN, ref(release, spec.role), style="primary")
            blocks.append(bk.section(line, accessory=sign))
            if given is None:
                label = f"⛔ Refuse ({role_title(spec.role)})"
                refusals.append(bk.button(label, ActionId.SIGNOFF_REFUSE, ref(release, spec.role)))
        else:
            blocks.append(bk.section(line))
    if open_table:
        blocks.append(
            bk.context(
                "*Sign* records your sign-off now; to add a comment use `/release signoff ROLE COMMENT`. "
                "*Refuse* asks for the reason (or `/release signoff refuse ROLE REASON`); "
                "a refused role may sign later."
            )
        )
        if refusals:
            blocks.append(bk.actions(refusals))
    text = f"Sign-offs for {_name(release)}: {signed} of {len(plan.signoffs)} signed"
    if release.approved_at is not None:
        text += f", approved ({OUTCOME_LABELS[outcome_of(release)].split(' ', 1)[1]})"
    return bk.message(blocks, text, keep_last=2 if open_table and refusals else 0)


@builder("signoffs_approved")
def approved_message(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    """Every required sign-off is given: the final approval time and the deployment status."""
    outcome = OUTCOME_LABELS.get(str(data.get("outcome")), OUTCOME_LABELS["success"])
    tz = release.timezone
    when = date_token(release.approved_at or now, tz)
    signers = " · ".join(
        f"{slack_escape(role_title(s.role))} {_who(given.by)}"
        for s in plan.signoffs
        if (given := release.signoff(s.role)) is not None
    )
    blocks = [
        bk.header(f"Approved: {release.name} {release.version}"),
        bk.section(
            f"All {len(plan.signoffs)} required sign-offs are given.\n"
            f"*Final approval time:* {when}\n*Deployment status:* {outcome}"
        ),
        bk.context(f"Signed by: {signers}" if signers else "Signed."),
    ]
    return bk.message(blocks, f"{_name(release)} approved: {outcome.split(' ', 1)[1]}")


def refuse_modal(release: Release, plan: Plan, role: str, channel: str | None) -> dict[str, Any]:
    """*Refuse* asks for the reason; it is recorded with the refusal."""
    spec = next(s for s in plan.signoffs if s.role == role)
    meta = json.dumps({"release": release.id, "role": role, "channel": channel or ""})
    return {
        "type": "modal",
        "callback_id": CallbackId.SIGNOFF_REFUSE_MODAL,
        "private_metadata": meta,
        "title": {"type": "plain_text", "text": "Refuse sign-off"},
        "submit": {"type": "plain_text", "text": "Refuse"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            bk.section(
                f"*{_name(release)}* — {slack_escape(role_title(role))}: {slack_escape(spec.criterion)}\n"
                "Your refusal and its reason go on the timeline; the role may still sign later."
            ),
            {
                "type": "input",
                "block_id": BlockId.REASON,
                "label": {"type": "plain_text", "text": "Why do you refuse?"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": BlockId.REASON,
                    "multiline": True,
                    "max_length": 2000,
                    "placeholder": {"type": "plain_text", "text": "e.g. smoke tests on EU Frankfurt still failing"},
                },
            },
        ],
    }


# --- the handoff -------------------------------------------------------------------------------------------


def _phase_lines(plan: Plan, release: Release, now: datetime) -> list[str]:
    tz = release.timezone
    lines = []
    for phase in release.phases:
        view = phase_view(phase, tz, now)
        planned = f"{time_token(phase.planned_start, tz)} to {time_token(phase.planned_end, tz)}"
        if phase.started_at or phase.finished_at:
            actual = f"{time_token(phase.started_at, tz) if phase.started_at else '?'} to " + (
                str(time_token(phase.finished_at, tz)) if phase.finished_at else "…"
            )
        else:
            actual = "—"
        delta = f" ({view['late_text']})" if view["late_text"] else ""
        lines.append(f"{view['icon']} {slack_escape(phase.name)} · planned {planned} · actual {actual}{delta}")
    return lines


def _issue_lines(release: Release) -> list[str]:
    issues = sorted(release.open_issues, key=lambda i: (list(Severity).index(i.severity), i.number))
    lines = [
        f"{SEVERITY_ICONS[i.severity]} #{i.number} {i.severity.value} {slack_escape(i.component)}"
        f"{' ' + slack_escape(i.region) if i.region else ''} — {slack_escape(bk.truncate(i.impact, TEXT_SHOWN))} · "
        f"investigating: {_who(i.investigator) if i.investigator else '_nobody yet_'}"
        for i in issues[:ISSUES_SHOWN]
    ]
    if len(issues) > ISSUES_SHOWN:
        lines.append(f"{bk.ELLIPSIS} and {len(issues) - ISSUES_SHOWN} more open issues — `/issue list`")
    return lines or ["None ✅"]


def _page_lines(release: Release) -> list[str]:
    pages = unanswered_pages(release)
    tz = release.timezone
    lines = [
        f"📟 #{p.number} {'Level ' + str(p.last_notified_level) if p.level is not None else 'direct'} "
        f"to {mentions(list(p.targets))} since {time_token(p.created_at, tz)}"
        f"{' (nobody answered; the ladder stopped)' if p.status is PageStatus.EXHAUSTED else ''}: "
        f"{slack_escape(bk.truncate(p.reason, TEXT_SHOWN))}"
        for p in pages[:PAGES_SHOWN]
    ]
    if len(pages) > PAGES_SHOWN:
        lines.append(f"{bk.ELLIPSIS} and {len(pages) - PAGES_SHOWN} more open pages — `/page list`")
    return lines or ["None ✅"]


def _link(name: str, url: str) -> str:
    return f"<{slack_escape(url.replace('|', '%7C'))}|{slack_escape(name)}>"


@builder("handoff")
def handoff_message(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    """The summary for the day team: what was deployed, plan vs actual, what is open, what to watch."""
    spec = plan.handoff
    head = bk.header(f"Day team handoff: {release.name} {release.version}")
    if spec is None:
        return bk.message([head, bk.section("This release has no handoff in its plan.")])
    tz = release.timezone
    status = release.status.value.replace("_", " ")
    oncall = oncall_roles(spec)
    oncall_text = ", ".join(f"{slack_escape(role_title(r))} ({mentions(plan.members([r]))})" for r in oncall)
    blocks: list[dict[str, Any]] = [
        head,
        bk.section(
            f"*Deployed:* {_name(release)} — {status}"
            + (f" since {date_token(release.ended_at, tz)}" if release.ended_at else "")
            + f"\n*From:* {_role(plan, spec.from_)} → *To:* {_role(plan, spec.to)}"
            + f"\n*On call after acceptance:* escalation level 1 pages {oncall_text}"
        ),
        bk.divider(),
        *bk.sections("*Phases: planned vs actual*\n" + "\n".join(_phase_lines(plan, release, now))),
        *bk.sections("*Open issues*\n" + "\n".join(_issue_lines(release))),
        *bk.sections("*Pages still open*\n" + "\n".join(_page_lines(release))),
    ]
    if spec.watch:
        blocks += bk.sections("*Watch*\n" + "\n".join(f"👀 {slack_escape(w)}" for w in spec.watch))
    if plan.links:
        blocks += bk.sections("*Monitoring*\n" + " · ".join(_link(link.name, link.url) for link in plan.links))
    blocks.append(bk.divider())
    if release.handoff_accepted_at is not None:
        blocks.append(
            bk.section(
                f"🤝 *Accepted* by {_who(release.handoff_accepted_by)} at "
                f"{time_token(release.handoff_accepted_at, tz)}: on-call responsibility is with {oncall_text}."
            )
        )
        text = f"Day team handoff for {_name(release)}: accepted"
        return bk.message(blocks, text)
    blocks.append(
        bk.context(
            f"The {slack_escape(role_title(spec.to).lower())} accepts the handoff; on-call responsibility moves then."
        )
    )
    blocks.append(
        bk.actions(
            [
                bk.button(
                    f"🤝 Accept handoff ({role_title(spec.to)})", ActionId.HANDOFF_ACCEPT, ref(release), style="primary"
                )
            ]
        )
    )
    return bk.message(blocks, f"Day team handoff for {_name(release)}: waiting for acceptance", keep_last=2)


@builder("handoff_accepted")
def handoff_accepted_message(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    """Told in the war room: who accepted, and who level 1 pages from now on."""
    spec = plan.handoff
    oncall = oncall_roles(spec) if spec else []
    who = ", ".join(f"{slack_escape(role_title(r))} ({mentions(plan.members([r]))})" for r in oncall) or "—"
    text = (
        f"🤝 *Handoff accepted* by {_who(release.handoff_accepted_by)} for {_name(release)}. "
        f"On-call responsibility moved: escalation level 1 now pages {who}."
    )
    return bk.message([bk.section(text)])


# --- follow-ups --------------------------------------------------------------------------------------------


@builder("follow_up")
def follow_up_message(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    """A post-deployment activity reminded to its owners (mentioned, so they are notified)."""
    number = int(data.get("number", 0))
    if not 1 <= number <= len(plan.follow_ups):
        return bk.message([bk.section(f"Follow-up {number} of {_name(release)} is no longer in the plan.")])
    spec = plan.follow_ups[number - 1]
    owners = mentions(plan.members(list(spec.owner)))
    roles = ", ".join(slack_escape(role_title(r)) for r in spec.owner)
    blocks = [
        bk.section(f"⏰ *Follow-up:* {slack_escape(spec.task)}\n*Owners:* {owners} ({roles})"),
        bk.context(f"Post-deployment activity of {_name(release)}, planned at T{format_offset(spec.at)}."),
    ]
    return bk.message(blocks, f"Follow-up for {_name(release)}: {slack_escape(spec.task)} — {owners}")
