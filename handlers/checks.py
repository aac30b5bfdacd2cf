"""`/release checks`: read the plan's checks from Prometheus now and reply with the readings (ephemeral:
the cards in the war room show them too; the readings go on the timeline)."""

from __future__ import annotations

from slack_bolt.async_app import AsyncRespond

from bot.domain import Conflict
from handlers.deps import Deps
from messages.check_cards import checks_reply


async def on_checks(release_id: str, user_id: str, respond: AsyncRespond, deps: Deps) -> None:
    """Read now (a few seconds at most, after the ack), record, reply to the person who asked."""
    plan = deps.service.plan(release_id)
    if plan.checks and deps.checks is None:
        raise Conflict("Checks cannot be read here: this process has no Prometheus client.")
    if plan.checks and deps.checks is not None:
        await deps.checks.refresh(release_id, shown_on="command", by=user_id)
    release = await deps.service.get(release_id)
    reply = checks_reply(plan, release, deps.clock())
    await respond(response_type="ephemeral", **reply.kwargs())
