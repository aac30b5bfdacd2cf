"""App Home: every loaded release with its status card."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.ids import Event
from handlers.deps import Deps
from messages import blocks as bk
from messages.render import render

HOME_BLOCKS = 100
"""Slack's limit for a Home tab (messages have 50)."""


def register(app: AsyncApp) -> None:
    app.event(Event.APP_HOME_OPENED)(on_home_opened)


async def on_home_opened(event: dict[str, Any], client: AsyncWebClient, deps: Deps) -> None:
    if event.get("tab", "home") != "home":
        return
    now = deps.clock()
    blocks: list[dict[str, Any]] = [bk.header("Warroom — releases")]
    left_out: list[str] = []
    for release_id, plan in sorted(deps.service.plans.items()):
        card = render(plan, "status_card", (await deps.service.get(release_id)), now).blocks
        if left_out or len(blocks) + len(card) + 2 > HOME_BLOCKS:  # keep room for the line naming the rest
            left_out.append(release_id)
            continue
        blocks += [*card, bk.divider()]
    if left_out:
        blocks.append(
            bk.context(
                f"{bk.ELLIPSIS} and {len(left_out)} more releases not shown — `/release status --release ID`: "
                + ", ".join(f"`{r}`" for r in left_out)
            )
        )
    if len(blocks) == 1:
        blocks.append(bk.section("No release is loaded. Start the bot with `warroom run PLAN.yml`."))
    await client.views_publish(user_id=event["user"], view={"type": "home", "blocks": blocks})
