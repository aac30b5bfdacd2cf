"""What handlers receive as `deps` (put into Bolt's context by one middleware)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.domain import Actor
from bot.home import HomeBoard
from bot.integrations.prometheus import PrometheusChecks
from bot.plan import Plan
from bot.service import Service
from bot.slack import Directory


@dataclass
class Deps:
    service: Service
    directory: Directory
    clock: Callable[[], datetime]
    checks: PrometheusChecks | None = None
    """Reads the plan's checks from Prometheus (`/release checks`)."""
    home: HomeBoard | None = None
    """Publishes people's App Home (None where nothing publishes it, e.g. a test of one listener)."""

    def notice(self, user: str, text: str) -> None:
        """Answer a click made in the App Home there (see `handlers.errors.answer`)."""
        if self.home is not None:
            self.home.notice(user, text)

    def release_for(self, body: dict[str, Any], requested: str | None = None) -> str:
        """The release a command or action is about (SPEC §5)."""
        channel = body.get("channel_id") or (body.get("channel") or {}).get("id") or ""
        name = body.get("channel_name") or (body.get("channel") or {}).get("name")
        return self.service.pick_release(requested=requested, channel_id=channel, channel_name=name)

    async def actor(self, plan: Plan, user_id: str) -> Actor:
        return await self.directory.actor(plan, user_id)
