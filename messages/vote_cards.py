"""Python-built go/no-go and rollback messages (registered with `@builder`) and their modals.

The vote message and the rollback prompt are re-rendered from the release on every Refresh, so they
always show the current tally; the decision message renders the snapshot recorded with the decision.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bot.checklists import open_tasks, task_counts
from bot.domain import GO_NO_GO_CHECKLIST, Ballot, Decision, IssueStatus, Release, ReleaseStatus, Severity, Vote
from bot.ids import ActionId, BlockId, CallbackId
from bot.lifecycle import ASKED, ROLLBACK_POINT, evaluation_kind
from bot.plan import Plan
from bot.rules import status_colour
from bot.votes import (
    AUTO_NO_GO_GRACE,
    attempt_decision,
    go_decision,
    role_title,
    tally_votes,
    vote_ref,
    vote_state,
)
from messages import blocks as bk
from messages.alert_cards import trigger_blocks, trigger_title
from messages.blocks import Message
from messages.check_cards import check_blocks
from messages.checklist_cards import item_blocks
from messages.render import COLOUR_ICONS, builder, date_token, mention, mentions, slack_escape, time_token

VOTE_ICONS = {Vote.GO: "✅", Vote.NO_GO: "⛔"}
VOTE_LABELS = {Vote.GO: "Go", Vote.NO_GO: "No-Go"}
CRITICAL_SHOWN = 10
"""Open critical issues listed on the vote; the rest are counted, with where to see them."""
ISSUE_IMPACT = 200


def _name(release: Release) -> str:
    """The release's name and version as mrkdwn (they come from the plan, typed by people)."""
    return slack_escape(f"{release.name} {release.version}")


def _who(user: str) -> str:
    return "Warroom" if user == "warroom" else str(mention(user))


def _channel_ref(plan: Plan, key: str) -> str:
    ref = plan.channel(key)
    return f"<#{ref}>" if ref[:1] in {"C", "G"} else slack_escape(ref)


def _ballot_line(ballot: Ballot, tz: str) -> str:
    icon, label = VOTE_ICONS[ballot.vote], VOTE_LABELS[ballot.vote]
    line = f"{icon} {label} — {mention(ballot.voter)} {time_token(ballot.at, tz)}"
    return f"{line}: _{slack_escape(ballot.reason)}_" if ballot.reason else line


def vote_buttons(release: Release, plan: Plan) -> dict[str, Any]:
    """*Go*, *No-Go* (asks for a reason) and *Decide* (final authority); the value names the release and
    the attempt, so a button on a message of an earlier date cannot vote in the current one."""
    authority = role_title(plan.go_no_go.final_authority) if plan.go_no_go else "final authority"
    ref = vote_ref(release)
    return bk.actions(
        [
            bk.button("✅ Go", ActionId.VOTE_GO, ref, style="primary"),
            bk.button("⛔ No-Go", ActionId.VOTE_NO_GO, ref, style="danger"),
            bk.button(f"Decide ({authority})", ActionId.VOTE_DECIDE, ref),
        ],
        block_id=BlockId.VOTE_ACTIONS,
    )


def _superseded(release: Release, attempt: int) -> str:
    """What a vote message of an earlier attempt shows once the release was rescheduled."""
    decision = attempt_decision(release, attempt)
    outcome = ""
    if decision is not None:
        label = VOTE_LABELS[Vote(decision.outcome)].upper()
        outcome = (
            f"*Decision: {label}* at {time_token(decision.at, release.timezone)}: {slack_escape(decision.rationale)}\n"
        )
    return (
        f"{outcome}*Superseded:* the release was rescheduled to {date_token(release.window_start, release.timezone)}; "
        "its vote is a new message in the war room."
    )


def _decision_text(release: Release) -> str:
    decision = go_decision(release)
    assert decision is not None
    outcome = Vote(decision.outcome)
    how = "by the vote" if decision.decided_by == "warroom" else f"by {_who(decision.decided_by)}"
    override = " (overriding the tally)" if decision.overrode_tally else ""
    return (
        f"{VOTE_ICONS[outcome]} *Decision: {VOTE_LABELS[outcome].upper()}* {how}{override} "
        f"at {time_token(decision.at, release.timezone)}\n*Rationale:* {slack_escape(decision.rationale)}"
    )


