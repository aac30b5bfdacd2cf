"""`/release schedule`: what Warroom will post and do next, privately."""

from __future__ import annotations

from datetime import datetime

from bot.domain import Release
from bot.plan import Plan
from messages import blocks as bk
from messages.blocks import Message
from messages.render import date_token, slack_escape
from schedules.upcoming import Upcoming

SHOWN = 25


def schedule_card(plan: Plan, release: Release, entries: list[Upcoming], now: datetime) -> Message:
    title = f"Coming up: {slack_escape(f'{release.name} {release.version}')}"
    if not entries:
        body = "Nothing is scheduled: every message went out and no timer is waiting."
        return bk.message([bk.header(title), bk.section(body)], f"{title}: nothing scheduled")
    lines = []
    for entry in entries[:SHOWN]:
        where = f" → {_channel(plan, entry.channel)}" if entry.channel else ""
        overdue = " _(due, going out now)_" if entry.at <= now else ""
        lines.append(f"• {date_token(entry.at, release.timezone)} · {slack_escape(entry.what)}{where}{overdue}")
    if len(entries) > SHOWN:
        lines.append(f"… and {len(entries) - SHOWN} more.")
    blocks = [
        bk.header(title),
        *bk.sections("\n".join(lines)),
        bk.context(f"Times in your zone · plan zone {slack_escape(release.timezone)}"),
    ]
    return bk.message(blocks, f"{title}: {len(entries)} item(s), next at {entries[0].at:%Y-%m-%d %H:%M} UTC")


def _channel(plan: Plan, key: str) -> str:
    ref = plan.channel(key)
    if ref[:1] in {"C", "G"}:
        return f"<#{ref}>"
    if ref[:1] in {"U", "W"}:
        return f"<@{ref}>"
    return slack_escape(ref)
