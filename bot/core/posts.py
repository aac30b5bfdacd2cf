"""One channel, one copy: a plan may name the same Slack channel for several purposes."""

from __future__ import annotations

from bot.domain import Effect, Post
from bot.plan import Plan


def one_post_per_channel(effects: tuple[Effect, ...], plan: Plan) -> tuple[Effect, ...]:
    """Drop a post that repeats an earlier one of the same outcome: the same message (template) to what is
    the same channel, e.g. a decision meant for the war room and for announcements when both are one
    channel. Scheduled announcements and status updates are the plan's own and are kept as written."""
    seen: set[tuple[str, str, str | None]] = set()
    kept: list[Effect] = []
    for effect in effects:
        if isinstance(effect, Post) and effect.kind == "post":
            where = (plan.channel(effect.channel), effect.template, effect.thread_of)
            if where in seen:
                continue
            seen.add(where)
        kept.append(effect)
    return tuple(kept)
