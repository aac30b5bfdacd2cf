"""`/page` (a level, a role or a person; ack; list) and the *Acknowledge* button."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.commands import split_release_option
from bot.ids import ActionId, Command
from bot.issues import parse_ref
from bot.paging import AckPage, ListPages, ack_page, decide_page, parse_page
from handlers.deps import Deps
from handlers.errors import answer
from messages.issue_cards import page_list


def register(app: AsyncApp) -> None:
    app.command(Command.PAGE)(on_page)
    app.action(ActionId.PAGE_ACK)(on_page_ack)


async def on_page(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, deps: Deps) -> None:
    """Page people or acknowledge a page; the war room and the people paged are told."""
    await ack()
    text, requested = split_release_option(command.get("text", ""))
    parsed = parse_page(text)
    release_id = deps.release_for(command, requested)
    plan = deps.service.plan(release_id)
    if isinstance(parsed, ListPages):
        release = await deps.service.get(release_id)
        await respond(response_type="ephemeral", **page_list(plan, release, deps.clock()).kwargs())
        return
    actor = await deps.actor(plan, command["user_id"])
    outcome = await deps.service.run(release_id, lambda r, p, now: decide_page(r, p, actor, parsed, now))
    await respond(response_type="ephemeral", text=outcome.reply)


async def on_page_ack(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    deps: Deps,
) -> None:
    """*Acknowledge* (in the DM, the war room or the App Home): the ladder stops."""
    await ack()
    release_id, number = parse_ref(action.get("value", ""))
    actor = await deps.actor(deps.service.plan(release_id), body["user"]["id"])
    outcome = await deps.service.run(release_id, lambda r, p, now: ack_page(r, p, actor, AckPage(number), now))
    await answer(body, respond, client, outcome.reply, deps.notice)
