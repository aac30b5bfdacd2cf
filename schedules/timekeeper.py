"""APScheduler as a timer only: its jobs are rebuilt from the database, which says what is due."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from schedules.dispatcher import Dispatcher
from storage import repo

log = logging.getLogger(__name__)

SWEEP_SECONDS = 15


class Timekeeper:
    """Wakes the dispatcher when a message or timer is due, and every few seconds for retries."""

    def __init__(self, dispatcher: Dispatcher, clock: Callable[[], datetime]) -> None:
        self.dispatcher = dispatcher
        self.clock = clock
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self._dirty = False
        self._worker: asyncio.Task[None] | None = None
        self._fired = False
        self._passes: asyncio.Task[None] | None = None
        self._sweeping: asyncio.Task[None] | None = None

    async def start(self, *, deliver: bool = True) -> None:
        """Rebuild the jobs from the database and (`deliver`) deliver whatever fell due while the bot was down."""
        self.scheduler.start()
        self.scheduler.add_job(
            self._sweep_fired,
            "interval",
            seconds=SWEEP_SECONDS,
            id="sweep",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
        )
        await self.rebuild()
        if deliver:
            await self.deliver()

    async def catch_up(self) -> None:
        """Deliver whatever is due now (the first pass after `start(deliver=False)`)."""
        await self.deliver()

    async def sweep(self) -> None:
        """Every few seconds: follow plans other replicas loaded, retry what failed, deliver what is due."""
        if await self.dispatcher.service.follow_plans():
            await self.rebuild()
        await self.deliver()

    async def deliver(self) -> None:
        """Deliver what is due; wake again when a message held back for its channel may go."""
        await self.dispatcher.run_due()
        at = self.dispatcher.next_wake()
        if at is not None and self.scheduler.running:
            # one job per time: a later hand-back must not push back the wake of an earlier one
            self.scheduler.add_job(
                self._timer_fired,
                "date",
                run_date=at,
                id=f"held:{at.isoformat()}",
                replace_existing=True,
                misfire_grace_time=None,
            )

    # Jobs only hand their work to a task and return: a job still running when it fires again (a pass waiting
    # on a slow Slack) would be skipped by APScheduler with a warning that reads like a lost message.

    async def _sweep_fired(self) -> None:
        """The sweep's tick: start a sweep unless one is still running (then this tick is folded into it)."""
        if self._sweeping is None or self._sweeping.done():
            self._sweeping = asyncio.get_running_loop().create_task(self.sweep())

    async def _timer_fired(self) -> None:
        """A message or timer is due: deliver, folded into the pass already running if there is one."""
        self._fired = True
        if self._passes is None or self._passes.done():
            self._passes = asyncio.get_running_loop().create_task(self._run_fired())

    async def _run_fired(self) -> None:
        while self._fired:
            self._fired = False
            await self.deliver()

    async def finish(self) -> None:
        """Wait for the work the jobs handed over (after `stop`; the dispatcher is draining by then)."""
        tasks = [t for t in (self._sweeping, self._passes) if t is not None]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.error("a scheduled pass failed", exc_info=result)

    async def rebuild(self) -> None:
        """One date job per time a pending message or timer falls due, its id naming the time.

        A job wakes a pass that delivers whatever is due, so messages due at one time share it: 1,000 posts
        due in the same second are one job, not 1,000, and a rebuild only adds the times it has no job for
        (APScheduler keeps its jobs in a sorted list, so adding thousands at every change took seconds).
        """
        async with self.dispatcher.service.sessions() as session:
            pending = await repo.pending_schedule(session=session)
        wanted = set()
        for at in sorted({at for _, at in pending}):
            job_id = f"due:{at.isoformat()}"
            wanted.add(job_id)
            if self.scheduler.get_job(job_id) is not None:
                continue
            # a time already past runs at once (misfire_grace_time=None): never drop a due job
            self.scheduler.add_job(
                self._timer_fired,
                "date",
                run_date=at,
                id=job_id,
                replace_existing=True,
                misfire_grace_time=None,
                coalesce=True,
            )
        for job in self.scheduler.get_jobs():
            if job.id != "sweep" and not job.id.startswith("held:") and job.id not in wanted:
                job.remove()

    def touch(self) -> asyncio.Task[None]:
        """After a committed change: a pass that delivers what is due now and re-times the rest; returns it.

        Changes that arrive while a pass is running are folded into one more pass, so a burst of commands
        costs a few passes rather than one each. Nothing of the change is kept meanwhile (a burst's changes
        would each hold a copy of their release), and a pass that fails is logged as it ends: nothing else
        may ever wait for it.
        """
        self._dirty = True
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._catch_up())
            self._worker.add_done_callback(_log_failure)
        return self._worker

    async def _catch_up(self) -> None:
        while self._dirty:
            self._dirty = False
            await self.deliver()
            await self.rebuild()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("a delivery pass after a change failed; the next change or sweep tries again", exc_info=exc)
