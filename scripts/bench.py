"""End-to-end numbers for the real program against a fake Slack on loopback (not part of the tests).

    python scripts/bench.py [--senders 50] [--requests 20]

1. Starts a fake Slack Web API, writes a plan whose announcements fall due over the next ~40 seconds, and
   runs `warroom run PLAN` in HTTP mode as a subprocess.
2. Load: N concurrent senders post signed `/phase` requests; prints ack latency p50/p99/max.
3. Lateness: when each announcement reached Slack versus when it was due; prints p50/p99/max.
4. Restart: kills the process with SIGKILL halfway through, starts it again 70 s later, and counts
   duplicates (must be 0) and messages posted with the "(delayed)" marker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import SIGNING_SECRET, sign  # noqa: E402
from tests.fake_slack import FakeSlack  # noqa: E402

PHASES = 20
ANNOUNCEMENTS = 20


def plan_text(t0: datetime) -> str:
    end = t0 + timedelta(hours=2)
    phases = "\n".join(
        f"  - {{id: step-{i:02d}, name: Step {i}, start: +{i}m, duration: 1m, owner: dba}}" for i in range(PHASES)
    )
    anns = "\n".join(
        f"  - {{id: a{i:02d}, at: {'-' if i < ANNOUNCEMENTS // 2 else '+'}{abs(2 * i - ANNOUNCEMENTS)}s, "
        f'channel: announcements, text: "Announcement {i} for {{{{ release.name }}}}"}}'
        for i in range(ANNOUNCEMENTS)
    )
    return f"""
release:
  id: bench
  name: Bench
  version: v1
  timezone: UTC
  window: {{start: {t0:%Y-%m-%dT%H:%M:%SZ}, end: {end:%Y-%m-%dT%H:%M:%SZ}}}
