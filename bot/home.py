"""The App Home of each person: built from the state when they open it, published again when it changes.

Who opened the Home is kept in the database (storage/home_views.py), with a fingerprint of what their
last published Home showed waiting for them. After every committed change of a release, the people of that
release who opened their Home get it again when what waits for them changed (a vote opened or closed, a page
sent or acknowledged, a sign-off asked for or given, a phase of theirs started, a task ticked), or when the
change asked for it with a `RefreshHome` effect. That work runs in the background, after the change's
commit and never before a request's ack, one `views.publish` at a time, paced (`Pace.home_every`: Slack's
Tier 4 allows about 100 a minute per workspace; a 429 is waited out by the client's retry handler). A
failed publish is logged and skipped: the person's next opening of the Home builds it afresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.home import Person, digest, waiting_for
from bot.domain import Actor, Outcome, RefreshHome, Release
from bot.plan import Plan
from bot.service import Service
from bot.slack import Directory, api_error
from messages.home_view import Entry, home_view
from storage.home_views import home_opened, home_published, home_viewers

log = logging.getLogger(__name__)

Spawn = Callable[[Coroutine[Any, Any, None]], None]


@dataclass
class HomeBoard:
    """Publishes each person's App Home: at once when they open it or click in it, in the background after a
    change that concerns them."""

    service: Service
    directory: Directory
    client: AsyncWebClient
    spawn: Spawn
    """Runs the background refresh as a task the runtime waits for at shutdown."""
    every: float = 0.6
    """Seconds between two background publishes (about 100 a minute)."""
    _releases: set[str] = field(default_factory=set)
    _everyone: set[str] = field(default_factory=set)
    _forced: dict[str, None] = field(default_factory=dict)
    _notices: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    _running: bool = False
    _stopped: bool = False
    _last: float = 0.0

    async def person(self, plan: Plan, user: str) -> Person:
        """`user`'s roles in `plan` and the plan's user groups they are in (a page may target a group)."""
        roles = set(plan.role_of_person.get(user, frozenset()))
        groups: set[str] = set()
        for member, member_roles in plan.role_of_person.items():
            if member.startswith("S"):
                found = await self.directory.group_members(member)
                if found and user in found:
                    groups.add(member)
                    roles |= member_roles
        return Person(Actor(user, frozenset(roles)), frozenset(groups))

    async def view_for(self, user: str, loaded: dict[str, Release] | None = None) -> tuple[dict[str, Any], str]:
        """The Home of `user` as it stands now, and the fingerprint of what waits for them in it (`loaded`:
        releases read already in this pass, shared between the people it publishes for)."""
        loaded = {} if loaded is None else loaded
        now = self.service.clock()
        entries: list[Entry] = []
        for release_id, plan in sorted(self.service.plans.items()):
            person = await self.person(plan, user)
            if not person.actor.in_plan:
                continue
            if release_id not in loaded:
                loaded[release_id] = await self.service.get(release_id)
            release = loaded[release_id]
            entries.append(Entry(plan, release, tuple(waiting_for(plan, release, person))))
        waiting = [item for entry in entries for item in entry.waiting]
        view = home_view(entries, now, loaded=len(self.service.plans), notice=self._notices.get(user))
        return view, digest(waiting)

    async def opened(self, user: str) -> None:
        """`user` opened the Home: remember them, and publish it now (they are looking at it)."""
        self._notices.pop(user, None)  # an answer to an earlier click, seen by now
        async with self.service.sessions() as session, session.begin():
            await home_opened(session=session, user_id=user, now=self.service.clock())
        await self._publish(user)

    def notice(self, user: str, text: str) -> None:
        """Answer a click made in `user`'s Home there: publish it again, first, with `text` on top."""
        self._notices[user] = (text, self.service.clock())
        self._forced = {user: None, **self._forced}
        self._wake()

    async def changed(self, release_id: str, outcome: Outcome) -> None:
        """After a committed change (Service.after_commit): queue the refresh and return at once."""
        for effect in outcome.effects:
            if isinstance(effect, RefreshHome):
                if effect.users:
                    self._forced.update(dict.fromkeys(effect.users))
                else:
                    self._everyone.add(release_id)
        self._releases.add(release_id)
        self._wake()

    def stop(self) -> None:
        """Publish nothing more (shutdown): the next opening of a Home builds it afresh."""
        self._stopped = True

    def _wake(self) -> None:
        if self._running or self._stopped:
            return
        self._running = True
        self.spawn(self._work())

    async def _work(self) -> None:
        try:
            while (self._releases or self._everyone or self._forced) and not self._stopped:
                try:
                    await self._pass()
                except Exception:  # the database, say: what was queued is dropped, a later change tries again
                    log.exception("refreshing App Homes failed")
        finally:
            self._running = False

    async def _pass(self) -> None:
        """Publish the Homes the changes queued so far call for; changes arriving meanwhile make another pass."""
        releases, self._releases = self._releases, set()
        everyone, self._everyone = self._everyone, set()
        forced, self._forced = self._forced, {}
        async with self.service.sessions() as session:
            viewers = await home_viewers(session=session)
        loaded: dict[str, Release] = {}
        for user in [*forced, *(u for u in viewers if u not in forced)]:
            if self._stopped or (user not in viewers and user not in self._notices):
                continue  # only people who opened their Home (or just clicked in it) get it published
            try:
                await self._refresh(user, viewers.get(user, ""), releases, everyone, loaded, force=user in forced)
            except (SlackApiError, SlackClientError, OSError, TimeoutError) as exc:
                error = api_error(exc) if isinstance(exc, SlackApiError) else f"{type(exc).__name__}: {exc}"
                log.warning("could not publish the App Home of %s: %s", user, error)
            except Exception:  # one person's Home must not stop the others'
                log.exception("building the App Home of %s failed", user)

    async def _refresh(
        self,
        user: str,
        shown: str,
        releases: set[str],
        everyone: set[str],
        loaded: dict[str, Release],
        *,
        force: bool,
    ) -> None:
        concerned = [r for r in releases if r in self.service.plans]
        if not force:
            mine = [r for r in concerned if (await self.person(self.service.plans[r], user)).actor.in_plan]
            if not mine:
                return
            force = any(r in everyone for r in mine)
        view, fingerprint = await self.view_for(user, loaded)
        if not force and fingerprint == shown:
            return  # nothing waiting for them changed
        await self._pace()
        await self._send(user, view, fingerprint)

    async def _pace(self) -> None:
        wait = self._last + self.every - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._last = time.monotonic()

    async def _publish(self, user: str) -> None:
        view, fingerprint = await self.view_for(user)
        self._last = time.monotonic()
        await self._send(user, view, fingerprint)

    async def _send(self, user: str, view: dict[str, Any], fingerprint: str) -> None:
        await self.client.views_publish(user_id=user, view=view)
        async with self.service.sessions() as session, session.begin():
            await home_published(session=session, user_id=user, digest=fingerprint, now=self.service.clock())
