"""App Home: every loaded release with its status card."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.ids import Event
from handlers.deps import Deps
from messages import blocks as bk
from messages.render import render


def register(app: AsyncApp) -> None:
    app.event(Event.APP_HOME_OPENED)(on_home_opened)


async def on_home_opened(event: dict[str, Any], client: AsyncWebClient, deps: Deps) -> None:
    if event.get("tab", "home") != "home":
        return
    now = deps.clock()
    blocks: list[dict[str, Any]] = [bk.header("Warroom — releases")]
    for release_id, plan in sorted(deps.service.plans.items()):
        release = await deps.service.get(release_id)
        blocks += render(plan, "status_card", release, now).blocks
        blocks.append(bk.divider())
    if len(blocks) == 1:
        blocks.append(bk.section("No release is loaded. Start the bot with `warroom run PLAN.yml`."))
    await client.views_publish(user_id=event["user"], view={"type": "home", "blocks": bk.fit(blocks)})
