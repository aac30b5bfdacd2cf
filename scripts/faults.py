"""Scheduled delivery of the real program through Slack's faults, each injected into a fake Slack.

    python scripts/faults.py [--only NAME ...]

Each scenario runs its own `warroom run PLAN` (HTTP mode, SQLite) against its own fake Slack on loopback;
the scenarios run side by side and the whole run stops by itself within about two minutes. The plan's
12 announcements fall due one a second (alternating #announcements and the war room; the burst scenarios
put 10 into #announcements in the same second). A fault starts when the first one falls due. Printed per
scenario: messages due, posted (in Slack, once or more), duplicated (posted more than once), failed
(recorded as refused for good, with a notice) and lost (neither posted nor recorded as failed), and the
most posts one channel received within one second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.bot_process import free_port  # noqa: E402
from tests.conftest import SIGNING_SECRET  # noqa: E402
from tests.fake_slack import Conversation, FakeSlack, RateLimit  # noqa: E402

LEAD = 25.0
"""Seconds from start to the first due announcement (the programs start meanwhile, side by side)."""
SETTLE = 75.0
"""Seconds after the last due time to wait for retries (the first retry after a failure is at 30 s)."""
OUTAGE = 6.0


@dataclass
class Scenario:
    name: str
    how: str
    inject: Callable[[FakeSlack], None] | None = None
    burst: bool = False
    kill: bool = False


SCENARIOS = [
    Scenario("none", "no fault"),
    Scenario("500s", f"every chat.postMessage answers HTTP 500 for {OUTAGE:.0f} s", lambda f: f.outage("500", OUTAGE)),
    Scenario(
        "resets", f"every chat.postMessage connection reset for {OUTAGE:.0f} s", lambda f: f.outage("reset", OUTAGE)
    ),
    Scenario(
        "429 storm",
        f"every chat.postMessage answers 429, Retry-After 2, for {OUTAGE:.0f} s",
        lambda f: f.outage("429", OUTAGE, retry_after=2),
    ),
    Scenario("hang", f"chat.postMessage hangs, then resets, for {OUTAGE:.0f} s", lambda f: f.outage("hang", OUTAGE)),
    Scenario(
        "slow posts", "every chat.postMessage takes 2 s to answer", lambda f: f.slow.update({"chat.postMessage": 2})
    ),
    Scenario(
        "lost answers",
        "the next 4 chat.postMessage post, then the client sees a reset",
        lambda f: f.lose_answer("chat.postMessage", "reset", 4),
    ),
    Scenario(
        "lost answers (500)",
        "the next 4 chat.postMessage post, then the client sees HTTP 500",
        lambda f: f.lose_answer("chat.postMessage", "500", 4),
    ),
    Scenario("burst", "10 announcements due in the same second to one channel", None, burst=True),
    Scenario(
        "burst + Slack's limit",
        "the same burst; Slack allows 1 post/s per channel (burst 1), 429 with Retry-After beyond",
        lambda f: f.rate_limits.update({"chat.postMessage": RateLimit(1, 1, per_channel=True)}),
        burst=True,
    ),
    Scenario(
        "archived channel",
        "#announcements is archived",
        lambda f: f.conversations.update({"C0ANN": Conversation(archived=True)}),
    ),
    Scenario("kill -9", "SIGKILL when the 4th falls due, restarted 5 s later", None, kill=True),
]


def plan_text(t0: datetime, burst: bool) -> str:
    """12 announcements due one a second from T0 (or 10 at T0 to one channel, then 2 more)."""
    lines = []
    for i in range(12):
        at = 0 if burst and i < 10 else i
        channel = "announcements" if burst and i < 10 else ("announcements" if i % 2 else "war_room")
        lines.append(f'  - {{id: a{i:02d}, at: +{at}s, channel: {channel}, text: "Announcement {i}"}}')
    end = t0 + timedelta(hours=2)
    return f"""
release:
  id: faults
  name: Faults
  version: v1
  timezone: UTC
  window: {{start: {t0:%Y-%m-%dT%H:%M:%SZ}, end: {end:%Y-%m-%dT%H:%M:%SZ}}}
