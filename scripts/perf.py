"""Warroom side by side with the framework floor: one command, every figure, interleaved (not part of the tests).

    python scripts/perf.py [--rounds 6] [--quick]

The floor is a bare Bolt app that verifies the signature and only acks, served the same way (aiohttp,
one process). Both run as subprocesses against the tests' fake Slack on loopback; rounds alternate which
one goes first so a noisy neighbour hurts both alike. Absolute times vary from run to run on shared
machines; the ratios are what to compare. Figures:

- ack p50 / p99 / throughput at 1, 10 and 50 concurrent senders (signed `/phase` requests), and the ratio;
  each round runs alone (the next starts once the work behind its acks is done), and the CPU each request
  cost the process, its work behind the ack included, is read from /proc (steadier than times on a busy
  machine);
- work behind the ack: `/phase done` → its war-room post reaching Slack, at 1, 10, 20 and 50 commands/s;
- RSS idle and after N `/issue` commands with issues accumulating;
- start-up: process start → `/healthz` 200 (median of 3, after a first start that fills the bytecode cache,
  for both), the same for warroom on a release of 1,000 issues and 100,000 events, and the import time of
  `bot.cli`;
- in-process: loading a release of 1,000 issues with 100,000 timeline events, one command on it, and the
  status card render of 200 phases + 100 issues;
- 1,000 posts due in the same second across 500 releases: lateness p50 / p99.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import SIGNING_SECRET, sign  # noqa: E402
from tests.fake_slack import FakeSlack  # noqa: E402

FLOOR_APP = """
import sys
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult


async def authorize(**_kwargs):
    # no Slack call at all: the floor only verifies the signature and acks
    return AuthorizeResult(enterprise_id=None, team_id="T1", bot_token="xoxb-floor", bot_user_id="UBOT", bot_id="BBOT")


app = AsyncApp(signing_secret=sys.argv[2], authorize=authorize)


@app.command("/phase")
@app.command("/issue")
async def only_ack(ack):
    await ack()


async def events(request):
    return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))


async def healthz(_request):
    return web.json_response({"status": "ok"})


