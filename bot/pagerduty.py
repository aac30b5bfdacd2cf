"""PagerDuty Events API v2 for pages: `trigger` on a page, `acknowledge` on its ack, `resolve` with its issue.

Delivery runs in the background after the commit, so PagerDuty can never delay or block the Slack page. A
failure is logged and shown in the war room (a warning through the outbox) and put on the timeline.
The routing key is a secret: it is sent to PagerDuty and never logged or posted.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.domain import Event, External
from bot.service import Service
from storage import repo

log = logging.getLogger(__name__)

ACTIONS = {"trigger", "acknowledge", "resolve"}


def event_body(routing_key: str, action: str, data: dict[str, Any]) -> dict[str, Any]:
    """The Events API v2 request body for an External("pagerduty", action, data) effect."""
    if action not in ACTIONS:
        raise ValueError(f"unknown PagerDuty event action {action!r}")
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": data["dedup_key"],
    }
    if action == "trigger":
        payload = {
            "summary": str(data.get("summary") or data["dedup_key"])[:1024],
            "source": str(data.get("source") or "warroom"),
            "severity": data.get("severity") or "error",
            "custom_details": data.get("custom_details") or {},
        }
        if data.get("component"):
            payload["component"] = data["component"]
        body.update(payload=payload, client="Warroom")
    return body


@dataclass
class PagerDuty:
    """The `pagerduty` entry of Service.externals."""

    service: Service
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    wake: Callable[[], Awaitable[Any]] | None = None
    """Called after a failure warning is queued, so it goes out now (the dispatcher's run_due)."""
    timeout: float = 10.0
    retries: int = 2
    backoff: float = 1.0
    http: aiohttp.ClientSession | None = None
    """The process's pooled HTTP session (kept-alive connections); one per call when None."""

    async def submit(self, release_id: str, effect: External) -> None:
        """Start delivery in the background and return at once."""
        task = asyncio.get_running_loop().create_task(self._deliver_quietly(release_id, effect))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver_quietly(self, release_id: str, effect: External) -> None:
        await self.deliver(release_id, effect)

    async def deliver(self, release_id: str, effect: External) -> bool:
        """Send one event; on failure warn the war room. True when PagerDuty accepted it."""
        plan = self.service.plans.get(release_id)
        config = plan.integrations.pagerduty if plan else None
        if config is None:
            log.info("pagerduty %s for %s skipped: the plan has no routing key", effect.action, release_id)
            return False
        try:
            body = event_body(config.routing_key, effect.action, effect.data)
        except (KeyError, ValueError) as exc:
            error: str | None = f"bad event: {exc}"
        else:
            error = await self._post(config.events_url, body)
        if error is None:
            log.info("pagerduty %s sent for %s", effect.action, effect.data.get("dedup_key"))
            return True
        log.warning("pagerduty %s for %s failed: %s", effect.action, effect.data.get("dedup_key"), error)
        await self._report(release_id, effect, error)
        return False

    async def _post(self, url: str, body: dict[str, Any]) -> str | None:
        """None on success, else why it failed; 429, 5xx and connection errors are retried with backoff."""
        error = "not sent"
        for attempt in range(self.retries + 1):
            try:
                timeout = aiohttp.ClientTimeout(total=self.timeout)
                async with AsyncExitStack() as stack:
                    session = self.http
                    if session is None:
                        session = await stack.enter_async_context(aiohttp.ClientSession())
                    response = await stack.enter_async_context(session.post(url, json=body, timeout=timeout))
                    if 200 <= response.status < 300:
                        return None
                    error = f"HTTP {response.status}: {(await response.text())[:300]}"
                    if response.status != 429 and response.status < 500:
                        return error
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
            if attempt < self.retries:
                await asyncio.sleep(self.backoff * 2**attempt)
        return error

    async def _report(self, release_id: str, effect: External, error: str) -> None:
        now = self.service.clock()
        page = effect.data.get("page")
        data = {"action": effect.action, "page": page, "error": error}
        async with self.service.sessions() as session, session.begin():
            await repo.enqueue(
                session=session,
                release_id=release_id,
                key=f"pagerduty:{effect.data.get('dedup_key')}:{effect.action}:failed:{uuid.uuid4().hex[:8]}",
                channel="war_room",
                template="pagerduty_failed",
                data=data,
                due_at=now,
                now=now,
            )
            await repo.append_events(
                session=session,
                release_id=release_id,
                events=[Event("pagerduty.failed", now, None, f"page:{page}", data)],
            )
        if self.wake is not None:
            await self.wake()
