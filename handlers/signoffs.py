"""Sign-offs and the day-team handoff: `/release signoff|handoff`, the table's *Sign* / *Refuse* buttons,
the refusal form and *Accept handoff*. The buttons work from the war room and from the App Home (where a
click has no channel: the answer then comes by DM)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

import messages.signoff_cards  # noqa: F401 - registers the sign-off, handoff and follow-up messages
from bot.core.handoff import accept_handoff, post_handoff
from bot.core.signoffs import Refuse, Sign, check_can_answer, decide_signoff, parse_signoff
from bot.core.text import slack_escape
from bot.domain import DomainError, UsageError
from bot.ids import ActionId, BlockId, CallbackId
from handlers.deps import Deps
from handlers.errors import answer, reply_privately
from handlers.forms import actor_in_time, form_metadata
from messages.blocks import submitted_values
from messages.signoff_cards import parse_ref, refuse_modal

HANDOFF_USAGE = "Usage: `/release handoff` (post the day-team handoff now; add `--release ID` outside the war room)"
WORDS = frozenset({"signoff", "handoff"})
"""The `/release` words this module answers (`handlers/release.py` hands them over)."""


def register(app: AsyncApp) -> None:
    app.action(ActionId.SIGNOFF_SIGN)(on_sign_clicked)
    app.action(ActionId.SIGNOFF_REFUSE)(on_refuse_clicked)
    app.action(ActionId.HANDOFF_ACCEPT)(on_accept_clicked)
    app.view(CallbackId.SIGNOFF_REFUSE_MODAL)(on_refusal_submitted)


def handles(text: str) -> bool:
    """True when `/release TEXT` is a sign-off or handoff command."""
    first = text.strip().split(None, 1)[:1]
    return bool(first) and first[0].lower() in WORDS


async def on_release_words(command: dict[str, Any], text: str, requested: str | None, deps: Deps) -> str:
    """`/release signoff …` and `/release handoff`: run the rule; return the private reply."""
    release_id = deps.release_for(command, requested)
    plan = deps.service.plan(release_id)
    actor = await deps.actor(plan, command["user_id"])
    words = text.strip().split()
    if words[0].lower() == "handoff":
        if len(words) > 1:
            raise UsageError("`/release handoff` takes no arguments.", HANDOFF_USAGE)
        outcome = await deps.service.run(release_id, lambda r, p, now: post_handoff(r, p, actor, now))
        return outcome.reply
    parsed = parse_signoff(text)
    outcome = await deps.service.run(release_id, lambda r, p, now: decide_signoff(r, p, actor, parsed, now))
    return outcome.reply


def _where(body: dict[str, Any]) -> tuple[str, str]:
    """(user, channel) of a click; the channel is empty for a click in the App Home."""
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id") or ""
    return body["user"]["id"], channel


def _value(body: dict[str, Any]) -> tuple[str, str]:
    value = str((body.get("actions") or [{}])[0].get("value") or "")
    release_id, role = parse_ref(value)
    if not release_id:
        raise UsageError("This button carries no release; use `/release signoff` or `/release handoff` instead.")
    return release_id, role


async def on_sign_clicked(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, deps: Deps) -> None:
    """*Sign*: the clicker signs for the button's role, if they hold it; the table updates in place."""
    await ack()
    release_id, role = _value(body)
    user, _ = _where(body)
    plan = deps.service.plan(release_id)
    actor = await deps.actor(plan, user)
    command = Sign(role)
    outcome = await deps.service.run(release_id, lambda r, p, now: decide_signoff(r, p, actor, command, now))
    await answer(body, None, client, outcome.reply, deps.notice)


async def on_refuse_clicked(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, deps: Deps) -> None:
    """*Refuse*: checked first (an explanation beats a form that will be refused), then the reason is asked."""
    await ack()
    release_id, role = _value(body)
    user, channel = _where(body)
    plan = deps.service.plan(release_id)
    actor = await deps.actor(plan, user)
    release = await deps.service.get(release_id)
    spec = check_can_answer(release, plan, actor, role)  # the rule checks again on submit
    await client.views_open(trigger_id=body["trigger_id"], view=refuse_modal(release, plan, spec.role, channel))


async def on_refusal_submitted(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient, deps: Deps
) -> None:
    """The refusal form: the reason is required; a refusal the rule rejects is shown in the form."""
    reason = (submitted_values(view).get(BlockId.REASON) or "").strip()
    if not reason:
        await ack(response_action="errors", errors={BlockId.REASON: "Say why you refuse; it is recorded."})
        return
    user = body["user"]["id"]
    try:
        meta = form_metadata(view)
        release_id, role = str(meta.get("release", "")), str(meta.get("role", ""))
        channel = str(meta.get("channel", ""))
        plan = deps.service.plan(release_id)
        actor = await actor_in_time(deps, plan, user)
        command = Refuse(role, reason[:2000])
        outcome = await deps.service.run(release_id, lambda r, p, now: decide_signoff(r, p, actor, command, now))
    except DomainError as error:
        await ack(response_action="errors", errors={BlockId.REASON: error.message[:300]})
        return
    await ack()
    if not channel and deps.home is not None:
        deps.home.notice(user, outcome.reply)  # the form was opened from the App Home: answered there
    else:
        await reply_privately(client, user=user, channel=channel, text=slack_escape(outcome.reply))


async def on_accept_clicked(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, deps: Deps) -> None:
    """*Accept handoff*: the receiving role takes over on-call; the handoff updates in place."""
    await ack()
    release_id, _ = _value(body)
    user, _ = _where(body)
    plan = deps.service.plan(release_id)
    actor = await deps.actor(plan, user)
    outcome = await deps.service.run(release_id, lambda r, p, now: accept_handoff(r, p, actor, now))
    await answer(body, None, client, outcome.reply, deps.notice)
