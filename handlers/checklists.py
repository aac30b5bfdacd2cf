"""Checklists from Slack: `/phase tasks|check|uncheck`, `/gonogo checklist|check|uncheck`, the Tick / Untick
buttons (on the checklist message, the vote, a private checklist or the App Home) and *Finish anyway*.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

import messages.checklist_cards  # noqa: F401 - registers the checklist message the dispatcher renders
from bot.checklists import (
    OpenTasks,
    ShowTasks,
    TickTask,
    parse_confirm,
    parse_toggle,
    require_checklist,
    tick_task,
)
from bot.domain import GO_NO_GO_CHECKLIST
from bot.ids import ActionId
from bot.rules import ChangePhase, PhaseVerb, change_phase
from handlers.deps import Deps
from handlers.errors import answer
from messages.blocks import Message
from messages.checklist_cards import done_confirmation, gonogo_checklist, phase_checklist


def register(app: AsyncApp) -> None:
    app.action(ActionId.TASK_TOGGLE)(on_task_toggle)
    app.action(ActionId.PHASE_DONE_CONFIRM)(on_done_confirmed)


async def checklist_command(
    parsed: ShowTasks | TickTask, release_id: str, user_id: str, respond: AsyncRespond, deps: Deps
) -> None:
    """`tasks`/`checklist` shows the checklist privately; `check`/`uncheck` ticks and replies privately."""
    plan = deps.service.plan(release_id)
    if isinstance(parsed, ShowTasks):
        release = await deps.service.get(release_id)
        require_checklist(release, plan, parsed.scope)
        await respond(response_type="ephemeral", **_checklist(deps, plan, release, parsed.scope).kwargs())
        return
    actor = await deps.actor(plan, user_id)
    outcome = await deps.service.run(release_id, lambda r, p, now: tick_task(r, p, actor, parsed, now))
    await respond(response_type="ephemeral", text=outcome.reply)


def _checklist(deps: Deps, plan: Any, release: Any, scope: str) -> Message:
    if scope == GO_NO_GO_CHECKLIST:
        return gonogo_checklist(plan, release, deps.clock())
    return phase_checklist(plan, release, deps.clock(), scope)


async def ask_to_confirm(asked: OpenTasks, respond: AsyncRespond) -> None:
    """`/phase done ID` with open tasks: which are open, and a button to finish anyway."""
    await respond(response_type="ephemeral", **done_confirmation(asked).kwargs())


def _ephemeral(body: dict[str, Any]) -> bool:
    return bool((body.get("container") or {}).get("is_ephemeral"))


async def on_task_toggle(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    deps: Deps,
) -> None:
    """*Tick* / *Untick*: the item changes, the checklist message (or the vote) updates in place."""
    await ack()
    value = str(action.get("value") or (action.get("selected_option") or {}).get("value") or "")
    requested, scope, number, done = parse_toggle(value)
    release_id = deps.release_for(body, requested or None)
    plan = deps.service.plan(release_id)
    actor = await deps.actor(plan, body["user"]["id"])
    command = TickTask(scope, number, done)
    outcome = await deps.service.run(release_id, lambda r, p, now: tick_task(r, p, actor, command, now))
    if _ephemeral(body) and getattr(respond, "response_url", None):
        # a private checklist (`/phase tasks`): show it ticked in place of the old one
        message = _checklist(deps, plan, outcome.release, scope)
        await respond(response_type="ephemeral", replace_original=True, **message.kwargs())
        return
    await answer(body, respond, client, outcome.reply, deps.notice)


async def on_done_confirmed(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    deps: Deps,
) -> None:
    """*Finish anyway*: the phase is done; its open tasks are recorded as left open."""
    await ack()
    requested, phase_id, note = parse_confirm(str(action.get("value") or ""))
    release_id = deps.release_for(body, requested)
    plan = deps.service.plan(release_id)
    actor = await deps.actor(plan, body["user"]["id"])
    command = ChangePhase(PhaseVerb.DONE, phase_id, note, force=True)
    outcome = await deps.service.run(release_id, lambda r, p, now: change_phase(r, p, actor, command, now))
    if _ephemeral(body) and getattr(respond, "response_url", None):
        await respond(response_type="ephemeral", replace_original=True, text=outcome.reply)  # the button goes
        return
    await answer(body, respond, client, outcome.reply, deps.notice)
