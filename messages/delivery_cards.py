"""The notice about a message Slack refused for good (registered with `@builder`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.core.delivery import hint
from bot.domain import Release
from bot.plan import Plan
from messages import blocks as bk
from messages.blocks import Message
from messages.render import builder, slack_escape


def _where(ref: str) -> str:
    if ref[:1] in {"C", "G"} and ref[1:].isalnum():
        return f"<#{ref}>"
    if ref[:1] in {"U", "W"} and ref[1:].isalnum():
        return f"<@{ref}>"
    return f"`{slack_escape(ref)}`"


@builder("delivery_failed")
def delivery_failed(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    """⚠️ Could not post X to #channel: why, and what to do."""
    where = _where(str(data.get("channel", "")))
    what = slack_escape(str(data.get("key", "a message")))
    why = slack_escape(hint(str(data.get("error", "unknown"))))
    text = f"⚠️ Warroom could not post `{what}` to {where}: {why}"
    footer = "It is recorded as failed on the release's timeline; it will not be retried."
    if data.get("private"):
        footer += " You get this privately because the war room itself is the channel that refuses."
    return bk.message([bk.section(text), bk.context(footer)], text)