channels: {{war_room: C0WAR, announcements: C0ANN}}
people: {{dba: [U0DBA]}}
phases:
{phases}
announcements:
{anns}
"""


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def start_bot(plan: Path, fake: FakeSlack, db: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "WARROOM_"))},
        "SLACK_BOT_TOKEN": "xoxb-bench",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.url,
        "WARROOM_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "WARROOM_HOST": "127.0.0.1",
        "WARROOM_PORT": str(port),
        "WARROOM_LOG_LEVEL": "WARNING",
    }
    exe = Path(sys.executable).with_name("warroom")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "bot.cli"]
    return subprocess.Popen(
        [*command, "run", str(plan)], env=env, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


async def wait_healthy(session: aiohttp.ClientSession, base: str, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{base}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the bot did not become healthy")


async def load(
    session: aiohttp.ClientSession, base: str, fake: FakeSlack, senders: int, per_sender: int
) -> list[float]:
    latencies: list[float] = []

    async def sender(n: int) -> None:
        for i in range(per_sender):
            verb = ("list", f"start step-{(n + i) % PHASES:02d}", f"done step-{(n * 7 + i) % PHASES:02d} ok")[i % 3]
            form = {
                "command": "/phase",
                "text": verb,
                "user_id": "U0DBA",
                "channel_id": "C0WAR",
                "channel_name": "war",
                "team_id": "T1",
                "response_url": fake.webhook_url,
                "trigger_id": "1",
            }
            body = urlencode(form)
            started = time.perf_counter()
            async with session.post(f"{base}/slack/events", data=body, headers=sign(body)) as response:
                await response.read()
                assert response.status == 200, response.status
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(sender(n) for n in range(senders)))
    return latencies


def _announcement_posts(fake: FakeSlack) -> list[Any]:
    return [c for c in fake.calls if c.method == "chat.postMessage" and c.args.get("channel") == "C0ANN"]


def _announcement_keys(fake: FakeSlack) -> list[str | None]:
    return [((c.args.get("metadata") or {}).get("event_payload") or {}).get("key") for c in _announcement_posts(fake)]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="requests per sender")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--outage", type=float, default=70, help="seconds the bot stays down (the delayed mark is at 60 s)"
    )
    args = parser.parse_args()

    fake = await FakeSlack().start()
    workdir = Path(tempfile.mkdtemp(prefix="warroom-bench-"))
    t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=ANNOUNCEMENTS + 40)
    plan = workdir / "bench.yml"
    plan.write_text(plan_text(t0))
    port = 3917
    base = f"http://127.0.0.1:{port}"
    log = workdir / "bot.log"
    due = {f"announcement:a{i:02d}": t0 + timedelta(seconds=(2 * i - ANNOUNCEMENTS)) for i in range(ANNOUNCEMENTS)}

    bot = start_bot(plan, fake, workdir / "bench.db", port, log)
    async with aiohttp.ClientSession() as session:
        await wait_healthy(session, base)
        healthy = datetime.now(UTC)
        started = time.perf_counter()
        latencies = await load(session, base, fake, args.senders, args.requests)
        elapsed = time.perf_counter() - started
        print(f"load: {len(latencies)} signed /phase requests from {args.senders} concurrent senders in {elapsed:.1f}s")
        print(
            f"ack latency: p50 {percentile(latencies, 50) * 1000:.1f} ms, "
            f"p99 {percentile(latencies, 99) * 1000:.1f} ms, "
            f"max {max(latencies) * 1000:.1f} ms"
        )

        # restart scenario: kill the bot halfway through the announcements, bring it back 8 s later
        kill_at = t0 - timedelta(seconds=2)
        await asyncio.sleep(max(0.0, (kill_at - datetime.now(UTC)).total_seconds()))
        bot.send_signal(signal.SIGKILL)
        bot.wait()
        killed = datetime.now(UTC)
        await asyncio.sleep(args.outage)
        bot = start_bot(plan, fake, workdir / "bench.db", port, log)
        await wait_healthy(session, base)
        restarted = datetime.now(UTC)
        last_due = max(due.values())
        await asyncio.sleep(max(0.0, (last_due - datetime.now(UTC)).total_seconds()))
        # what fell due during the outage goes out at the channel's pace (a burst of 3, then one a second)
        with contextlib.suppress(TimeoutError):  # the count below says what did not arrive
            await fake.wait_until(lambda: set(due) <= set(_announcement_keys(fake)), len(due) + 10)

    bot.send_signal(signal.SIGTERM)
    bot.wait(timeout=15)
    posts = _announcement_posts(fake)
    keys = _announcement_keys(fake)
    duplicates = len(keys) - len(set(keys))
    on_time, delayed, outage = [], [], []
    for call, key in zip(posts, keys, strict=True):
        if key in due:
            lateness = call.at - due[key].timestamp()
            if args.verbose:
                print(f"  {key} due {due[key]:%H:%M:%S} late {lateness:.3f}s")
            if str(call.args.get("text", "")).startswith("(delayed)"):
                delayed.append(lateness)
            elif killed <= due[key] <= restarted or due[key] < healthy:
                outage.append(lateness)
            else:
                on_time.append(lateness)
    print(f"announcements: {len(set(keys) & set(due))} of {len(due)} posted, {duplicates} duplicates")
    if on_time:
        print(
            f"lateness (running bot, {len(on_time)} messages): p50 {percentile(on_time, 50):.3f} s, "
            f"p99 {percentile(on_time, 99):.3f} s, max {max(on_time):.3f} s"
        )
    print(
        f"restart: killed at T{(killed - t0).total_seconds():+.0f}s, "
        f"back at T{(restarted - t0).total_seconds():+.0f}s; "
        f"{len(delayed)} messages due meanwhile were posted with the (delayed) marker"
        + (f", {statistics.mean(delayed):.1f} s late on average" if delayed else "")
        + (f"; {len(outage)} due during the outage went out unmarked (under 60 s late)" if outage else "")
        + f"; first start took {(healthy - (t0 - timedelta(seconds=ANNOUNCEMENTS + 40))).total_seconds():.1f} s"
    )
    print(f"(bot log: {log})")
    await fake.stop()


if __name__ == "__main__":
    asyncio.run(main())
