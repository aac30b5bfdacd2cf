"""The one path every change takes: load state → decide (pure) → save in one transaction → deliver.

Slash commands, buttons, modals and timers all end in `Service.run`. Idempotency (outbox keys),
locking (BEGIN IMMEDIATE / SELECT … FOR UPDATE) and the timeline live here, once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.posts import one_post_per_channel
from bot.domain import Conflict, External, NotFound, NotSaved, Outcome, Release, UsageError
from bot.plan import Plan, PlanError, parse_plan
from bot.redact import REDACTOR
from bot.rules import load_plan_into
from storage import repo
from storage.db import WriteHealth, write_failure

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Decide = Callable[[Release, Plan, datetime], Outcome]


def plan_secrets(plan: Plan) -> list[str]:
    """What in a plan must never be logged: its PagerDuty routing key."""
    pagerduty = plan.integrations.pagerduty
    return [pagerduty.routing_key] if pagerduty is not None else []


@dataclass
class RequestSlot:
    """The Slack request the current unit of work answers; the first `Service.run` under it applies it."""

    key: str
    used: bool = False


CURRENT_REQUEST: ContextVar[RequestSlot | None] = ContextVar("warroom_current_request", default=None)
"""Set by the request inbox before a listener runs (the listener's task inherits it)."""


class AlreadyHandled(Exception):
    """This request's change was committed before: by another replica, or before a restart."""


Claim = Callable[[AsyncSession], Awaitable[bool]]
"""Taken in the change's transaction, under its release's lock: False when another process has the work."""


@dataclass(frozen=True)
class Claimed:
    """A change that runs only if its claim holds (a timer: marked fired, unless another process did)."""

    release_id: str
    claim: Claim
    decide: Decide


@dataclass
class LoadedPlan:
    plan: Plan
    source: str
    file: str


@dataclass
class Service:
    """Release state changes, for every caller."""

    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    plans: dict[str, Plan] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    """The plan text each loaded plan was parsed from (to notice another replica loading a new one)."""
    _refused: dict[str, str] = field(default_factory=dict)
    after_commit: list[Callable[[str, Outcome], Awaitable[None]]] = field(default_factory=list)
    plan_loaded: list[Callable[[AsyncSession, Plan, Release, datetime], Awaitable[None]]] = field(default_factory=list)
    externals: dict[str, Callable[[str, External], Awaitable[None]]] = field(default_factory=dict)
    """Delivery of External effects by system name (e.g. "pagerduty"), after commit."""
    writes: WriteHealth = field(default_factory=WriteHealth)

    def plan(self, release_id: str) -> Plan:
        plan = self.plans.get(release_id)
        if plan is None:
            raise NotFound(f"No release {release_id!r} is loaded. Releases: {', '.join(self.plans) or 'none'}")
        return plan

    async def load(self, loaded: LoadedPlan) -> Outcome:
        """Create or update a release from its plan, keeping what already happened."""
        plan = loaded.plan
        REDACTOR.add(*plan_secrets(plan))  # before the plan's source is written (and logged at DEBUG)
        try:
            outcome = await self._load_once(loaded)
        except IntegrityError:
            # A new release has no row to lock yet: when replicas start together, the one that inserts it
            # second fails on the primary key. By now the row exists, so loading again takes its lock.
            log.info("release %s was created by another process meanwhile; loading the plan into it", plan.id)
            outcome = await self._load_once(loaded)
        self.plans[plan.id] = plan
        self.sources[plan.id] = loaded.source
        await self._after_commit(plan.id, outcome)
        return outcome

    async def follow_plans(self) -> list[str]:
        """Pick up plans another replica loaded since (its `warroom run` or reload wrote them to the database).

        Only this process's copy changes: the loading replica already saved the release and its schedule.
        Returns the ids of the releases whose plan changed.
        """
        changed: list[str] = []
        for release_id, known in list(self.sources.items()):
            async with self.sessions() as session:
                stored = await repo.get_plan_source(session=session, release_id=release_id)
            if stored is None or not stored[0] or stored[0] in {known, self._refused.get(release_id)}:
                continue
            if self.sources.get(release_id) != known:
                continue  # this process loaded a plan meanwhile (SIGHUP): that one is newer than what we read
            source, file = stored
            try:
                plan = parse_plan(source, file or "<database>")
                REDACTOR.add(*plan_secrets(plan))
            except PlanError as exc:
                self._refused[release_id] = source  # said once, not at every sweep
                log.error("the plan of %s loaded elsewhere does not parse here; keeping ours: %s", release_id, exc)
                continue
            self.plans[release_id], self.sources[release_id] = plan, source
            log.info("plan of %s updated from the database (loaded by another process)", release_id)
            changed.append(release_id)
        return changed

    async def _load_once(self, loaded: LoadedPlan) -> Outcome:
        plan = loaded.plan
        now = self.clock()
        async with self.sessions() as session, session.begin():
            before = await repo.get_release(session=session, release_id=plan.id, lock=True)
            outcome = load_plan_into(before, plan, now)
            outcome = replace(outcome, effects=one_post_per_channel(outcome.effects, plan))
            await repo.save_release(
                session=session,
                before=before,
                after=outcome.release,
                now=now,
                plan_source=loaded.source,
                plan_file=loaded.file,
            )
            await repo.append_events(session=session, release_id=plan.id, events=outcome.events)
            await repo.apply_effects(
                session=session, release_id=plan.id, effects=outcome.effects, now=now, seq=uuid.uuid4().hex[:12]
            )
            for hook in self.plan_loaded:
                await hook(session, plan, outcome.release, now)
        return outcome

    async def run(self, release_id: str, decide: Decide) -> Outcome:
        """Load the release, let the rule decide, save it all in one transaction, then deliver."""
        plan = self.plan(release_id)
        request = CURRENT_REQUEST.get()
        if request is not None and request.used:
            request = None  # one request, one change: later runs (and work it started) are on their own
        if request is not None:
            request.used = True
        try:
            async with self.sessions() as session, session.begin():
                decided = await self._change(session, release_id, plan, decide, self.clock(), request=request)
        except DBAPIError as exc:
            if (cause := write_failure(exc)) is None:
                raise
            self.writes.failed(cause)
            raise NotSaved(cause) from None
        assert decided is not None, "a change without a claim is always decided"
        outcome, changed = decided
        if changed or outcome.events or outcome.effects:
            self.writes.succeeded()
        if outcome.events or outcome.effects:
            await self._after_commit(release_id, outcome)
        return outcome

    async def run_claimed(self, units: Sequence[Claimed]) -> list[Outcome | Exception | None]:
        """Several changes in one transaction (timers falling due together), each only if its `claim` holds
        under its release's lock; per unit its outcome, None when the claim was taken elsewhere, or the error
        its rule raised (nothing of that unit is written). Delivered after the commit, like `run`.

        The units' releases are locked in the order given; callers give them sorted by release, so two
        processes running overlapping batches take the locks in the same order. A database error rolls
        back every unit (the claims with them) and is raised.
        """
        now = self.clock()
        results: list[Outcome | Exception | None] = []
        written = False
        async with self.sessions() as session, session.begin():
            for unit in units:
                refused: list[Exception] = []

                def guarded(
                    release: Release, plan: Plan, at: datetime, _u: Claimed = unit, _r: list[Exception] = refused
                ) -> Outcome:
                    try:
                        return _u.decide(release, plan, at)
                    except Exception as exc:  # this rule's error is its unit's alone: it writes nothing
                        _r.append(exc)
                        return Outcome(release)

                try:
                    plan = self.plan(unit.release_id)
                    decided = await self._change(session, unit.release_id, plan, guarded, now, claim=unit.claim)
                except NotFound as exc:
                    results.append(exc)
                    continue
                if refused:
                    results.append(refused[0])
                    continue
                if decided is None:
                    results.append(None)
                    continue
                outcome, changed = decided
                written = written or changed or bool(outcome.events or outcome.effects)
                results.append(outcome)
        if written:
            self.writes.succeeded()
        for unit, result in zip(units, results, strict=True):
            if isinstance(result, Outcome) and (result.events or result.effects):
                await self._after_commit(unit.release_id, result)
        return results

    async def _change(
        self,
        session: AsyncSession,
        release_id: str,
        plan: Plan,
        decide: Decide,
        now: datetime,
        *,
        request: RequestSlot | None = None,
        claim: Claim | None = None,
    ) -> tuple[Outcome, bool] | None:
        """Within the caller's transaction: lock and load the release, decide, write the result; the outcome
        and whether the release itself changed, or None when `claim` (taken under the lock) did not hold."""
        before = await repo.get_release(session=session, release_id=release_id, lock=True)
        if before is None:
            raise NotFound(f"Release {release_id!r} is not in the database; run `warroom run` with its plan.")
        # under the release's lock: whoever processes the same request second sees the first one's mark
        if request is not None and await repo.handled_reply(session=session, key=request.key) is not None:
            raise AlreadyHandled(request.key)
        if claim is not None and not await claim(session):
            return None
        outcome = decide(before, plan, now)
        outcome = replace(outcome, effects=one_post_per_channel(outcome.effects, plan))
        if request is not None:
            await repo.mark_handled(session=session, key=request.key, reply=outcome.reply, now=now)
        changed = outcome.release is not before and outcome.release != before
        if changed:
            await repo.save_release(session=session, before=before, after=outcome.release, now=now)
        await repo.append_events(session=session, release_id=release_id, events=outcome.events)
        await repo.apply_effects(
            session=session, release_id=release_id, effects=outcome.effects, now=now, seq=uuid.uuid4().hex[:12]
        )
        return outcome, changed

    async def get(self, release_id: str) -> Release:
        async with self.sessions() as session:
            release = await repo.get_release(session=session, release_id=release_id)
        if release is None:
            raise NotFound(f"Release {release_id!r} is not in the database.")
        return release

    async def _after_commit(self, release_id: str, outcome: Outcome) -> None:
        for effect in outcome.effects:
            if isinstance(effect, External):
                deliver = self.externals.get(effect.system)
                if deliver is None:
                    log.error("no delivery for %s effects; %s/%s dropped", effect.system, release_id, effect.action)
                    continue
                try:
                    await deliver(release_id, effect)
                except Exception:
                    log.exception("%s %s for %s failed", effect.system, effect.action, release_id)
        for hook in self.after_commit:
            try:
                await hook(release_id, outcome)
            except Exception:
                log.exception("after-commit hook failed for %s", release_id)

    def pick_release(self, *, requested: str | None, channel_id: str, channel_name: str | None) -> str:
        """SPEC §5: the named release, else the one whose war room this is, else the only one loaded."""
        if requested:
            if requested not in self.plans:
                raise NotFound(f"There is no release {requested!r}. Releases: {', '.join(self.plans) or 'none'}")
            return requested
        name = f"#{channel_name}" if channel_name else None
        rooms = [rid for rid, plan in self.plans.items() if plan.channels.get("war_room") in {channel_id, name}]
        if len(rooms) == 1:
            return rooms[0]
        candidates = rooms or list(self.plans)
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise Conflict("No release is loaded: start the bot with `warroom run PLAN.yml`.")
        raise UsageError(
            f"Several releases are running; say which with `--release ID` ({', '.join(sorted(candidates))})."
        )
