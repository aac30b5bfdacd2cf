"""What a message Slack refuses for good leads to: who is told, and what they can do about it."""

from __future__ import annotations

from bot.domain import Post
from bot.permissions import RELEASE_MANAGER
from bot.plan import Plan

CHANNEL_ERRORS = frozenset({"is_archived", "channel_not_found", "not_in_channel"})
"""The channel, not the message, is the problem: every message to it fails the same way until fixed."""

PERMANENT_ERRORS = CHANNEL_ERRORS | {
    "invalid_blocks",
    "invalid_blocks_format",
    "invalid_arguments",
    "invalid_metadata_format",
    "invalid_metadata_schema",
    "metadata_too_large",
    "msg_too_long",
    "msg_blocks_too_long",
    "no_text",
    "too_many_attachments",
    "restricted_action",
    "restricted_action_read_only_channel",
    "restricted_action_thread_only_channel",
    "cannot_reply_to_message",
    "user_not_found",
    "cannot_dm_bot",
}
"""Slack errors a retry cannot cure: the message is recorded as failed at once."""

NOTICE_PREFIX = "notice:undeliverable:"

HINTS = {
    "is_archived": "the channel is archived. Unarchive it, or point the plan at another channel and reload it "
    "(`kill -HUP`).",
    "channel_not_found": "Slack knows no such channel, or it is private and @warroom is not in it. Check the "
    "plan's channel, or `/invite @warroom` there.",
    "not_in_channel": "@warroom is not in the channel and cannot join it (private channels need an invitation). "
    "`/invite @warroom` there.",
}


def hint(error: str) -> str:
    """What went wrong and how to put it right, for a person reading the notice."""
    if error in HINTS:
        return HINTS[error]
    return f"Slack refused the message itself (`{error}`); the plan's template or text may need shortening."


def failure_notices(plan: Plan, *, key: str, channel: str, error: str) -> tuple[Post, ...]:
    """The notice about a message Slack refused for good: in the war room, or to the release manager
    privately when the war room is the channel that refuses. None for a notice (no notice loops).

    One notice per channel and reason: later messages that fail the same way are on the timeline only.
    """
    if key.startswith(NOTICE_PREFIX):
        return ()
    war_room = plan.channel("war_room")
    data: dict[str, object] = {"key": key, "channel": plan.channel(channel), "error": error}
    notice_key = f"{NOTICE_PREFIX}{channel}:{error}"
    if plan.channel(channel) != war_room or error not in CHANNEL_ERRORS:
        return (Post("war_room", "delivery_failed", data, key=notice_key),)
    managers = plan.people.get(RELEASE_MANAGER, ())
    return tuple(
        Post(member, "delivery_failed", {**data, "private": True}, key=f"{notice_key}:{member}") for member in managers
    )
