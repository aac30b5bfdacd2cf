"""The `warroom` command: run, check, preview, export."""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

# Each command imports what it needs when it runs: `check` and `preview` need no database, Slack or HTTP
# server, and `run` nothing of `export` (tests/test_lazy_imports.py holds each command to its own share).
if TYPE_CHECKING:
    from bot.plan import Plan, PlanError
    from bot.service import Service
    from bot.settings import Settings

log = logging.getLogger("warroom")


def _load_all(paths: Sequence[str]) -> list[tuple[Plan, str, str]]:
    from bot.plan import PlanError
    from bot.validate import load_checked

    loaded: list[tuple[Plan, str, str]] = []
    problems: list[str] = []
    for path in paths:
        try:
            plan, source = load_checked(path)
            loaded.append((plan, source, str(Path(path).resolve())))
        except PlanError as exc:
            problems += [str(p) for p in exc.problems]
    if problems:
        raise PlanError([]) from _Problems(problems)
    return loaded


class _Problems(Exception):
    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def _problem_lines(exc: PlanError) -> list[str]:
    """Every `file:line: message` of a failed `_load_all`."""
    cause = exc.__cause__
    return cause.lines if isinstance(cause, _Problems) else [str(exc)]


def cmd_check(args: argparse.Namespace) -> int:
    return check(args.plans)


def check(paths: Sequence[str], now: datetime | None = None) -> int:
    """`warroom check`: 0 when every plan is valid (warnings included), else 1; `now` is the clock's."""
    from bot.core.window import schedule_warnings
    from bot.plan import PlanError, line_for, source_lines, utcnow
    from bot.validate import load_checked

    status = 0
    for path in paths:
        try:
            plan, source = load_checked(path)
        except PlanError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            status = 1
            continue
        lines = source_lines(source, path)
        for where, warning in schedule_warnings(plan, now or utcnow()):
            print(f"{path}:{line_for(lines, where)}: warning: {warning}", file=sys.stderr)
        print(
            f"{path}: ok — {plan.release.name} {plan.release.version}, {len(plan.phases)} phases, "
            f"{len(plan.announcements)} announcements, {len(plan.status_update_times())} status updates, "
            f"T0 {_local_t0(plan)}"
        )
    return status


def _local_t0(plan: Plan) -> str:
    """`Fri 25 Jul 2025 20:00 EDT (2025-07-26 00:00 UTC)`: the plan's zone, as its warnings give times."""
    from bot.timeparse import zone

    local = plan.t0.astimezone(zone(plan.release.timezone))
    utc = "" if local.utcoffset() == timedelta(0) and local.tzname() == "UTC" else f" ({plan.t0:%Y-%m-%d %H:%M} UTC)"
    return f"{local:%a %d %b %Y %H:%M %Z}{utc}"


def cmd_preview(args: argparse.Namespace) -> int:
    from bot.plan import PlanError
    from bot.timeparse import format_duration
    from bot.validate import load_checked
    from messages.plain import blocks_to_text
    from schedules.preview import preview

    try:
        plan, _ = load_checked(args.plan)
    except PlanError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    tz = plan.tz
    utc = plan.release.timezone == "UTC"

    def when(at: datetime) -> str:
        local = at.astimezone(tz)
        return f"{at:%Y-%m-%d %H:%M} UTC" if utc else f"{at:%Y-%m-%d %H:%M} UTC | {local:%Y-%m-%d %H:%M %Z}"

    for item in preview(plan):
        what = item.key
        stream = next((s for s in plan.status_updates if plan.channel(s.channel) == item.channel), None)
        if item.last is not None and stream is not None:
            first, last = item.at.astimezone(tz), item.last.astimezone(tz)
            what = (
                f"status update every {format_duration(stream.every)} from {first:%Y-%m-%d %H:%M} "
                f"to {last:%Y-%m-%d %H:%M %Z} ({item.count} updates); the first:"
            )
        print(f"=== {when(item.at)} | {item.channel} | {what}")
        print(blocks_to_text(item.message.blocks))
        print()
    return 0


