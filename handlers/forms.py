"""Form (modal) submissions: Slack wants their answer within 3 seconds, and shows a refusal in the form."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bot.domain import Actor, Conflict, UsageError
from bot.plan import Plan
from handlers.deps import Deps

LOOKUP_WITHIN = 2.0
"""Seconds a submission may wait for Slack's user-group look-up before it is answered anyway."""

SLOW_LOOKUP = (
    "Slack is slow to say who is in the plan's user groups right now (it is limiting how fast we may ask), "
    "so nothing was recorded. Submit again in a few seconds."
)


def form_metadata(view: dict[str, Any]) -> dict[str, Any]:
    """What the bot put into the form when it opened it; refused when it cannot be read."""
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise UsageError(
            "This form could not be read (it may be from another version of Warroom). Close it and start again."
        )
    return meta


async def actor_in_time(deps: Deps, plan: Plan, user_id: str) -> Actor:
    """The roles `user_id` holds, or a refusal when Slack's user-group look-up would miss the deadline.

    The look-up goes on in the background and fills the cache, so submitting again a moment later works.
    """
    lookup = asyncio.ensure_future(deps.actor(plan, user_id))
    lookup.add_done_callback(lambda task: task.cancelled() or task.exception())
    try:
        return await asyncio.wait_for(asyncio.shield(lookup), LOOKUP_WITHIN)
    except TimeoutError:
        raise Conflict(SLOW_LOOKUP) from None