application = web.Application()
application.router.add_post("/slack/events", events)
application.router.add_get("/healthz", healthz)
web.run_app(application, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def plan_text(t0: datetime, phases: int, *, release_id: str = "perf", war_room: str = "C0WAR") -> str:
    end = t0 + timedelta(hours=12)
    rows = "\n".join(
        f"  - {{id: step-{i:04d}, name: Step {i:04d}, start: +{i}m, duration: 1m, owner: dba}}" for i in range(phases)
    )
    return f"""
release:
  id: {release_id}
  name: Perf {release_id}
  version: v1
  timezone: UTC
  window: {{start: {t0:%Y-%m-%dT%H:%M:%SZ}, end: {end:%Y-%m-%dT%H:%M:%SZ}}}
channels: {{war_room: {war_room}, announcements: C0ANN}}
people: {{dba: [U0DBA], release_manager: [U0RM]}}
components: [api, web]
phases:
{rows}
"""


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base: str
    started: float
    ready: float = 0.0

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        """User + system CPU the process (all its threads) has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def wait_healthy(session: aiohttp.ClientSession, server: Server, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}")
        try:
            async with session.get(f"{server.base}/healthz") as response:
                if response.status == 200:
                    server.ready = time.perf_counter()
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.02)
    raise RuntimeError(f"{server.name} did not become healthy within {within}s")


STARTS = 3
"""Start-ups measured per server (after one that fills the bytecode cache)."""


def bytecode_env(workdir: Path) -> dict[str, str]:
    """The environment both servers run in: bytecode cached (in `workdir`), as an installed package has it
    after its first start, even where the caller's environment says not to write any."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return env


def start_floor(workdir: Path) -> Server:
    script = workdir / "floor_app.py"
    script.write_text(FLOOR_APP)
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(script), str(port), SIGNING_SECRET],
        env=bytecode_env(workdir),
        stdout=(workdir / "floor.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    return Server("floor", process, f"http://127.0.0.1:{port}", started)


def start_warroom(plans: list[Path], fake: FakeSlack, db: Path, workdir: Path) -> Server:
    port = free_port()
    env = {
        **{k: v for k, v in bytecode_env(workdir).items() if not k.startswith(("SLACK_", "WARROOM_"))},
        "SLACK_BOT_TOKEN": "xoxb-perf",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.url,
        "WARROOM_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "WARROOM_HOST": "127.0.0.1",
        "WARROOM_PORT": str(port),
        "WARROOM_LOG_LEVEL": "WARNING",
    }
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run", *map(str, plans)],
        env=env,
        cwd=ROOT,
        stdout=(workdir / "warroom.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    return Server("warroom", process, f"http://127.0.0.1:{port}", started)


_trigger = iter(range(10**9))


def command_body(command: str, text: str, fake: FakeSlack, *, response_hook: str = "respond") -> str:
    """A slash command as Slack sends it; every invocation has a trigger_id of its own, as in Slack."""
    return urlencode(
        {
            "command": command,
            "text": text,
            "user_id": "U0DBA",
            "user_name": "dba",
            "channel_id": "C0WAR",
            "channel_name": "war",
            "team_id": "T1",
            "response_url": fake.webhook_url.replace("/respond", f"/{response_hook}"),
            "trigger_id": f"{next(_trigger)}.{time.time_ns()}.perf",
        }
    )


async def send(session: aiohttp.ClientSession, server: Server, body: str) -> float:
    started = time.perf_counter()
    async with session.post(f"{server.base}/slack/events", data=body, headers=sign(body)) as response:
        await response.read()
        if response.status != 200:
            raise RuntimeError(f"{server.name} answered {response.status}")
    return time.perf_counter() - started


async def ack_round(
    session: aiohttp.ClientSession, server: Server, fake: FakeSlack, senders: int, total: int
) -> tuple[list[float], float]:
    """`total` signed `/phase list` requests from `senders` concurrent senders: latencies and requests/s."""
    latencies: list[float] = []
    per_sender = max(1, total // senders)

    async def sender() -> None:
        for _ in range(per_sender):
            latencies.append(await send(session, server, command_body("/phase", "list", fake)))

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(senders)))
    return latencies, len(latencies) / (time.perf_counter() - started)


async def quiet(fake: FakeSlack, for_seconds: float = 1.0, within: float = 120) -> None:
    """Wait until the fake Slack has seen no call for `for_seconds`: the work behind earlier acks is done."""
    deadline = time.monotonic() + within
    seen = -1
    while len(fake.calls) != seen and time.monotonic() < deadline:
        seen = len(fake.calls)
        await asyncio.sleep(for_seconds)


async def work_behind_ack(
    session: aiohttp.ClientSession, server: Server, fake: FakeSlack, rate: float, seconds: float, first: int
) -> tuple[list[float], list[float], int]:
    """`/issue` at `rate` per second. Two times from sending: to the reply, which is sent once the change
    is committed (the work behind the ack), and to its card reaching the war room, which Slack's pace of
    about one message a second per channel holds back once commands come faster than that."""
    sent: dict[str, float] = {}
    count = max(1, int(rate * seconds))
    tasks = []
    begin = time.perf_counter()
    for i in range(count):
        marker = f"probe-{first + i:05d}"
        await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))
        sent[marker] = time.time()
        body = command_body("/issue", f"medium api {marker} slow responses | timeouts", fake, response_hook=marker)
        tasks.append(asyncio.create_task(send(session, server, body)))
    await asyncio.gather(*tasks)

    def replied() -> dict[str, float]:
        return {c.method.split(":", 1)[1]: c.at for c in fake.calls if c.method.startswith("respond:probe-")}

    def arrived() -> dict[str, float]:
        found: dict[str, float] = {}
        for call in fake.calls:
            if call.method == "chat.postMessage" and call.args.get("channel") == "C0WAR":
                text = str(call.args.get("text", ""))
                marker = text[text.find("probe-") :][:11] if "probe-" in text else ""
                if marker in sent and marker not in found:
                    found[marker] = call.at
        return found

    with contextlib.suppress(TimeoutError):
        await fake.wait_until(lambda: len(arrived()) >= len(sent) and len(replied()) >= len(sent), within=90)
    replies, cards = replied(), arrived()
    return (
        [replies[m] - at for m, at in sent.items() if m in replies],
        [cards[m] - at for m, at in sent.items() if m in cards],
        first + count,
    )


async def issues_burst(session: aiohttp.ClientSession, server: Server, fake: FakeSlack, count: int) -> float:
    """`count` `/issue low api …` commands from 10 senders; seconds it took."""
    started = time.perf_counter()
    queue = iter(range(count))

    async def sender() -> None:
        for n in queue:
            await send(session, server, command_body("/issue", f"low api perf issue {n} | error {n}", fake))

    await asyncio.gather(*(sender() for _ in range(10)))
    return time.perf_counter() - started


