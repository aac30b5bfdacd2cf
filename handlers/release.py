"""`/release`: the status card, and the lifecycle (start, complete, abort, rollback)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.commands import ReleaseVerb, parse_release, split_release_option
from bot.ids import Command
from bot.lifecycle import change_release
from handlers import signoffs
from handlers.checks import on_checks
from handlers.deps import Deps
from messages.render import render
from messages.schedule_card import schedule_card
from schedules.upcoming import upcoming_for


def register(app: AsyncApp) -> None:
    app.command(Command.RELEASE)(on_release)


async def on_release(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, deps: Deps) -> None:
    await ack()
    text, requested = split_release_option(command.get("text", ""))
    if signoffs.handles(text):  # `/release signoff …` and `/release handoff`
        await respond(response_type="ephemeral", text=await signoffs.on_release_words(command, text, requested, deps))
        return
    parsed = parse_release(text)
    release_id = deps.release_for(command, requested)
    plan = deps.service.plan(release_id)
    if parsed.verb is ReleaseVerb.STATUS:
        release = await deps.service.get(release_id)
        card = render(plan, "status_card", release, deps.clock())
        await respond(response_type="ephemeral", **card.kwargs())
        return
    if parsed.verb is ReleaseVerb.SCHEDULE:
        release = await deps.service.get(release_id)
        card = schedule_card(plan, release, await upcoming_for(deps.service, release_id), deps.clock())
        await respond(response_type="ephemeral", **card.kwargs())
        return
    if parsed.verb is ReleaseVerb.CHECKS:
        await on_checks(release_id, command["user_id"], respond, deps)
        return
    actor = await deps.actor(plan, command["user_id"])
    outcome = await deps.service.run(release_id, lambda r, p, now: change_release(r, p, actor, parsed, now))
    await respond(response_type="ephemeral", text=outcome.reply)
