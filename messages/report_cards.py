"""What the person who asked for `/release report` is told when Slack does not take the upload."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.core.delivery import hint
from bot.domain import Release
from bot.plan import Plan
from messages import blocks as bk
from messages.blocks import Message
from messages.render import builder, slack_escape

REPORT_UPLOAD_FAILED = "report_upload_failed"


@builder(REPORT_UPLOAD_FAILED)
def report_upload_failed(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    """⚠️ The report could not be uploaded to #war-room: why; retried or not, and what to do."""
    channel = str(data.get("channel", ""))
    where = f"<#{channel}>" if channel[:1] in {"C", "G"} and channel[1:].isalnum() else f"`{slack_escape(channel)}`"
    error = str(data.get("error", "unknown"))
    if data.get("retrying"):
        why = f"Slack answered `{slack_escape(error)}`"
        then = "Warroom retries it by itself (with growing pauses) and records each attempt on the timeline."
    else:
        why = slack_escape(hint(error))
        then = "It is recorded as failed and not retried: fix the cause, then ask again with `/release report`."
    text = f"⚠️ Your post-mortem report could not be uploaded to {where}: {why}"
    footer = f"{then} `warroom export {slack_escape(release.id)} --chart FILE.png` gives the same files on the server."
    return bk.message([bk.section(text), bk.context(footer)], f"{text} {then}")
