"""Checklist messages: a phase's checklist in the war room (re-rendered on every Refresh), the same privately
(`/phase tasks`, `/gonogo checklist`), the go/no-go checklist on the vote, and the question `/phase done` asks
when tasks are still open.

Each item is a section with its tick control as the accessory (a button: Slack's checkboxes cannot show who
ticked an item and when), so a phase's 40 tasks fit in one message with its commands and metrics.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.checklists import (
    GONOGO_TASKS_USAGE,
    PHASE_TASKS_USAGE,
    OpenTasks,
    closed_reason,
    confirm_value,
    items,
    task_counts,
    toggle_value,
)
from bot.domain import GO_NO_GO_CHECKLIST, PhaseStatus, Release
from bot.ids import ActionId
from bot.plan import Plan
from messages import blocks as bk
from messages.blocks import Message
from messages.render import PHASE_ICONS, builder, date_token, mention, mentions, slack_escape, time_token

TICKED = "✅"
OPEN = "⬜"
LEFT_OPEN = "⭕"
LIST_LIMIT = 2900
"""Room for the commands and metrics sections (a section holds 3000 characters)."""


def item_line(plan: Plan, release: Release, scope: str, number: int, text: str, *, closed: bool) -> str:
    """`✅ *3.* Verify schema changes — @dba 22:31 · _note_`, or `⬜ *3.* …` (`⭕ … left open` once closed)."""
    check = release.checked(scope).get(number)
    if check is not None:
        when = date_token(check.at, release.timezone)
        line = f"{TICKED} *{number}.* {slack_escape(text)} — {mention(check.done_by)} {when}"
        return f"{line} · _{slack_escape(check.note)}_" if check.note else line
    if closed:
        return f"{LEFT_OPEN} *{number}.* {slack_escape(text)} — _left open_"
    return f"{OPEN} *{number}.* {slack_escape(text)}"


def item_blocks(
    plan: Plan, release: Release, scope: str, now: datetime, *, max_sections: int = 40
) -> list[dict[str, Any]]:
    """One section per item with its Tick / Untick button while the checklist is open; items past
    `max_sections` share one section of text (ticked with the command), and the message says so."""
    listed = items(plan, scope)
    closed = closed_reason(release, plan, scope) is not None
    checked = release.checked(scope)
    blocks: list[dict[str, Any]] = []
    for number, text in enumerate(listed[:max_sections], start=1):
        line = item_line(plan, release, scope, number, text, closed=closed)
        accessory = None
        if not closed:
            done = number in checked
            accessory = bk.button(
                "Untick" if done else "Tick",
                ActionId.TASK_TOGGLE,
                toggle_value(release, scope, number, done=not done),
                style=None if done else "primary",
            )
        blocks.append(bk.section(line, accessory=accessory))
    rest = listed[max_sections:]
    if rest:
        lines = [
            item_line(plan, release, scope, n, text, closed=closed)
            for n, text in enumerate(rest, start=max_sections + 1)
        ]
        command = "`/gonogo check N`" if scope == GO_NO_GO_CHECKLIST else f"`/phase check {scope} N`"
        blocks += bk.sections("\n".join(lines))
        more = f"{bk.ELLIPSIS} {len(rest)} more items without buttons here: tick them with {command}."
        blocks.append(bk.context(more))
    return blocks


def _listing(title: str, lines: list[str], *, code: bool) -> dict[str, Any]:
    """A titled list within one section; what does not fit is counted, not cut mid-line."""
    shown: list[str] = []
    size = len(title) + 10
    for line in lines:
        if size + len(line) + 1 > LIST_LIMIT:
            break
        shown.append(line)
        size += len(line) + 1
    body = ("```" + "\n".join(shown) + "```") if code else "\n".join(f"• {line}" for line in shown)
    more = len(lines) - len(shown)
    tail = f"\n{bk.ELLIPSIS} {more} more not shown here: see the plan." if more else ""
    return bk.section(f"*{title}*\n{body}{tail}")


def phase_checklist(plan: Plan, release: Release, now: datetime, phase_id: str) -> Message:
    """A phase's checklist: status, tasks with tick buttons, commands (as code) and metrics to watch."""
    phase = release.phase(phase_id)
    spec = next((p for p in plan.phases if p.id == phase_id), None)
    if phase is None or spec is None:
        return bk.message([bk.section(f"The phase {slack_escape(phase_id)} is no longer in the plan.")])
    tz = release.timezone
    ticked, total = task_counts(release, plan, phase_id)
    status = phase.status.value.replace("_", " ")
    since = f" since {time_token(phase.started_at, tz)}" if phase.status is PhaseStatus.IN_PROGRESS else ""
    head = (
        f"{PHASE_ICONS[phase.status]} *{slack_escape(phase.name)}* — {status}{since} · owner "
        f"{mentions(plan.members(list(phase.owners)))} · planned {time_token(phase.planned_start, tz)} to "
        f"{time_token(phase.planned_end, tz)} · *{ticked} of {total} tasks done*"
    )
    blocks: list[dict[str, Any]] = [bk.header(f"Checklist: {phase.name}"), bk.section(head)]
    blocks += item_blocks(plan, release, phase_id, now)
    if spec.commands:
        blocks.append(_listing("Commands", [slack_escape(c) for c in spec.commands], code=True))
    if spec.metrics:
        blocks.append(_listing("Metrics to watch", [slack_escape(m) for m in spec.metrics], code=False))
    closed = closed_reason(release, plan, phase_id)
    if closed is None:
        blocks.append(
            bk.context(
                f"Tick each task as it is done (anyone in the plan), or `/phase check {phase_id} N [note]`; "
                f"`/phase done {phase_id}` when all are."
            )
        )
    else:
        left = total - ticked
        blocks.append(bk.context(slack_escape(closed) + (f" {left} task(s) left open." if left else "")))
    text = f"Checklist: {phase.name} — {ticked} of {total} tasks done"
    return bk.message(blocks, slack_escape(text))


