"""The rollback decision-point prompt's buttons: *Continue* or *Roll back* (confirmed, default reason)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

import messages.vote_cards  # noqa: F401 - registers the rollback prompt the dispatcher renders
from bot.ids import ActionId
from bot.lifecycle import AnswerDecisionPoint, PointChoice, answer_decision_point
from handlers.deps import Deps


def register(app: AsyncApp) -> None:
    app.action(ActionId.ROLLBACK_CONTINUE)(on_rollback_continue)
    app.action(ActionId.ROLLBACK_EXECUTE)(on_rollback_execute)


async def _answer(body: dict[str, Any], respond: AsyncRespond, deps: Deps, choice: PointChoice) -> None:
    release_id = deps.release_for(body, (body.get("actions") or [{}])[0].get("value") or None)
    plan = deps.service.plan(release_id)
    actor = await deps.actor(plan, body["user"]["id"])
    command = AnswerDecisionPoint(choice)
    outcome = await deps.service.run(release_id, lambda r, p, now: answer_decision_point(r, p, actor, command, now))
    await respond(response_type="ephemeral", replace_original=False, text=outcome.reply)


async def on_rollback_continue(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, deps: Deps) -> None:
    await ack()
    await _answer(body, respond, deps, PointChoice.CONTINUE)


async def on_rollback_execute(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, deps: Deps) -> None:
    await ack()
    await _answer(body, respond, deps, PointChoice.ROLLBACK)