def import_time_ms(module: str, workdir: Path) -> float:
    """Median wall time of `python -c 'import MODULE'` over 3 runs (bytecode cached, as for the servers)."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, check=True, env=bytecode_env(workdir))
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def timed(work: Callable[[], Awaitable[Any]], repeat: int) -> float:
    """Median milliseconds of `work` over `repeat` runs."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def seed_long_release(db: Path, t0: datetime, issues: int, events: int) -> Any:
    """A database whose release (a 200-phase plan starting at `t0`) has `issues` issues and `events`
    timeline events; returns a Service on it and its engine."""
    from bot.domain import Event, Issue, Severity
    from bot.plan import parse_plan
    from bot.service import LoadedPlan, Service
    from storage import repo
    from storage.db import create_engine, migrate, sessionmaker

    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    await migrate(engine)
    now = t0 + timedelta(minutes=30)
    service = Service(sessions=sessionmaker(engine), clock=lambda: now)
    text = plan_text(t0, 200)
    plan = parse_plan(text, "perf.yml")
    await service.load(LoadedPlan(plan, text, "perf.yml"))
    async with service.sessions() as session, session.begin():
        before = await repo.get_release(session=session, release_id=plan.id, lock=True)
        assert before is not None
        extra = tuple(
            Issue(i + 1, Severity.LOW, "api", f"impact {i}", "U0DBA", t0, error=f"error {i}") for i in range(issues)
        )
        await repo.save_release(session=session, before=before, after=replace(before, issues=extra), now=now)
    for start in range(0, events, 10_000):
        async with service.sessions() as session, session.begin():
            await repo.append_events(
                session=session,
                release_id=plan.id,
                events=[Event("perf.event", t0, "U0DBA", f"n{n}", {"n": n}) for n in range(start, start + 10_000)],
            )
    return service, engine


async def long_release_starts(session: aiohttp.ClientSession, workdir: Path, runs: int) -> list[float]:
    """Start → /healthz 200 on a database holding a release of 1,000 issues and 100,000 events (a copy each
    run, after one uncounted start), the plan file beside it."""
    t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    seeded = workdir / "long.db"
    _, engine = await seed_long_release(seeded, t0, issues=1000, events=100_000)
    await engine.dispose()
    plan = workdir / "long.yml"
    plan.write_text(plan_text(t0, 200))
    walls = []
    fake = await FakeSlack().start()
    try:
        for run in range(runs + 1):
            db = workdir / f"long{run}.db"
            shutil.copyfile(seeded, db)
            server = start_warroom([plan], fake, db, workdir)
            try:
                await wait_healthy(session, server)
            finally:
                server.stop()
            if run:
                walls.append(server.ready - server.started)
    finally:
        await fake.stop()
    return walls


async def in_process(workdir: Path, issues: int, events: int) -> dict[str, float]:
    """Loading a long-running release, one command on it, and the status card render."""
    from bot.domain import Actor
    from bot.plan import parse_plan
    from bot.rules import ChangePhase, PhaseVerb, change_phase
    from bot.service import Service
    from messages.render import render
    from storage.db import create_engine, sessionmaker

    t0 = datetime(2026, 12, 5, 22, tzinfo=UTC)
    now = t0 + timedelta(minutes=30)
    service, engine = await seed_long_release(workdir / "inprocess.db", t0, issues, events)
    plan = parse_plan(plan_text(t0, 200), "perf.yml")

    async def load() -> None:
        await service.get(plan.id)

    actor = Actor("U0DBA", frozenset({"dba"}))
    phases = iter(range(200))

    async def command() -> None:
        change = ChangePhase(PhaseVerb.DONE, f"step-{next(phases):04d}", "ok")
        await service.run(plan.id, lambda r, p, at: change_phase(r, p, actor, change, at))

    figures = {"get_release": await timed(load, 20), "command": await timed(command, 20)}

    async def first_load() -> None:
        # a process that has not read the release yet (just started, or another replica saved a change)
        fresh = create_engine(f"sqlite+aiosqlite:///{workdir / 'inprocess.db'}")
        try:
            await Service(sessions=sessionmaker(fresh), clock=lambda: now).get(plan.id)
        finally:
            await fresh.dispose()

    figures["first_load"] = await timed(first_load, 5)
    card_plan = parse_plan(plan_text(t0, 200), "perf.yml")
    release = await service.get(plan.id)
    card_release = replace(release, issues=release.issues[:100])

    async def card() -> None:
        render(card_plan, "status_card", card_release, now)

    figures["render"] = await timed(card, 50)
    await engine.dispose()
    return figures