MEMBER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
"""What --demo-user takes: one person (a user group would give every role to all its members)."""


def cmd_run(args: argparse.Namespace) -> int:
    from bot import heap

    heap.hold_collection()  # until serving: see bot.heap
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a reload asked for during start-up must not kill it
    from bot.plan import PlanError
    from bot.settings import load_settings

    settings = load_settings()
    settings.require_slack()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.log_level != "DEBUG":
        # their INFO lines are bookkeeping (plugins set up, jobs added and run, a request retried): at
        # DEBUG they show; their warnings and errors always do
        for name in ("alembic", "apscheduler", "slack_sdk.web", "slack_bolt"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        plans = _load_all(args.plans)
    except PlanError as exc:
        for line in _problem_lines(exc):
            print(line, file=sys.stderr)
        return 1
    if args.demo_user and not args.demo:
        print("--demo-user only goes with --demo", file=sys.stderr)
        return 2
    if args.demo_user is not None and not MEMBER_ID.fullmatch(args.demo_user):
        print(
            f"--demo-user {args.demo_user[:40]!r} is not a member ID: give your own (U… or W…; Slack profile → ⋮ → "
            "Copy member ID), since that one person holds every role",
            file=sys.stderr,
        )
        return 2
    import asyncio

    return asyncio.run(_run(settings, plans, args.plans, demo=args.demo, demo_user=args.demo_user))


Transform = Callable[["Plan"], Awaitable["Plan"]]


async def _same(plan: Plan) -> Plan:
    return plan


def _demo(service: Service, member: str | None) -> Transform:
    """--demo: the window moves to just ahead of the release's first load (a restart keeps that date,
    which the database holds), and `member` holds every role."""
    from bot.core.demo import demo_plan, demo_start
    from storage import repo

    async def transform(plan: Plan) -> Plan:
        async with service.sessions() as session:
            existing = await repo.get_release(session=session, release_id=plan.id)
        start = existing.window_start if existing is not None else demo_start(service.clock())
        shifted = demo_plan(plan, start, member)
        local = shifted.t0.astimezone(shifted.tz)
        who = f"you ({member}) hold every role" if member else "the plan's people keep their roles"
        log.info(
            "demo: %s starts at %s %s (%s the first load; delete the database to start over); %s",
            plan.id,
            f"{local:%H:%M}",
            local.tzname(),
            "kept from" if existing is not None else "15 minutes after",
            who,
        )
        return shifted

    return transform


async def _run(
    settings: Settings,
    plans: list[tuple[Plan, str, str]],
    paths: Sequence[str],
    *,
    demo: bool = False,
    demo_user: str | None = None,
) -> int:
    from bot.preflight import check_before_start

    await check_before_start(settings)  # before migrating or loading anything: SettingsError, one line, exit 2
    from bot.app import build_runtime, serve
    from bot.service import LoadedPlan
    from bot.slack import BotIdentity, SlackUnreachable, TokenRejected, check_token

    identity = BotIdentity()
    assert settings.slack_bot_token is not None  # require_slack checked it
    try:
        await check_token(settings.slack_bot_token.get_secret_value(), settings.slack_api_url, identity)
    except TokenRejected as exc:
        print(f"warroom: {exc}", file=sys.stderr)
        return 2
    except SlackUnreachable as exc:
        log.warning("Slack did not answer auth.test (%s); serving anyway and asking again in the background", exc)
    runtime = await build_runtime(settings, identity=identity)
    transform = _demo(runtime.service, demo_user) if demo else _same
    for plan, source, file in plans:
        await runtime.service.load(LoadedPlan(await transform(plan), source, file))
    import asyncio

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: runtime.background(_reload(runtime.service, paths, transform)))
    return await serve(runtime, stop)