channels: {{war_room: C0WAR, announcements: C0ANN}}
people: {{release_manager: [U0RM]}}
phases:
  - {{id: deploy, name: Deploy, start: 0, duration: 1h, owner: release_manager}}
announcements:
{chr(10).join(lines)}
"""


def start_bot(plan: Path, fake: FakeSlack, db: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "WARROOM_"))},
        "SLACK_BOT_TOKEN": "xoxb-faults",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.url,
        "WARROOM_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "WARROOM_HOST": "127.0.0.1",
        "WARROOM_PORT": str(port),
        "WARROOM_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run", str(plan)],
        env=env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def outbox(db: Path) -> dict[str, str]:
    try:
        with sqlite3.connect(db) as conn:
            return dict(conn.execute("SELECT key, status FROM outbox WHERE key LIKE 'announcement:%'").fetchall())
    except sqlite3.OperationalError:  # not migrated yet, or busy
        return {}


def densest_second(times: list[float]) -> int:
    times = sorted(times)
    return max((sum(1 for t in times[i:] if t - start < 1.0) for i, start in enumerate(times)), default=0)


async def run(scenario: Scenario, workdir: Path) -> dict[str, object]:
    fake = await FakeSlack().start()
    here = workdir / scenario.name.replace(" ", "_").replace("(", "").replace(")", "")
    here.mkdir()
    t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=LEAD)
    plan = here / "plan.yml"
    plan.write_text(plan_text(t0, scenario.burst))
    db, log, port = here / "warroom.db", here / "bot.log", free_port()
    due = {f"announcement:a{i:02d}" for i in range(12)}
    last_due = t0 + timedelta(seconds=11)
    bot = start_bot(plan, fake, db, port, log)
    try:
        await asyncio.sleep(max(0.0, (t0 - datetime.now(UTC)).total_seconds()))
        if scenario.inject is not None:
            scenario.inject(fake)
        if scenario.kill:
            await asyncio.sleep(3.0)
            bot.send_signal(signal.SIGKILL)
            bot.wait()
            await asyncio.sleep(5.0)
            bot = start_bot(plan, fake, db, port, log)
        deadline = time.monotonic() + max(0.0, (last_due - datetime.now(UTC)).total_seconds()) + SETTLE
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            states = outbox(db)
            if states and all(states.get(k) in {"sent", "failed", "skipped"} for k in due):
                break
    finally:
        bot.send_signal(signal.SIGTERM)
        try:
            bot.wait(timeout=15)
        except subprocess.TimeoutExpired:
            bot.kill()
        await fake.stop()
    held = [
        m
        for messages in fake.messages.values()
        for m in messages
        if ((m.get("metadata") or {}).get("event_payload") or {}).get("key") in due
    ]
    keys = [m["metadata"]["event_payload"]["key"] for m in held]
    states = outbox(db)
    failed = {k for k in due if states.get(k) == "failed"}
    posts = [c for c in fake.calls if c.method == "chat.postMessage"]
    per_channel: dict[str, list[float]] = {}
    for call in posts:
        per_channel.setdefault(str(call.args.get("channel")), []).append(call.at)
    notices = [m for m in fake.messages.get("C0WAR", []) if str(m.get("text", "")).startswith("⚠️ Warroom could not")]
    return {
        "scenario": scenario.name,
        "how": scenario.how,
        "due": len(due),
        "posted": len(set(keys)),
        "duplicated": len(keys) - len(set(keys)),
        "failed": len(failed),
        "notices": len(notices),
        "lost": len(due - set(keys) - failed),
        "densest": max((densest_second(v) for v in per_channel.values()), default=0),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="scenario names to run (default: all)")
    args = parser.parse_args()
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    workdir = Path(tempfile.mkdtemp(prefix="warroom-faults-"))
    started = time.monotonic()
    results = await asyncio.gather(*(run(s, workdir) for s in chosen))
    print("| fault | how it was injected | due | posted | duplicated | failed (notices) | lost | most posts/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['scenario']} | {r['how']} | {r['due']} | {r['posted']} | {r['duplicated']} | "
            f"{r['failed']} ({r['notices']}) | {r['lost']} | {r['densest']} |"
        )
    print(f"({len(results)} scenarios in {time.monotonic() - started:.0f} s; logs under {workdir})")


if __name__ == "__main__":
    asyncio.run(main())
