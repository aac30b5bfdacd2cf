"""Keeping in touch with Slack without holding the rest hostage: asking `auth.test` again until Slack answers,
and opening the Socket Mode connection, each retried in the background with one log line per attempt.

A token Slack refuses for good ends the program (exit 2) through `on_fatal`; anything else (5xx, 429,
connection refused or reset, no answer) is retried with backoff while the HTTP listener, the scheduler and
the outbox keep working.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import BotIdentity, SlackUnreachable, TokenRejected, api_error, check_token, refusal

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 1.0
LAST_RETRY_SECONDS = 10.0
"""Backoff between attempts: 1 s, 2 s, 4 s, 8 s, then every 10 s (cheap calls; Slack back soon matters)."""


def _delays() -> Any:
    delay = FIRST_RETRY_SECONDS
    while True:
        yield delay
        delay = min(delay * 2, LAST_RETRY_SECONDS)


async def keep_asking_auth_test(
    token: str, base_url: str, identity: BotIdentity, on_fatal: Callable[[str], None]
) -> None:
    """After Slack did not answer at start: ask again until it does (quietly), or until it refuses the token."""
    for delay in _delays():
        await asyncio.sleep(delay)
        try:
            await check_token(token, base_url, identity)
        except SlackUnreachable as exc:
            log.debug("auth.test still failing: %s", exc)
            continue
        except TokenRejected as exc:
            on_fatal(str(exc))
            return
        log.info("Slack answered auth.test: the bot is %s in team %s", identity.user_id, identity.team_id)
        return


class SocketLink:
    """The Socket Mode connection, opened in the background; `state` is what /healthz reports."""

    def __init__(self, app: AsyncApp, app_token: str, web_client: AsyncWebClient) -> None:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        self.app_token = app_token
        # no retries of its own: `run` backs off itself, one log line per attempt
        self.web_client = AsyncWebClient(base_url=web_client.base_url, timeout=web_client.timeout, retry_handlers=[])
        self.handler = AsyncSocketModeHandler(app, app_token, web_client=self.web_client)
        self._opened = False

    async def state(self) -> str:
        """`connected`, or `reconnecting` (never connected yet, or the SDK is replacing a lost connection)."""
        if self._opened and await self.handler.client.is_connected():
            return "connected"
        return "reconnecting"

    async def run(self, on_fatal: Callable[[str], None]) -> None:
        """Open the connection, retrying with backoff; once open, the SDK keeps it (and replaces it if lost)."""
        for attempt, delay in enumerate(_delays(), start=1):
            try:
                # asked here rather than inside the SDK's connect, which retries for ever with a traceback each time
                response = await self.web_client.apps_connections_open(app_token=self.app_token)
                self.handler.client.wss_uri = str(response["url"])
                await self.handler.connect_async()  # type: ignore[no-untyped-call]  # Bolt leaves it untyped
            except SlackApiError as exc:
                if (error := refusal(exc)) is not None:
                    on_fatal(str(TokenRejected("SLACK_APP_TOKEN", error)))
                    return
                reason = api_error(exc)
            except (SlackClientError, aiohttp.ClientError, TimeoutError, OSError, KeyError) as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                self._opened = True
                log.info("Socket Mode connected")
                return
            log.warning("Socket Mode could not connect (attempt %d: %s); retrying in %.0fs", attempt, reason, delay)
            await asyncio.sleep(delay)

    async def close(self) -> None:
        if self._opened:
            await self.handler.close_async()  # type: ignore[no-untyped-call]  # Bolt leaves it untyped
        else:  # nothing to disconnect: only the SDK's HTTP session to release
            await self.handler.client.aiohttp_client_session.close()
