"""`/issue` (quick form, modal, list, resolve) and the issue card's buttons and modals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.commands import split_release_option
from bot.core.text import slack_escape
from bot.domain import DomainError, Outcome, UsageError
from bot.ids import ActionId, BlockId, CallbackId, Command
from bot.issues import (
    EscalateIssue,
    InvestigateIssue,
    IssueCommand,
    ListIssues,
    OpenIssueForm,
    ResolveIssue,
    check_resolvable,
    decide_issue,
    form_report,
    parse_issue,
    parse_ref,
)
from handlers.deps import Deps
from handlers.errors import answer, reply_privately
from handlers.forms import actor_in_time, form_metadata
from messages.blocks import submitted_values
from messages.issue_cards import issue_list, issue_modal, resolve_modal


def register(app: AsyncApp) -> None:
    app.command(Command.ISSUE)(on_issue)
    app.action(ActionId.ISSUE_INVESTIGATE)(on_investigate)
    app.action(ActionId.ISSUE_ESCALATE)(on_escalate)
    app.action(ActionId.ISSUE_RESOLVE)(on_resolve_clicked)
    app.view(CallbackId.ISSUE_MODAL)(on_issue_submitted)
    app.view(CallbackId.RESOLVE_MODAL)(on_resolve_submitted)


async def on_issue(
    ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, deps: Deps
) -> None:
    """Report (or open the form), list, or resolve; the war room gets the card."""
    await ack()
    text, requested = split_release_option(command.get("text", ""))
    release_id = deps.release_for(command, requested)
    plan = deps.service.plan(release_id)
    parsed = parse_issue(text, plan.regions or ())
    if isinstance(parsed, OpenIssueForm):
        await client.views_open(
            trigger_id=command["trigger_id"], view=issue_modal(plan, release_id, command["channel_id"])
        )
        return
    if isinstance(parsed, ListIssues):
        release = await deps.service.get(release_id)
        await respond(response_type="ephemeral", **issue_list(plan, release, deps.clock()).kwargs())
        return
    outcome = await _run(deps, release_id, command["user_id"], parsed)
    await respond(response_type="ephemeral", text=outcome.reply)


async def _run(deps: Deps, release_id: str, user_id: str, parsed: IssueCommand, *, form: bool = False) -> Outcome:
    plan = deps.service.plan(release_id)
    # a form is answered within Slack's 3 seconds: a slow user-group look-up is a refusal shown in it
    actor = await (actor_in_time(deps, plan, user_id) if form else deps.actor(plan, user_id))
    return await deps.service.run(release_id, lambda r, p, now: decide_issue(r, p, actor, parsed, now))


async def _on_button(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    deps: Deps,
    make: Callable[[int], IssueCommand],
) -> None:
    await ack()
    release_id, number = parse_ref(action.get("value", ""))
    outcome = await _run(deps, release_id, body["user"]["id"], make(number))
    await answer(body, respond, client, outcome.reply, deps.notice)


async def on_investigate(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    deps: Deps,
) -> None:
    """*Investigating*: the clicker takes the issue; the card updates in place."""
    await _on_button(ack, body, action, respond, client, deps, InvestigateIssue)


async def on_escalate(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    deps: Deps,
) -> None:
    """*Escalate*: page the next escalation level for the issue."""
    await _on_button(ack, body, action, respond, client, deps, EscalateIssue)


async def on_resolve_clicked(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient, deps: Deps
) -> None:
    """*Resolve*: check first (an explanation beats a form that will be refused), then ask for a note."""
    await ack()
    release_id, number = parse_ref(action.get("value", ""))
    plan = deps.service.plan(release_id)
    actor = await deps.actor(plan, body["user"]["id"])
    release = await deps.service.get(release_id)
    check_resolvable(release, plan, actor, number)
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or ""
    await client.views_open(trigger_id=body["trigger_id"], view=resolve_modal(release, number, channel))


async def on_issue_submitted(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient, deps: Deps
) -> None:
    """The `/issue` form: invalid fields are shown inline; a valid one reports like the quick form."""
    try:
        meta = form_metadata(view)
        plan = deps.service.plan(str(meta.get("release", "")))
    except DomainError as exc:
        await ack(response_action="errors", errors={BlockId.IMPACT: exc.message[:300]})
        return
    values = submitted_values(view)
    report, problems = form_report(
        plan,
        severity=values.get(BlockId.SEVERITY),
        component=values.get(BlockId.COMPONENT),
        region=values.get(BlockId.REGION),
        impact=values.get(BlockId.IMPACT),
        error=values.get(BlockId.ERROR),
    )
    if report is None:
        await ack(response_action="errors", errors=problems)
        return
    await _submit(ack, client, deps, meta, body["user"]["id"], report, BlockId.IMPACT)


async def on_resolve_submitted(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient, deps: Deps
) -> None:
    """The resolve form: resolve with the note; a refusal is shown in the form."""
    try:
        meta = form_metadata(view)
        number = meta.get("issue")
        if not isinstance(number, int):
            raise UsageError(f"This form names no issue ({number!r}); close it and click *Resolve* on the card again.")
    except DomainError as exc:
        await ack(response_action="errors", errors={BlockId.NOTE: exc.message[:300]})
        return
    command = ResolveIssue(number, submitted_values(view).get(BlockId.NOTE) or "")
    await _submit(ack, client, deps, meta, body["user"]["id"], command, BlockId.NOTE)


async def _submit(
    ack: AsyncAck,
    client: AsyncWebClient,
    deps: Deps,
    meta: dict[str, Any],
    user_id: str,
    command: IssueCommand,
    error_block: str,
) -> None:
    # run before ack: a refusal (the issue was resolved meanwhile) can then be shown in the form itself
    try:
        outcome = await _run(deps, str(meta.get("release", "")), user_id, command, form=True)
    except DomainError as exc:
        await ack(response_action="errors", errors={error_block: exc.message[:300]})
        return
    await ack()
    if outcome.reply:  # in the channel the form came from; by DM when the bot cannot post there
        channel = str(meta.get("channel") or "")
        await reply_privately(client, user=user_id, channel=channel, text=slack_escape(outcome.reply))