async def many_releases(session: aiohttp.ClientSession, workdir: Path, releases: int, per_release: int) -> list[float]:
    """`releases` plans, each with `per_release` announcements due in the same second: lateness in seconds."""
    fake = await FakeSlack().start()
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=40 + releases // 20)
    plans = []
    for r in range(releases):
        anns = "\n".join(
            f'  - {{id: a{a}, at: "+0s", channel: war_room, text: "announcement {a} of r{r}"}}'
            for a in range(per_release)
        )
        path = workdir / f"r{r}.yml"
        text = plan_text(due, 1, release_id=f"r{r:03d}", war_room=f"C{r:04d}")
        path.write_text(text + f"announcements:\n{anns}\n")
        plans.append(path)
    server = start_warroom(plans, fake, workdir / "many.db", workdir)
    try:
        await wait_healthy(session, server, within=180)
        wait = (due - datetime.now(UTC)).total_seconds()
        if wait < 0:
            print(f"  (start-up took longer than planned: posts were already {-wait:.0f}s due when it served)")
        await asyncio.sleep(max(0.0, wait))
        expected = releases * per_release
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            posts = [c for c in fake.calls if c.method == "chat.postMessage" and "announcement" in str(c.args)]
            if len(posts) >= expected:
                break
            await asyncio.sleep(0.2)
        return [c.at - due.timestamp() for c in posts]
    finally:
        server.stop()
        await fake.stop()