async def _reload(service: Service, paths: Sequence[str], transform: Transform = _same) -> None:
    """SIGHUP: read the plan files again and load them, as a restart would; a plan with problems changes
    nothing (each problem is logged as `file:line: message`)."""
    from bot.plan import PlanError
    from bot.service import LoadedPlan

    try:
        plans = _load_all(paths)
    except PlanError as exc:
        for line in _problem_lines(exc):
            log.error("plan reload refused: %s", line)
        return
    for plan, source, file in plans:
        try:
            await service.load(LoadedPlan(await transform(plan), source, file))
        except Exception:
            log.exception("reloading %s failed; the release keeps its previous plan", file)
            continue
    log.info("plans reloaded: %s", ", ".join(plan.id for plan, _, _ in plans))


def cmd_export(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_export(args))


async def _export(args: argparse.Namespace) -> int:
    import asyncio

    from bot.report import report, to_json, to_markdown
    from bot.settings import load_settings
    from storage import repo
    from storage.db import create_engine, migrate, sessionmaker

    settings = load_settings()
    missing = _missing_sqlite_file(settings.database_url)
    if missing is not None:
        print(
            f"no database at {missing} (WARROOM_DATABASE_URL is {settings.database_url}): run `warroom export` "
            "where `warroom run` keeps its database, or set WARROOM_DATABASE_URL to it",
            file=sys.stderr,
        )
        return 1
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        async with sessionmaker(engine)() as session:
            release = await repo.get_release(session=session, release_id=args.release)
            if release is None:
                known = [r.id for r in await repo.list_releases(session=session)]
                print(
                    f"no release {args.release!r} in {_shown(settings.database_url)} "
                    f"(releases: {', '.join(known) or 'none'})",
                    file=sys.stderr,
                )
                return 1
            timeline = await repo.get_timeline(session=session, release_id=args.release)
            outbox = await repo.outbox(session=session, release_id=args.release)
            stored = await repo.get_plan_source(session=session, release_id=args.release)
    finally:
        await engine.dispose()
    data = report(release, timeline, _stored_plan(stored), outbox)
    if args.chart is not None:
        from bot.chart import render_chart

        try:
            await asyncio.to_thread(Path(args.chart).write_bytes, render_chart(data))
        except OSError as exc:
            print(f"cannot write the chart to {args.chart}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    print(to_json(data) if args.format == "json" else to_markdown(data), end="")
    return 0


def _stored_plan(stored: tuple[str, str] | None) -> Plan | None:
    """The plan the release was last loaded from, as the database keeps it (None when it kept no source)."""
    from bot.plan import PlanError, parse_plan

    if stored is None or not stored[0].strip():
        return None
    try:
        return parse_plan(stored[0], stored[1] or "plan.yml")
    except PlanError:
        return None


def _shown(url: str) -> str:
    """A database URL as it may be printed: its password, if any, as ***."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _missing_sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names when it does not exist (opening it would create an empty database)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else path.resolve()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="warroom", description="Run a planned production go-live from Slack.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="load plans into the database and serve Slack")
    run.add_argument("plans", nargs="+", metavar="PLAN.yml")
    run.add_argument(
        "--demo",
        action="store_true",
        help="try a plan now: its window moves to start 15 minutes after the first load (kept on restart)",
    )
    run.add_argument("--demo-user", metavar="MEMBER_ID", help="with --demo: your Slack member ID holds every role")
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check", help="validate plans; list every problem as file:line: message")
    check.add_argument("plans", nargs="+", metavar="PLAN.yml")
    check.set_defaults(func=cmd_check)
    prev = sub.add_parser("preview", help="print every message a plan will post, in time order")
    prev.add_argument("plan", metavar="PLAN.yml")
    prev.set_defaults(func=cmd_preview)
    export = sub.add_parser("export", help="the release's timeline and report for the post-mortem")
    export.add_argument("release", metavar="RELEASE")
    export.add_argument("--format", choices=("markdown", "json"), default="markdown")
    export.add_argument("--chart", metavar="FILE.png", help="also write the plan-vs-actual timeline chart to FILE.png")
    export.set_defaults(func=cmd_export)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from bot.settings import SettingsError

    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsError as exc:
        print(f"warroom: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # output piped into `head` and the like: stop quietly, as other command-line tools do
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - replaces stdout for the interpreter's final flush
        return 0


if __name__ == "__main__":
    sys.exit(main())
