"""The rollback prompts' buttons: *Continue* or *Roll back* (confirmed, default reason) — at the rollback
decision point, and after a critical issue during the deployment."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

import messages.vote_cards  # noqa: F401 - registers the rollback prompts the dispatcher renders
from bot.evaluation import AnswerEvaluation, answer
from bot.ids import ActionId
from bot.issues import parse_ref
from bot.lifecycle import AnswerDecisionPoint, PointChoice, answer_decision_point
from handlers.deps import Deps


def register(app: AsyncApp) -> None:
    app.action(ActionId.ROLLBACK_CONTINUE)(on_rollback_continue)
    app.action(ActionId.ROLLBACK_EXECUTE)(on_rollback_execute)
    app.action(ActionId.EVALUATION_CONTINUE)(on_evaluation_continue)
    app.action(ActionId.EVALUATION_EXECUTE)(on_evaluation_execute)


def _value(body: dict[str, Any]) -> str:
    return str((body.get("actions") or [{}])[0].get("value") or "")


async def _answer(body: dict[str, Any], respond: AsyncRespond, deps: Deps, choice: PointChoice) -> None:
    release_id = deps.release_for(body, _value(body) or None)
    plan = deps.service.plan(release_id)
    actor = await deps.actor(plan, body["user"]["id"])
    command = AnswerDecisionPoint(choice)
    outcome = await deps.service.run(release_id, lambda r, p, now: answer_decision_point(r, p, actor, command, now))
    await respond(response_type="ephemeral", replace_original=False, text=outcome.reply)


async def _evaluate(body: dict[str, Any], respond: AsyncRespond, deps: Deps, choice: PointChoice) -> None:
    release_id, number = parse_ref(_value(body))
    plan = deps.service.plan(deps.release_for(body, release_id))
    actor = await deps.actor(plan, body["user"]["id"])
    command = AnswerEvaluation(number, choice)
    outcome = await deps.service.run(release_id, lambda r, p, now: answer(r, p, actor, command, now))
    await respond(response_type="ephemeral", replace_original=False, text=outcome.reply)


async def on_rollback_continue(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, deps: Deps) -> None:
    await ack()
    await _answer(body, respond, deps, PointChoice.CONTINUE)


async def on_rollback_execute(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, deps: Deps) -> None:
    await ack()
    await _answer(body, respond, deps, PointChoice.ROLLBACK)


async def on_evaluation_continue(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, deps: Deps) -> None:
    await ack()
    await _evaluate(body, respond, deps, PointChoice.CONTINUE)


async def on_evaluation_execute(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, deps: Deps) -> None:
    await ack()
    await _evaluate(body, respond, deps, PointChoice.ROLLBACK)
