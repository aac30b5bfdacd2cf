"""One channel, one copy: a plan may name the same Slack channel for several purposes."""

from __future__ import annotations

import json

from bot.domain import Effect, Post
from bot.plan import Plan


def one_post_per_channel(effects: tuple[Effect, ...], plan: Plan) -> tuple[Effect, ...]:
    """Drop a post that repeats an earlier one of the same outcome: the same message (template and data) to what is
    the same channel, e.g. a decision meant for the war room and for announcements when both are one
    channel. Scheduled announcements and status updates are the plan's own and are kept as written."""
    seen: set[tuple[str, str, str | None, str]] = set()
    kept: list[Effect] = []
    for effect in effects:
        if isinstance(effect, Post) and effect.kind == "post":
            # another card or text is another post; "copy" only says which purpose a copy serves
            content = {k: v for k, v in effect.data.items() if k != "copy"}
            same = json.dumps(content, sort_keys=True, default=str)
            where = (plan.channel(effect.channel), effect.template, effect.thread_of, same)
            if where in seen:
                continue
            seen.add(where)
        kept.append(effect)
    return tuple(kept)