def row(what: str, warroom: str, floor: str = "", ratio: str = "") -> str:
    return f"| {what} | {warroom} | {floor} | {ratio} |"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()}: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds per ack figure")
    parser.add_argument("--requests", type=int, default=200, help="requests per ack round")
    parser.add_argument("--issues", type=int, default=5000, help="/issue commands for the memory figure")
    parser.add_argument("--releases", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="smaller numbers, for trying the script out")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.requests, args.issues, args.releases = 2, 60, 300, 50

    print(f"machine: {machine()}")
    print(f"when: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; rounds: {args.rounds}, requests per round: {args.requests}")
    workdir = Path(tempfile.mkdtemp(prefix="warroom-perf-"))
    fake = await FakeSlack().start()
    t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    plan = workdir / "perf.yml"
    plan.write_text(plan_text(t0, 20))
    lines = ["| what | warroom | floor (bare Bolt, ack only) | warroom ÷ floor |", "|---|---|---|---|"]

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        starts: dict[str, list[float]] = {"warroom": [], "floor": []}
        for attempt in range(STARTS + 1):
            # the first start compiles the bytecode cache, as an install's first start does: not counted
            floor = start_floor(workdir)
            warroom = start_warroom([plan], fake, workdir / f"perf{attempt}.db", workdir)
            await asyncio.gather(wait_healthy(session, floor), wait_healthy(session, warroom))
            if attempt:
                for server in (warroom, floor):
                    starts[server.name].append(server.ready - server.started)
            if attempt < STARTS:
                warroom.stop()
                floor.stop()
        w, f = statistics.median(starts["warroom"]), statistics.median(starts["floor"])
        lines.append(
            row(
                f"start → /healthz 200 (20-phase plan, empty database; median of {STARTS})",
                f"{w:.2f} s",
                f"{f:.2f} s",
                f"{w / f:.2f}x",
            )
        )
        await asyncio.sleep(1)
        lines.append(row("RSS idle", f"{warroom.rss_mib():.0f} MiB", f"{floor.rss_mib():.0f} MiB"))
        try:
            cpu: dict[str, list[float]] = {"warroom": [], "floor": []}
            for senders in (1, 10, 50):
                stats: dict[str, list[tuple[float, float, float]]] = {"warroom": [], "floor": []}
                for r in range(args.rounds):
                    order = (warroom, floor) if r % 2 == 0 else (floor, warroom)
                    for server in order:
                        used = server.cpu_seconds()
                        latencies, throughput = await ack_round(session, server, fake, senders, args.requests)
                        # each round alone: the work behind one server's acks must not slow the other's round
                        await quiet(fake, 0.5)
                        cpu[server.name].append((server.cpu_seconds() - used) / len(latencies))
                        stats[server.name].append((percentile(latencies, 50), percentile(latencies, 99), throughput))
                for index, label in ((0, "p50"), (1, "p99")):
                    w = [s[index] for s in stats["warroom"]]
                    f = [s[index] for s in stats["floor"]]
                    ratios = [a / b for a, b in zip(w, f, strict=True)]
                    lines.append(
                        row(
                            f"ack {label}, {senders} sender{'s' if senders > 1 else ''}",
                            ms(statistics.median(w)),
                            ms(statistics.median(f)),
                            f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}x)",
                        )
                    )
                w = [s[2] for s in stats["warroom"]]
                f = [s[2] for s in stats["floor"]]
                lines.append(
                    row(
                        f"throughput, {senders} sender{'s' if senders > 1 else ''}",
                        f"{statistics.median(w):.0f}/s",
                        f"{statistics.median(f):.0f}/s",
                        f"{statistics.median(w) / statistics.median(f):.2f}x",
                    )
                )
            w, f = statistics.median(cpu["warroom"]), statistics.median(cpu["floor"])
            lines.append(
                row(
                    "CPU per `/phase list` (the process, its work behind the ack included)",
                    ms(w),
                    ms(f),
                    f"{w / f:.1f}x",
                )
            )
            await quiet(fake)
            first = 0
            for rate in (1, 10, 20, 50):
                seconds = 5 if rate > 1 else 8
                replies, cards, first = await work_behind_ack(session, warroom, fake, rate, seconds, first)
                await quiet(fake)

                def spread(values: list[float], of: int) -> str:
                    if not values:
                        return "none arrived"
                    counted = f" ({len(values)} of {of})" if len(values) < of else ""
                    return f"p50 {ms(percentile(values, 50))}, p99 {ms(percentile(values, 99))}{counted}"

                commands = max(1, int(rate * seconds))
                lines.append(
                    row(
                        f"work behind the ack at {rate}/s: `/issue` → its reply, sent once committed",
                        spread(replies, commands),
                    )
                )
                lines.append(
                    row(
                        "… → its card in the war room (one channel: Slack's pace, ~1/s, applies)",
                        spread(cards, commands),
                    )
                )
            floor_before = floor.rss_mib()
            took = await issues_burst(session, warroom, fake, args.issues)
            await quiet(fake)
            floor_took = await issues_burst(session, floor, fake, args.issues)
            await asyncio.sleep(2)
            lines.append(
                row(
                    f"RSS after {args.issues} `/issue` commands (issues accumulating)",
                    f"{warroom.rss_mib():.0f} MiB ({took:.0f} s)",
                    f"{floor.rss_mib():.0f} MiB ({floor_took:.0f} s; idle {floor_before:.0f})",
                )
            )
        finally:
            warroom.stop()
            floor.stop()
            await fake.stop()

        figures = await in_process(workdir, issues=1000, events=100_000)
        lines.append(row("`get_release`, 1,000 issues + 100,000 events (SQLite)", f"{figures['get_release']:.1f} ms"))
        if "first_load" in figures:
            lines.append(
                row(
                    "… its first load in a process (nothing kept yet; includes connecting)",
                    f"{figures['first_load']:.1f} ms",
                )
            )
        lines.append(row("one `/phase done` through Service.run on that release", f"{figures['command']:.1f} ms"))
        lines.append(row("status card render, 200 phases + 100 issues", f"{figures['render']:.2f} ms"))
        long_starts = await long_release_starts(session, workdir, STARTS)
        lines.append(
            row(
                f"start → /healthz 200, a release of 1,000 issues + 100,000 events (200 phases; median of {STARTS})",
                f"{statistics.median(long_starts):.2f} s ({min(long_starts):.2f}-{max(long_starts):.2f} s)",
            )
        )
        lines.append(
            row(
                "import time (`python -c 'import …'`)",
                f"{import_time_ms('bot.cli', workdir):.0f} ms (bot.cli)",
                f"{import_time_ms('slack_bolt.async_app', workdir):.0f} ms (slack_bolt.async_app)",
            )
        )
        lateness = await many_releases(session, workdir, args.releases, 2)
        expected = args.releases * 2
        lines.append(
            row(
                f"{expected} posts due in one second over {args.releases} releases",
                f"{len(lateness)}/{expected} posted; p50 {percentile(lateness, 50):.2f} s, "
                f"p99 {percentile(lateness, 99):.2f} s late"
                if lateness
                else "none posted",
            )
        )
    print("\n".join(lines))
    print(f"(logs and databases: {workdir})")


if __name__ == "__main__":
    asyncio.run(main())
