"""Reading the plan's checks from Prometheus: instant queries (`POST {url}/api/v1/query`) through the
process's pooled HTTP session, with a short timeout and the bearer token from WARROOM_PROMETHEUS_TOKEN.

What an answer means is `bot.core.checks`'s to say; this module only asks and reports why it could not.
The token is sent to Prometheus only: it is a secret the log redactor knows (bot/settings.py `secrets`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp

from bot.core.checks import SHOWN_ON, Answer, parse_answer, record_readings, shown_readings
from bot.domain import DomainError, External, Outcome
from bot.plan import Plan
from bot.service import Service
from storage.repo import OutboxItem

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 3.0
"""A check that takes longer is shown as unreadable: a card must not wait on a slow Prometheus."""
FRESH = timedelta(seconds=15)
"""Readings this recent are shown as they are: a post retried (a busy channel) does not read again each time."""
MAX_ANSWER_BYTES = 1 << 20
"""A check's answer is one sample; anything near this size is not one."""


@dataclass
class PrometheusChecks:
    """Reads a plan's checks and records the readings on the release (Service.run, one transaction)."""

    service: Service
    http: aiohttp.ClientSession | None = None
    """The process's pooled HTTP session; one per read when None."""
    token: str | None = None
    timeout: float = TIMEOUT_SECONDS
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    query_time: Callable[[], float] = time.time
    """The evaluation time sent with every query of one read (all checks see the same instant)."""

    async def query(self, session: aiohttp.ClientSession, url: str, promql: str, at: float) -> Answer:
        """One instant query; an Answer with the value, or with why there is none."""
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        endpoint = f"{url}/api/v1/query"
        try:
            async with session.post(
                endpoint,
                data={"query": promql, "time": f"{at:.3f}"},
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                allow_redirects=False,
            ) as response:
                status = response.status
                raw = b""
                # read to the end (an answer may come in several pieces), but no more than the limit allows
                async for chunk in response.content.iter_chunked(64 * 1024):
                    raw += chunk
                    if len(raw) > MAX_ANSWER_BYTES:
                        break
        except TimeoutError:
            return Answer(error=f"Prometheus did not answer within {self.timeout:g}s")
        except aiohttp.ClientConnectorError as exc:
            reason = exc.os_error.strerror if exc.os_error and exc.os_error.strerror else str(exc.os_error or exc)
            return Answer(error=f"cannot connect to Prometheus at {url}: {reason.lower()}")
        except aiohttp.ClientError as exc:
            return Answer(error=f"reading from Prometheus failed: {type(exc).__name__}: {exc}"[:300])
        if len(raw) > MAX_ANSWER_BYTES:
            return Answer(error="Prometheus answered with more than 1 MB: a check needs one number")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        answer = parse_answer(status, body)
        if status in {401, 403}:
            hint = "set WARROOM_PROMETHEUS_TOKEN" if not self.token else "check WARROOM_PROMETHEUS_TOKEN"
            return Answer(error=f"{answer.error} ({hint})")
        return answer

    async def read(self, plan: Plan) -> dict[str, Answer]:
        """Every check of `plan`, side by side, at one evaluation time."""
        config = plan.integrations.prometheus
        if config is None or not plan.checks:
            return {}
        at = self.query_time()
        async with AsyncExitStack() as stack:
            session = self.http
            if session is None:
                session = await stack.enter_async_context(aiohttp.ClientSession())
            answers = await asyncio.gather(*(self.query(session, config.url, c.query, at) for c in plan.checks))
        for spec, answer in zip(plan.checks, answers, strict=True):
            if answer.value is None:
                log.info("check %r of %s could not be read: %s", spec.name, plan.id, answer.error)
        return {spec.name: answer for spec, answer in zip(plan.checks, answers, strict=True)}

    async def refresh(
        self, release_id: str, *, shown_on: str | None = None, by: str | None = None, rendering: str | None = None
    ) -> Outcome | None:
        """Read the release's checks now and record them; None when its plan has no checks."""
        plan = self.service.plans.get(release_id)
        if plan is None or not plan.checks:
            return None
        answers = await self.read(plan)
        return await self.service.run(
            release_id,
            lambda r, p, now: record_readings(r, p, answers, now, shown_on=shown_on, by=by, rendering=rendering),
        )

    async def submit(self, release_id: str, effect: External) -> None:
        """The checks timer's External("prometheus", "read"): read in the background, return at once."""
        task = asyncio.get_running_loop().create_task(self._refresh_quietly(release_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _refresh_quietly(self, release_id: str) -> None:
        try:
            await self.refresh(release_id)
        except DomainError as exc:  # the database could not save, the release went away: the next tick retries
            log.warning("checks of %s were read but not recorded: %s", release_id, exc)

    async def before_post(self, item: OutboxItem) -> bool:
        """Before the vote, a status update or the decision prompt is posted: read the checks it shows.

        True when the plan has checks: the dispatcher then renders from the release as it is now.
        """
        if item.kind == "update" or (item.template not in SHOWN_ON and item.kind != "status"):
            return False
        plan = self.service.plans.get(item.release_id)
        if plan is None or not plan.checks:
            return False
        release = await self.service.get(item.release_id)
        since = self.service.clock() - FRESH
        fresh = all((c := release.check(s.name)) is not None and c.read_at >= since for s in plan.checks)
        try:
            if fresh:  # read moments ago: a post handed back for a busy channel is not held up by reading again
                await self.service.run(item.release_id, lambda r, p, now: shown_readings(r, p, now, item.template))
            else:
                await self.refresh(item.release_id, shown_on=item.template, rendering=item.key)
        except DomainError as exc:
            log.warning("checks for %s/%s not recorded: %s", item.release_id, item.key, exc)
        return True  # render from the release as it is now, with the readings of the moment