@builder("gonogo_vote")
def vote_message(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    """The war-room vote: checklist, open critical issues, each voter role's vote, tally, buttons."""
    spec = plan.go_no_go
    tz = release.timezone
    head = bk.header(f"Go/No-Go: {release.name} {release.version}")
    if spec is None:
        return bk.message([head, bk.section("This release has no go/no-go vote in its plan.")])
    attempt = int(data.get("attempt", 1))
    if attempt != release.attempt:
        return bk.message(
            [head, bk.section(_superseded(release, attempt))], f"Go/No-Go vote (superseded) for {_name(release)}"
        )
    state = vote_state(release, plan)
    tally = tally_votes(release, plan)
    deadline = plan.at(spec.deadline)
    if state == "decided":
        status = _decision_text(release)
    elif state == "closed":
        status = f"Voting is closed: the release is {release.status.value.replace('_', ' ')}."
    elif state == "pending":
        status = f"Voting opens {date_token(plan.at(spec.at), tz)}."
    else:
        status = (
            f"*Voting is open* until {date_token(deadline, tz)}. All Go → Go · any No-Go → No-Go · "
            f"{role_title(spec.final_authority)} ({mentions(plan.members([spec.final_authority]))}) "
            "may decide at any time."
        )
    counts = f"*Tally:* ✅ {len(tally.go)} Go · ⛔ {len(tally.no_go)} No-Go · ⏳ {len(tally.missing)} missing" + (
        f" ({', '.join(role_title(r) for r in tally.missing)})" if tally.missing else ""
    )
    critical = [i for i in release.open_issues if i.severity is Severity.CRITICAL]
    issues = (
        "\n".join(
            f"🔴 #{i.number} {slack_escape(i.component)} — {slack_escape(bk.truncate(i.impact, ISSUE_IMPACT))}"
            for i in critical[:CRITICAL_SHOWN]
        )
        if critical
        else "None ✅"
    )
    if len(critical) > CRITICAL_SHOWN:
        issues += f"\n… and {len(critical) - CRITICAL_SHOWN} more open critical issues — `/issue list`"
    ticked, total = task_counts(release, plan, GO_NO_GO_CHECKLIST)
    still_open = ", ".join(str(n) for n, _ in open_tasks(release, plan, GO_NO_GO_CHECKLIST))
    checklist_head = f"*Go/No-Go checklist* — {ticked} of {total} ticked" + (
        f" · still open: {still_open}" if still_open else " ✅"
    )
    checklist = [bk.section(checklist_head), *item_blocks(plan, release, GO_NO_GO_CHECKLIST, now, max_sections=10)]
    voter_lines = []
    for role_vote in tally.roles:
        who = mentions(plan.members([role_vote.role]))
        votes = " · ".join(_ballot_line(b, tz) for b in role_vote.ballots) or "⏳ _not voted yet_"
        voter_lines.append(f"*{role_title(role_vote.role)}* ({who}): {votes}")
    blocks: list[dict[str, Any]] = [
        head,
        bk.section(status),
        bk.section(counts),
        bk.divider(),
        *(checklist if spec.checklist else []),
        *bk.layout(f"*Open critical issues*\n{issues}"),  # split at line breaks rather than cut
        *check_blocks(plan, release, "vote"),
        bk.divider(),
        *bk.sections("*Voters*\n" + "\n".join(voter_lines)),
    ]
    if state == "open":
        auto_at = deadline + AUTO_NO_GO_GRACE
        blocks.append(
            bk.context(
                "Votes may change until the decision. Still missing at the deadline: voters are reminded, "
                f"and at {time_token(auto_at, tz)} the vote is recorded as No-Go unless the "
                f"{role_title(spec.final_authority).lower()} decides."
            )
        )
        blocks.append(vote_buttons(release, plan))
    summary = (
        _decision_text(release).split("\n")[0].replace("*", "")
        if state == "decided"
        else f"{len(tally.go)} Go, {len(tally.no_go)} No-Go, {len(tally.missing)} missing"
    )
    return bk.message(blocks, f"Go/No-Go vote for {_name(release)}: {summary}", keep_last=2)


@builder("gonogo_decision")
def decision_message(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    """The decision as recorded (data is the snapshot taken with it), for the war room and announcements."""
    outcome = Vote(data["outcome"])
    tz = release.timezone
    title = f"{VOTE_ICONS[outcome]} {VOTE_LABELS[outcome].upper()}: {release.name} {release.version}"
    how = {
        "tally": "by the vote",
        "deadline": "at the deadline",
        "final_authority": f"by {_who(str(data.get('decided_by', '')))}",
    }.get(str(data.get("how")), f"by {_who(str(data.get('decided_by', '')))}")
    override = " — *overriding the tally*" if data.get("overrode_tally") else ""
    lines = [f"*Go/No-Go decision:* {VOTE_LABELS[outcome]}, decided {how}{override}."]
    lines.append(f"*Rationale:* {slack_escape(data.get('rationale', ''))}")
    tally = [
        f"✅ Go: {', '.join(role_title(r) for r in data.get('go', [])) or '—'}",
        f"⛔ No-Go: {', '.join(role_title(r) for r in data.get('no_go', [])) or '—'}",
    ]
    if data.get("missing"):
        tally.append(f"⏳ Missing: {', '.join(role_title(r) for r in data['missing'])}")
    if outcome is Vote.GO:
        next_step = f"The deployment starts {date_token(release.window_start, tz)} as planned."
        if release.window_start <= now:
            next_step = "The deployment starts now."
    else:
        next_step = "The deployment is postponed; a new date will be announced."
    blocks = [
        bk.header(title),
        bk.section("\n".join(lines)),
        bk.section(" · ".join(tally)),
        bk.context(next_step),
    ]
    return bk.message(blocks, f"Go/No-Go decision for {_name(release)}: {VOTE_LABELS[outcome]}")


@builder("gonogo_reminder")
def reminder_message(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    """At the deadline: a DM to each missing voter (with the buttons) or the war-room reminder."""
    tz = release.timezone
    auto_at = datetime.fromisoformat(str(data["auto_at"]))
    missing = [str(r) for r in data.get("missing", [])]
    roles = ", ".join(role_title(r) for r in missing)
    authority = role_title(plan.go_no_go.final_authority).lower() if plan.go_no_go else "final authority"
    consequence = f"At {time_token(auto_at, tz)} missing votes make the decision No-Go unless the {authority} decides."
    if data.get("dm"):
        text = (
            f"⏰ Your go/no-go vote for *{slack_escape(f'{release.name} {release.version}')}* is missing "
            f"({roles}). Vote here or in {_channel_ref(plan, 'war_room')}. {consequence}"
        )
    else:
        who = mentions(plan.members(missing))
        text = f"⏰ *Go/No-Go deadline:* votes missing from {roles} ({who}). {consequence}"
    blocks = [bk.section(text)]
    attempt = int(data.get("attempt", 1))
    if attempt != release.attempt:
        blocks.append(bk.section(_superseded(release, attempt)))
    elif data.get("dm") and vote_state(release, plan) == "open":
        blocks.append(vote_buttons(release, plan))
    return bk.message(blocks, f"Go/No-Go vote missing for {_name(release)}: {roles}")


@builder("rollback_prompt")
def rollback_prompt(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    """At the decision point: continue or roll back? The release manager answers with a button."""
    blocks: list[dict[str, Any]] = [
        bk.header(f"Rollback decision point: {release.name} {release.version}"),
        *_question(plan, release, now),
        *_choice(
            release,
            release.decision(ROLLBACK_POINT),
            (ActionId.ROLLBACK_CONTINUE, ActionId.ROLLBACK_EXECUTE),
            release.id,
            "“at the decision point”",
        ),
    ]
    return bk.message(blocks, f"Rollback decision point for {_name(release)}: continue or roll back?")


@builder("rollback_evaluation")
def rollback_evaluation(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    """A critical issue during the deployment: continue (fix forward) or roll back? Decide within 5 minutes."""
    number = int(data["issue"])
    issue = release.issue(number)
    decision = release.decision(evaluation_kind(number))
    answered = decision if decision is not None and decision.outcome != ASKED else None
    title = trigger_title(release, number) or f"Critical issue #{number}: continue or roll back?"
    blocks: list[dict[str, Any]] = [bk.header(title), *trigger_blocks(plan, release, number)]
    if issue is not None:
        where = issue.component + (f" / {issue.region}" if issue.region else "")
        state = (
            f"resolved by {_who(issue.resolved_by or '')} at {time_token(issue.resolved_at, release.timezone)}"
            if issue.status is IssueStatus.RESOLVED
            else "open"
        )
        blocks.append(bk.section(f"*{slack_escape(where)}*: {slack_escape(issue.impact)}\n*Issue:* {state}"))
    blocks += _question(plan, release, now)
    blocks += _choice(
        release,
        answered,
        (ActionId.EVALUATION_CONTINUE, ActionId.EVALUATION_EXECUTE),
        f"{release.id}:{number}",
        f"“critical issue #{number}”" if trigger_title(release, number) is None else f"the trigger (issue #{number})",
    )
    return bk.message(blocks, f"{title} ({_name(release)})")


def _question(plan: Plan, release: Release, now: datetime) -> list[dict[str, Any]]:
    colour, reason = status_colour(release, now)
    managers = mentions(plan.members(["release_manager"]))
    triggers = "\n".join(f"• {slack_escape(t)}" for t in plan.rollback.triggers) or "• (none listed in the plan)"
    return [
        bk.section(
            f"{managers}: continue the deployment or roll back? "
            f"Status {COLOUR_ICONS[colour.value]} *{colour.value}* ({slack_escape(reason)})."
        ),
        bk.section(f"*Roll back if any of these holds:*\n{triggers}"),
        *check_blocks(plan, release, "prompt"),
    ]


def _choice(
    release: Release, answered: Decision | None, actions: tuple[ActionId, ActionId], value: str, recorded: str
) -> list[dict[str, Any]]:
    """The answer once given; the Continue / Roll back buttons while the release is in progress."""
    if answered is not None:
        label = "Continue" if answered.outcome == "continue" else "Roll back"
        return [
            bk.section(
                f"*Answered: {label}* by {_who(answered.decided_by)} at {time_token(answered.at, release.timezone)} — "
                f"{slack_escape(answered.rationale)}"
            )
        ]
    if release.status in {ReleaseStatus.ROLLING_BACK, ReleaseStatus.ROLLED_BACK}:
        return [bk.section("*Rolled back* (see the rollback notice).")]
    if release.status is not ReleaseStatus.IN_PROGRESS:
        return [bk.section(f"Closed: the release is {release.status.value.replace('_', ' ')}.")]
    confirm = {
        "title": {"type": "plain_text", "text": "Roll back now?"},
        "text": {
            "type": "mrkdwn",
            "text": "The war room and announcements are told, the status turns Red. "
            f"The reason recorded is {recorded}; for another, use `/release rollback REASON`.",
        },
        "confirm": {"type": "plain_text", "text": "Roll back"},
        "deny": {"type": "plain_text", "text": "Cancel"},
        "style": "danger",
    }
    return [
        bk.context("Release manager authority · decide within 5 minutes."),
        bk.actions(
            [
                bk.button("Continue", actions[0], value, style="primary"),
                bk.button("Roll back", actions[1], value, style="danger", confirm=confirm),
            ],
            block_id=BlockId.ROLLBACK_ACTIONS,
        ),
    ]


# --- modals -------------------------------------------------------------------------------------------------


def _metadata(release: Release, channel: str | None, attempt: int | None = None) -> str:
    return json.dumps({"release": release.id, "channel": channel or "", "attempt": attempt or release.attempt})


def read_metadata(meta: dict[str, Any]) -> tuple[str, str, int | None]:
    """(release id, channel id, attempt) from the metadata of a modal this module built."""
    attempt = meta.get("attempt")
    return str(meta.get("release", "")), str(meta.get("channel", "")), attempt if isinstance(attempt, int) else None


def _text_input(block_id: str, label: str, placeholder: str) -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": label},
        "element": {
            "type": "plain_text_input",
            "action_id": block_id,
            "multiline": True,
            "max_length": 2000,
            "placeholder": {"type": "plain_text", "text": placeholder},
        },
    }


def no_go_modal(release: Release, channel: str | None, attempt: int | None = None) -> dict[str, Any]:
    """*No-Go* asks why."""
    return {
        "type": "modal",
        "callback_id": CallbackId.NO_GO_MODAL,
        "private_metadata": _metadata(release, channel, attempt),
        "title": {"type": "plain_text", "text": "Vote No-Go"},
        "submit": {"type": "plain_text", "text": "Vote No-Go"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            bk.section(
                f"*{slack_escape(release.name)} {slack_escape(release.version)}*: any No-Go makes the "
                "decision No-Go unless the final authority overrides. You may change your vote until then."
            ),
            _text_input(BlockId.REASON, "What blocks the go-live?", "e.g. backup not verified"),
        ],
    }


def _option(vote: Vote) -> dict[str, Any]:
    return {
        "text": {"type": "plain_text", "text": f"{VOTE_ICONS[vote]} {VOTE_LABELS[vote]}"},
        "value": vote.value,
    }


def decide_modal(plan: Plan, release: Release, channel: str | None, attempt: int | None = None) -> dict[str, Any]:
    """*Decide*: the final authority picks the outcome and must give a rationale."""
    tally = tally_votes(release, plan)
    return {
        "type": "modal",
        "callback_id": CallbackId.DECIDE_MODAL,
        "private_metadata": _metadata(release, channel, attempt),
        "title": {"type": "plain_text", "text": "Go/No-Go decision"},
        "submit": {"type": "plain_text", "text": "Decide"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            bk.section(
                f"*{slack_escape(release.name)} {slack_escape(release.version)}* — votes so far: "
                f"✅ {len(tally.go)} Go · ⛔ {len(tally.no_go)} No-Go · ⏳ {len(tally.missing)} missing. "
                "Your decision is final and overrides the tally."
            ),
            {
                "type": "input",
                "block_id": BlockId.OUTCOME,
                "label": {"type": "plain_text", "text": "Decision"},
                "element": {
                    "type": "radio_buttons",
                    "action_id": BlockId.OUTCOME,
                    "options": [_option(Vote.GO), _option(Vote.NO_GO)],
                },
            },
            _text_input(BlockId.REASON, "Rationale (recorded on the timeline)", "Why this decision?"),
        ],
    }
