"""`warroom run` as a real subprocess in HTTP mode, pointed at the fake Slack."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ROOT, SIGNING_SECRET
from tests.fake_slack import FakeSlack


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class BotProcess:
    process: asyncio.subprocess.Process
    base: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_for_output(self, text: str, within: float = 15) -> None:
        """Wait until the process has logged `text` (its output goes to a file: polled, nothing to await)."""
        async with asyncio.timeout(within):
            while text not in self.output():  # noqa: ASYNC110
                await asyncio.sleep(0.1)


@asynccontextmanager
async def running_bot(
    fake: FakeSlack,
    plan: Path,
    database_url: str,
    log: Path,
    *,
    ready_within: float = 30,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[BotProcess]:
    """Start `warroom run PLAN`, wait for /healthz, and stop it with SIGTERM afterwards (exit 0 expected).

    `extra_env` adds or replaces variables (e.g. SLACK_APP_TOKEN for Socket Mode)."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "WARROOM_"))},
        "SLACK_BOT_TOKEN": "xoxb-e2e",
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.url,
        "WARROOM_DATABASE_URL": database_url,
        "WARROOM_HOST": "127.0.0.1",
        "WARROOM_PORT": str(port),
        **(extra_env or {}),
    }
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "run", str(plan), env=env, cwd=ROOT, stdout=sink, stderr=sink
        )
    bot = BotProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        await _wait_healthy(bot, ready_within)
        yield bot
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 15)
    assert process.returncode == 0, bot.output()


async def _wait_healthy(bot: BotProcess, within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    async with aiohttp.ClientSession() as session:
        while asyncio.get_running_loop().time() < deadline:
            try:
                async with session.get(f"{bot.base}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert bot.process.returncode is None, bot.output()
            await asyncio.sleep(0.1)
    pytest.fail(f"warroom run did not become healthy within {within}s:\n{bot.output()}")
