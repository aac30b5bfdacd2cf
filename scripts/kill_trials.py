"""Kill -9 trials: are acknowledged commands and clicks lost or applied twice when the bot dies? (not a test)

    python scripts/kill_trials.py [--trials 10] [--issues 10]

Each trial starts `warroom run` (HTTP mode, SQLite) against a fake Slack, sends a burst of signed `/issue`
commands and three *Go* clicks at once, kills the process with SIGKILL a random 0-100 ms after the last
acknowledgement arrived, starts it again, waits for it to finish what it had recorded, and counts what the
database holds against what was acknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from storage import repo  # noqa: E402
from storage.db import create_engine, sessionmaker  # noqa: E402
from tests.bot_process import free_port  # noqa: E402
from tests.conftest import SIGNING_SECRET, plan_text, sign  # noqa: E402
from tests.fake_slack import FakeSlack  # noqa: E402

VOTERS = ("U0RM", "U0DEV", "U0DBA")


def issue(fake: FakeSlack, trial: int, n: int) -> str:
    form = {
        "command": "/issue", "text": f"high api trial {trial} issue {n}", "user_id": "U0QA",
        "channel_id": "C0WAR", "channel_name": "war", "team_id": "T111", "response_url": fake.webhook_url,
        "trigger_id": f"{trial}.{n}.issue",
    }  # fmt: skip
    return urlencode(form)


def vote(fake: FakeSlack, trial: int, user: str) -> str:
    payload = {
        "type": "block_actions", "user": {"id": user}, "api_app_id": "A111", "team": {"id": "T111"},
        "trigger_id": f"{trial}.{user}.vote", "channel": {"id": "C0WAR", "name": "war"},
        "response_url": fake.webhook_url,
        "actions": [{"action_id": "vote_go", "block_id": "b", "value": "r1", "type": "button", "action_ts": "1"}],
    }  # fmt: skip
    return urlencode({"payload": json.dumps(payload)})


async def start(plan: Path, fake: FakeSlack, db: str, port: int, log: Path) -> asyncio.subprocess.Process:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "WARROOM_"))},
        "SLACK_BOT_TOKEN": "xoxb-trials", "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.url,
        "WARROOM_DATABASE_URL": db, "WARROOM_HOST": "127.0.0.1", "WARROOM_PORT": str(port),
        "WARROOM_LOG_LEVEL": "WARNING",
    }  # fmt: skip
    with log.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "run", str(plan), env=env, cwd=ROOT, stdout=sink, stderr=sink
        )


async def healthy(session: aiohttp.ClientSession, base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{base}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("the bot did not become healthy")


async def trial(number: int, issues: int, workdir: Path) -> tuple[int, int, int, int]:
    """(acked, applied once, lost, applied twice)."""
    fake = await FakeSlack().start()
    plan = workdir / f"plan{number}.yml"
    plan.write_text(plan_text(datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)))
    db = f"sqlite+aiosqlite:///{workdir / f'trial{number}.db'}"
    port, log = free_port(), workdir / f"trial{number}.log"
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        bot = await start(plan, fake, db, port, log)
        await healthy(session, base)
        await fake.wait_until(lambda: any("Go/No-Go vote" in str(p.get("text")) for p in fake.posts()), 15)
        bodies = {f"issue {n}": issue(fake, number, n) for n in range(issues)}
        bodies |= {f"vote {u}": vote(fake, number, u) for u in VOTERS}

        async def send(body: str) -> bool:
            try:
                async with session.post(f"{base}/slack/events", data=body, headers=sign(body)) as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        results = await asyncio.gather(*(send(b) for b in bodies.values()))
        await asyncio.sleep(random.uniform(0, 0.1))
        bot.kill()
        await bot.wait()
        acked = {name for name, ok in zip(bodies, results, strict=True) if ok}
        bot = await start(plan, fake, db, port, log)
        await healthy(session, base)
        await asyncio.sleep(8)  # recovery runs at once, and again after its 5 s grace
        bot.terminate()
        await bot.wait()
    await fake.stop()
    engine = create_engine(db)
    try:
        async with sessionmaker(engine)() as s:
            release = await repo.get_release(session=s, release_id="r1")
    finally:
        await engine.dispose()
    assert release is not None
    applied = Counter(i.impact.removeprefix(f"trial {number} ") for i in release.issues)
    applied.update(f"vote {b.voter}" for b in release.ballots)
    lost = len([name for name in acked if applied[name] == 0])
    twice = len([name for name, n in applied.items() if n > 1])
    return len(acked), len([n for n in applied.values() if n == 1]), lost, twice


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--issues", type=int, default=10)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="warroom-kill-"))
    totals = Counter[str]()
    for n in range(args.trials):
        acked, once, lost, twice = await trial(n, args.issues, workdir)
        totals.update(acked=acked, lost=lost, twice=twice)
        print(f"trial {n}: {acked} acked, {once} applied once, {lost} lost, {twice} applied twice")
    print(f"total: {totals['acked']} acked, {totals['lost']} lost, {totals['twice']} applied twice (logs: {workdir})")


if __name__ == "__main__":
    asyncio.run(main())
