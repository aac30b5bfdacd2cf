"""App Home: the releases of the person who opens it, what waits for them first (see bot/home.py)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.ids import Event
from handlers.deps import Deps


def register(app: AsyncApp) -> None:
    app.event(Event.APP_HOME_OPENED)(on_home_opened)


async def on_home_opened(event: dict[str, Any], deps: Deps) -> None:
    """Publish the person's Home, and remember them so that it is published again when it changes."""
    if event.get("tab", "home") != "home":
        return
    if deps.home is None:
        raise RuntimeError("the App Home is not wired: build the app with a HomeBoard in its deps")
    await deps.home.opened(str(event["user"]))
