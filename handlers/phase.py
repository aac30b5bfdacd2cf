"""`/phase`: start, done, fail, skip, list; tasks, check, uncheck (in handlers.checklists)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot.checklists import OpenTasks, ShowTasks, TickTask
from bot.commands import ListPhases, parse_phase, split_release_option
from bot.ids import Command
from bot.rules import change_phase
from handlers.checklists import ask_to_confirm, checklist_command
from handlers.deps import Deps
from messages.render import render


def register(app: AsyncApp) -> None:
    app.command(Command.PHASE)(on_phase)


async def on_phase(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, deps: Deps) -> None:
    """Parse, authorize (in the rule), change the phase, reply privately; the war room gets the update."""
    await ack()
    text, requested = split_release_option(command.get("text", ""))
    parsed = parse_phase(text)
    release_id = deps.release_for(command, requested)
    plan = deps.service.plan(release_id)
    if isinstance(parsed, ListPhases):
        release = await deps.service.get(release_id)
        card = render(plan, "phase_list", release, deps.clock())
        await respond(response_type="ephemeral", **card.kwargs())
        return
    if isinstance(parsed, ShowTasks | TickTask):
        await checklist_command(parsed, release_id, command["user_id"], respond, deps)
        return
    actor = await deps.actor(plan, command["user_id"])
    change = parsed
    try:
        outcome = await deps.service.run(release_id, lambda r, p, now: change_phase(r, p, actor, change, now))
    except OpenTasks as asked:  # `done` with tasks open: ask first (nothing changed)
        await ask_to_confirm(asked, respond)
        return
    await respond(response_type="ephemeral", text=outcome.reply)