@builder("phase_checklist")
def phase_checklist_message(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    return phase_checklist(plan, release, now, str(data["phase"]))


def gonogo_checklist(plan: Plan, release: Release, now: datetime) -> Message:
    """The go/no-go checklist privately (`/gonogo checklist`), with the same buttons as on the vote."""
    ticked, total = task_counts(release, plan, GO_NO_GO_CHECKLIST)
    blocks: list[dict[str, Any]] = [
        bk.header(f"Go/No-Go checklist: {release.name} {release.version}"),
        bk.section(f"*{ticked} of {total} items ticked*"),
        *item_blocks(plan, release, GO_NO_GO_CHECKLIST, now),
    ]
    closed = closed_reason(release, plan, GO_NO_GO_CHECKLIST)
    how = f"Voters and the release manager tick the items: {GONOGO_TASKS_USAGE}"
    blocks.append(bk.context(slack_escape(closed) if closed else how))
    return bk.message(blocks, slack_escape(f"Go/No-Go checklist: {ticked} of {total} items ticked"))


def done_confirmation(error: OpenTasks) -> Message:
    """What `/phase done ID` answers while tasks are open: which, and a button to finish anyway."""
    listed = "\n".join(f"{OPEN} *{n}.* {slack_escape(text)}" for n, text in error.left)
    value = confirm_value(error.release_id, error.phase_id, error.note)
    confirm = {
        "title": {"type": "plain_text", "text": "Finish with open tasks?"},
        "text": {"type": "mrkdwn", "text": "The open tasks are recorded as left open (timeline and checklist)."},
        "confirm": {"type": "plain_text", "text": "Finish"},
        "deny": {"type": "plain_text", "text": "Cancel"},
    }
    blocks = [
        bk.section(
            f"*{slack_escape(error.phase_name)}* still has {len(error.left)} open task(s). "
            f"Finish it anyway? They are recorded as left open."
        ),
        *bk.sections(listed),
        bk.actions(
            [
                bk.button(
                    f"Finish {error.phase_name} anyway",
                    ActionId.PHASE_DONE_CONFIRM,
                    value,
                    style="danger",
                    confirm=confirm,
                )
            ]
        ),
        bk.context(
            f"Or tick them first: `/phase check {error.phase_id} N`. "
            f"Typed: `/phase done {error.phase_id} --force [note]`. {PHASE_TASKS_USAGE}"
        ),
    ]
    return bk.message(blocks, slack_escape(str(error)))
