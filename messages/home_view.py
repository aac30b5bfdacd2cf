"""The App Home view of one person: what waits for them (with its buttons), then their releases' status cards."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.checklists import toggle_value
from bot.core.home import PAGE, SIGNOFF, TASKS, VOTE, Waiting
from bot.core.text import slack_escape
from bot.domain import Release
from bot.ids import ActionId
from bot.plan import Plan
from bot.votes import role_title
from messages import blocks as bk
from messages.render import date_token, render, time_token

HOME_BLOCKS = 100
"""Slack's limit for a Home tab (messages have 50)."""
WAITING_BLOCKS = 60
"""At most this many blocks for what waits for the person: the rest of the Home shows their releases."""
WHERE_ALL = "`/page list`, `/gonogo` and `/phase tasks ID` list them all"
TASKS_SHOWN = 10
"""Open tasks of one phase listed with a button each; the rest are counted, with the command listing them."""


@dataclass(frozen=True)
class Entry:
    """One release the person is part of, and what waits for them in it."""

    plan: Plan
    release: Release
    waiting: tuple[Waiting, ...]


def _name(release: Release) -> str:
    return slack_escape(f"{release.name} {release.version}")


def _item(entry: Entry, item: Waiting) -> list[dict[str, Any]]:
    """The blocks of one waiting item: what it is and the buttons that answer it."""
    release, name = entry.release, _name(entry.release)
    if item.kind == PAGE:
        text = f"🚨 *{name}* — {slack_escape(item.title)} is waiting for your acknowledgement"
        if item.detail:
            text += f": _{slack_escape(item.detail)}_"
        button = bk.button("✋ Acknowledge", ActionId.PAGE_ACK, f"{release.id}:{item.subject}", style="primary")
        return [bk.section(text, accessory=button)]
    if item.kind == VOTE:
        due = f" Deadline {date_token(item.due, release.timezone)}." if item.due else ""
        text = f"🗳️ *{name}* — the go/no-go vote is open and you have not voted.{due}"
        return [
            bk.section(text),
            bk.actions(
                [
                    bk.button("✅ Go", ActionId.VOTE_GO, item.subject, style="primary"),
                    bk.button("⛔ No-Go", ActionId.VOTE_NO_GO, item.subject, style="danger"),
                ]
            ),
        ]
    if item.kind == SIGNOFF:
        value = f"{release.id}:{item.subject}"
        text = f"✍️ *{name}* — your sign-off as {slack_escape(role_title(item.subject))}: _{slack_escape(item.detail)}_"
        return [
            bk.section(text),
            bk.actions(
                [
                    bk.button("✍️ Sign", ActionId.SIGNOFF_SIGN, value, style="primary"),
                    bk.button("Refuse", ActionId.SIGNOFF_REFUSE, value, style="danger"),
                ]
            ),
        ]
    assert item.kind == TASKS
    count = len(item.tasks)
    text = f"☑️ *{name}* — *{slack_escape(item.title)}* is running: {count} open task{'s' * (count != 1)} of yours"
    blocks = [bk.section(text)]
    for task in item.tasks[:TASKS_SHOWN]:
        # ticks, never toggles: a second click on a Home not yet refreshed must not untick it
        button = bk.button("Done", ActionId.TASK_TOGGLE, toggle_value(release, item.subject, task.number, done=True))
        blocks.append(bk.section(f"{task.number}. {slack_escape(task.text)}", accessory=button))
    if count > TASKS_SHOWN:
        blocks.append(
            bk.context(f"{bk.ELLIPSIS} and {count - TASKS_SHOWN} more open tasks — `/phase tasks {item.subject}`")
        )
    return blocks


def _waiting_blocks(entries: list[Entry]) -> list[dict[str, Any]]:
    items = [(entry, item) for entry in entries for item in entry.waiting]
    if not items:
        return [bk.section("*Nothing is waiting for you* in your releases right now.")]
    blocks = [bk.section(f"*Waiting for you* ({len(items)})")]
    for n, (entry, item) in enumerate(items):
        more = _item(entry, item)
        if len(blocks) + len(more) + 1 > WAITING_BLOCKS:  # keep room for the line naming the rest
            left = len(items) - n
            blocks.append(bk.context(f"{bk.ELLIPSIS} and {left} more waiting for you, not shown here — {WHERE_ALL}"))
            break
        blocks += more
    return blocks


def outsider_text(loaded: int) -> str:
    """What someone outside every plan sees instead of other teams' releases."""
    return (
        f"You are not among the people of the {loaded} release{'s' * (loaded != 1)} Warroom runs, so nothing here "
        "is yours. A release manager adds you under `people:` in the plan, by your member ID or through a user "
        "group (*profile* → ⋮ → *Copy member ID*). Anyone can still see a release with `/release status "
        "--release ID`."
    )


def home_view(
    entries: list[Entry], now: datetime, *, loaded: int, notice: tuple[str, datetime] | None = None
) -> dict[str, Any]:
    """The Home view: a notice (the answer to a click made here, and when), what waits for the person, their
    releases."""
    blocks: list[dict[str, Any]] = [bk.header("Warroom — your releases")]
    if notice is not None:
        blocks.append(bk.context(f"🔔 {time_token(notice[1])} {slack_escape(notice[0])}"))
    if not loaded:
        blocks.append(bk.section("No release is loaded. Start the bot with `warroom run PLAN.yml`."))
        return {"type": "home", "blocks": blocks}
    if not entries:
        blocks.append(bk.section(outsider_text(loaded)))
        return {"type": "home", "blocks": blocks}
    blocks += _waiting_blocks(entries)
    left_out: list[str] = []
    for entry in entries:
        card = render(entry.plan, "status_card", entry.release, now).blocks
        if left_out or len(blocks) + len(card) + 2 > HOME_BLOCKS:  # keep room for the line naming the rest
            left_out.append(entry.release.id)
            continue
        blocks += [bk.divider(), *card]
    if left_out:
        blocks.append(
            bk.context(
                f"{bk.ELLIPSIS} and {len(left_out)} more releases not shown — `/release status --release ID`: "
                + ", ".join(f"`{r}`" for r in left_out)
            )
        )
    return {"type": "home", "blocks": blocks}
