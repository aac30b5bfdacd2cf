"""What the war room sees of alerts: the lines about an alert, its note on the issue card, and the rollback
trigger on the rollback prompt. Everything Alertmanager sent (names, summaries, values, URLs) is data and
goes through `slack_escape`, in the blocks and in the fallback text alike."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.core.alerts import SOURCE_NAMES
from bot.domain import AlertLink, IssueStatus, Release
from bot.evaluation import alert_trigger, deciders
from bot.ids import ActionId, BlockId
from bot.plan import Plan
from messages import blocks as bk
from messages.blocks import Message
from messages.render import builder, date_token, mentions, slack_escape

NOT_GIVEN = "not given"


def _link(link: AlertLink) -> str:
    """The alert's name, as a link to its generator (the Prometheus graph or Grafana rule) when it has one."""
    name = slack_escape(link.name)
    url = link.generator_url
    if url.startswith(("http://", "https://")) and not any(c in url for c in "<>| "):
        return f"<{url.replace('&', '&amp;')}|{name}>"  # Slack reads &amp; in a link's address as &
    return name


def _source(link: AlertLink) -> str:
    return SOURCE_NAMES.get(link.source, "Alertmanager")


def _value(link: AlertLink) -> str:
    return slack_escape(bk.truncate(link.value, 300)) if link.value else f"_{NOT_GIVEN}_"


def alert_notes(release: Release, number: int) -> list[str]:
    """Context lines for an issue card: the alerts that opened or updated it."""
    notes = []
    tz = release.timezone
    for link in release.alerts:
        if link.issue_number != number:
            continue
        state = (
            f"resolved in {_source(link)} at {date_token(link.ends_at, tz)}"
            if link.status == "resolved"
            else f"firing since {date_token(link.starts_at, tz)}"
        )
        note = f"🔔 {_source(link)} alert {_link(link)} · {state} · value: {_value(link)}"
        if link.trigger:
            note += f" · rollback trigger: {slack_escape(link.trigger)}"
        notes.append(note)
    return notes


@builder("alert_line")
def alert_line(plan: Plan, release: Release, now: datetime, data: dict[str, Any]) -> Message:
    """A line about an alert of an issue: updated (in the card's thread), firing again or resolved (in the
    war room, the latter with *Resolve* while the issue is open)."""
    number = int(data.get("number", 0))
    link = release.alert(str(data.get("fingerprint", "")))
    issue = release.issue(number)
    if link is None or issue is None:
        return bk.message([bk.section(f"An alert about issue #{number} changed.")])
    tz = release.timezone
    what = str(data.get("what", "updated"))
    source = _source(link)
    summary = slack_escape(bk.truncate(link.summary, 1200)) if link.summary else ""
    if what == "resolved":
        ended = date_token(link.ends_at, tz)
        text = f"✅ {source} alert {_link(link)} of issue #{number} resolved in {source} at {ended}."
        if issue.status is IssueStatus.OPEN:
            text += " The issue stays open until someone resolves it: *Resolve* below, or `/issue resolve " + (
                f"{number} [note]`."
            )
        else:
            text += f" The issue was resolved by {_who(issue.resolved_by)}."
    elif what == "refired":
        since = date_token(link.starts_at, tz)
        text = f"🔥 {source} alert {_link(link)} of issue #{number} is firing again since {since}."
    else:
        text = f"🔔 {source} alert {_link(link)} of issue #{number} changed."
    lines = [text]
    if what != "resolved":
        lines.append(f"*Value:* {_value(link)}" + (f"\n*Summary:* {summary}" if summary else ""))
    blocks = [bk.section("\n".join(lines))]
    if what == "resolved" and issue.status is IssueStatus.OPEN:
        value = f"{release.id}:{number}"
        blocks.append(
            bk.actions(
                [bk.button("✅ Resolve", ActionId.ISSUE_RESOLVE, value, style="primary")],
                block_id=BlockId.ISSUE_ACTIONS,
            )
        )
    return bk.message(blocks, text)


def _who(user: str | None) -> str:
    return str(mentions([user])) if user else "someone"


def trigger_title(release: Release, number: int) -> str | None:
    """The rollback prompt's title when an alert for a rollback trigger raised it."""
    link = alert_trigger(release, number)
    return None if link is None else f"Rollback trigger firing: {link.trigger[:120]}"


def trigger_blocks(plan: Plan, release: Release, number: int) -> list[dict[str, Any]]:
    """The rollback trigger on the prompt: which, since when, the current value, and who is asked."""
    link = alert_trigger(release, number)
    if link is None:
        return []
    tz = release.timezone
    state = (
        f"resolved in {_source(link)} at {date_token(link.ends_at, tz)}"
        if link.status == "resolved"
        else f"firing since {date_token(link.starts_at, tz)}"
    )
    lines = [
        f"*Trigger:* {slack_escape(link.trigger)}",
        f"*Alert:* {_link(link)} ({_source(link)}), {state}",
        f"*Current value:* {_value(link)}",
        f"*Decides:* {mentions(deciders(plan))}",
    ]
    return [bk.section("\n".join(lines))]
