"""The rollback prompts' buttons: *Continue* or *Roll back* (confirmed, default reason) — at the rollback
decision point, after a critical issue during the deployment, and when a rollback-trigger check keeps failing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

import messages.check_cards
import messages.vote_cards  # noqa: F401 - registers the rollback prompts the dispatcher renders
from bot.core.checks import AnswerCheck, answer_check
from bot.evaluation import AnswerEvaluation, answer
from bot.ids import ActionId
from bot.issues import parse_ref
from bot.lifecycle import AnswerDecisionPoint, PointChoice, answer_decision_point
from handlers.deps import Deps


def register(app: AsyncApp) -> None:
    app.action(ActionId.ROLLBACK_CONTINUE)(_button(_answer, PointChoice.CONTINUE))
    app.action(ActionId.ROLLBACK_EXECUTE)(_button(_answer, PointChoice.ROLLBACK))
    app.action(ActionId.EVALUATION_CONTINUE)(_button(_evaluate, PointChoice.CONTINUE))
    app.action(ActionId.EVALUATION_EXECUTE)(_button(_evaluate, PointChoice.ROLLBACK))
    app.action(ActionId.CHECK_CONTINUE)(_button(_check, PointChoice.CONTINUE))
    app.action(ActionId.CHECK_EXECUTE)(_button(_check, PointChoice.ROLLBACK))


Answer = Callable[[dict[str, Any], AsyncRespond, Deps, PointChoice], Awaitable[None]]


def _button(run: Answer, choice: PointChoice) -> Callable[..., Awaitable[None]]:
    """A listener that acknowledges the click, then records `choice` (Bolt passes arguments by name)."""

    async def listener(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, deps: Deps) -> None:
        await ack()
        await run(body, respond, deps, choice)

    listener.__name__ = f"on_{run.__name__.strip('_')}_{choice.value}"
    return listener


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


async def _check(body: dict[str, Any], respond: AsyncRespond, deps: Deps, choice: PointChoice) -> None:
    release_id, _, ref = _value(body).partition("|")
    release_id = deps.release_for(body, release_id or None)
    plan = deps.service.plan(release_id)
    actor = await deps.actor(plan, body["user"]["id"])
    command = AnswerCheck(ref, choice)
    outcome = await deps.service.run(release_id, lambda r, p, now: answer_check(r, p, actor, command, now))
    await respond(response_type="ephemeral", replace_original=False, text=outcome.reply)
