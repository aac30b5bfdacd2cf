"""`/gonogo` and the vote's buttons and modals: show, open, vote (Go / No-Go with a reason), decide."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

import messages.vote_cards  # noqa: F401 - registers the vote messages the dispatcher renders
from bot.checklists import ShowTasks, TickTask
from bot.commands import split_release_option
from bot.core.text import slack_escape
from bot.domain import Actor, DomainError, Outcome, Release, Vote
from bot.gonogo_commands import parse_gonogo
from bot.ids import ActionId, BlockId, CallbackId, Command
from bot.plan import Plan
from bot.votes import (
    CastVote,
    DecideVote,
    ShowVote,
    cast_vote,
    decide,
    ensure_can_decide,
    ensure_can_vote,
    open_vote,
    parse_vote_ref,
    require_attempt,
    require_vote,
)
from handlers.checklists import checklist_command
from handlers.deps import Deps
from handlers.errors import answer, reply_privately
from handlers.forms import actor_in_time, form_metadata
from messages.blocks import submitted_values
from messages.render import compose
from messages.vote_cards import decide_modal, no_go_modal, read_metadata

RULES: dict[type, Callable[..., Outcome]] = {CastVote: cast_vote, DecideVote: decide}


def register(app: AsyncApp) -> None:
    app.command(Command.GONOGO)(on_gonogo)
    app.action(ActionId.VOTE_GO)(on_vote_go)
    app.action(ActionId.VOTE_NO_GO)(on_vote_no_go)
    app.action(ActionId.VOTE_DECIDE)(on_vote_decide)
    app.view(CallbackId.NO_GO_MODAL)(on_no_go_submitted)
    app.view(CallbackId.DECIDE_MODAL)(on_decide_submitted)


async def on_gonogo(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, deps: Deps) -> None:
    """`/gonogo` shows the vote privately; `open`, `go`, `no-go REASON` and `decide …` change it."""
    await ack()
    text, requested = split_release_option(command.get("text", ""))
    parsed = parse_gonogo(text)
    release_id = deps.release_for(command, requested)
    plan = deps.service.plan(release_id)
    if isinstance(parsed, ShowVote):
        require_vote(plan)
        card = compose(plan, "gonogo_vote", await deps.service.get(release_id), deps.clock(), {})
        await respond(response_type="ephemeral", **card.kwargs())
        return
    if isinstance(parsed, ShowTasks | TickTask):
        await checklist_command(parsed, release_id, command["user_id"], respond, deps)
        return
    actor = await deps.actor(plan, command["user_id"])
    rule = RULES.get(type(parsed), open_vote)
    outcome = await deps.service.run(release_id, lambda r, p, now: rule(r, p, actor, parsed, now))
    await respond(response_type="ephemeral", text=outcome.reply)


async def _clicked(body: dict[str, Any], deps: Deps) -> tuple[str, int, Plan, Actor]:
    """The release and attempt a vote button names (its value) and who clicked it."""
    requested, attempt = parse_vote_ref(str((body.get("actions") or [{}])[0].get("value") or ""))
    release_id = deps.release_for(body, requested or None)
    plan = deps.service.plan(release_id)
    return release_id, attempt, plan, await deps.actor(plan, body["user"]["id"])


async def on_vote_go(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, deps: Deps
) -> None:
    """*Go*, on the vote message or in the App Home."""
    await ack()
    release_id, attempt, _plan, actor = await _clicked(body, deps)
    command = CastVote(Vote.GO, attempt=attempt)
    outcome = await deps.service.run(release_id, lambda r, p, now: cast_vote(r, p, actor, command, now))
    await answer(body, respond, client, outcome.reply, deps.notice)


async def _open_modal(
    body: dict[str, Any],
    client: AsyncWebClient,
    deps: Deps,
    check: Callable[[Release, Plan, Actor], None],
    modal: Callable[[Release, Plan, str | None, int], dict[str, Any]],
) -> None:
    release_id, attempt, plan, actor = await _clicked(body, deps)
    release = await deps.service.get(release_id)
    require_attempt(release, attempt)  # refuse before the modal opens; the rule checks again on submit
    check(release, plan, actor)
    channel = (body.get("channel") or {}).get("id")
    await client.views_open(trigger_id=body["trigger_id"], view=modal(release, plan, channel, attempt))


async def on_vote_no_go(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, deps: Deps) -> None:
    await ack()
    await _open_modal(body, client, deps, ensure_can_vote, lambda r, _p, c, a: no_go_modal(r, c, a))


async def on_vote_decide(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, deps: Deps) -> None:
    await ack()
    await _open_modal(body, client, deps, ensure_can_decide, lambda r, p, c, a: decide_modal(p, r, c, a))


def _input(view: dict[str, Any], block: str) -> str:
    return (submitted_values(view).get(block) or "").strip()


async def _submit(
    ack: AsyncAck,
    body: dict[str, Any],
    view: dict[str, Any],
    client: AsyncWebClient,
    deps: Deps,
    command: CastVote | DecideVote,
) -> None:
    """Run the rule before acking, so a refusal shows inside the modal instead of vanishing with it."""
    user = body["user"]["id"]
    try:
        release_id, channel, attempt = read_metadata(form_metadata(view))  # unreadable: refused in the form
        command = replace(command, attempt=attempt)
        plan = deps.service.plan(release_id)
        actor = await actor_in_time(deps, plan, user)  # answered within Slack's 3 s even while it rate-limits
        rule = RULES[type(command)]
        outcome = await deps.service.run(release_id, lambda r, p, now: rule(r, p, actor, command, now))
    except DomainError as error:
        await ack(response_action="errors", errors={BlockId.REASON: error.message[:300]})
        return
    await ack()
    if outcome.reply and not channel and deps.home is not None:
        deps.home.notice(user, outcome.reply)  # the form was opened from the App Home: answered there
    elif outcome.reply:  # in the vote's channel; by DM when the bot cannot post there
        await reply_privately(client, user=user, channel=channel, text=slack_escape(outcome.reply))


async def on_no_go_submitted(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient, deps: Deps
) -> None:
    reason = _input(view, BlockId.REASON)
    if not reason:
        await ack(response_action="errors", errors={BlockId.REASON: "Say what blocks the go-live."})
        return
    await _submit(ack, body, view, client, deps, CastVote(Vote.NO_GO, reason))


async def on_decide_submitted(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient, deps: Deps
) -> None:
    outcome, rationale = _input(view, BlockId.OUTCOME), _input(view, BlockId.REASON)
    errors: dict[str, str] = {}
    if outcome not in {Vote.GO.value, Vote.NO_GO.value}:
        errors[BlockId.OUTCOME] = "Choose Go or No-Go."
    if not rationale:
        errors[BlockId.REASON] = "The rationale is required; it is recorded with the decision."
    if errors:
        await ack(response_action="errors", errors=errors)
        return
    await _submit(ack, body, view, client, deps, DecideVote(Vote(outcome), rationale))
